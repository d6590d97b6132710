"""Samples table -> tensors for Lightning: feature selection, fold rows, in-memory batches.

The corpus tables are tiny (hundreds to thousands of rows, ~17 features), so batches are sliced
from tensors held in memory instead of going through ``DataLoader`` collation; under DDP every
rank walks the same seeded permutation and takes its own stride of it, so ranks always run the
same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import lightning.pytorch as pl
import numpy as np
import torch

from ..errors import VmafDistillError

if TYPE_CHECKING:
    import pandas as pd


class MissingColumnsError(VmafDistillError):
    """A samples table without some of the columns asked for (``missing``, in order)."""

    def __init__(self, message: str, missing: Sequence[str]) -> None:
        super().__init__(message)
        self.missing = list(missing)


def select_features(
    samples: pd.DataFrame,
    feature_names: Sequence[str],
    target: str = "vmaf",
    *,
    nan_policy: str = "error",
    where: str = "samples table",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature matrix, target vector and kept-row mask of a samples table.

    NaN features are kept: :class:`~vmafdistill.students.models.ScaledStudent` imputes them with
    the training mean (e.g. a temporal feature of a one-frame shot), as it does when serving.
    Infinite features are an error. A non-finite target is an error (``nan_policy="error"``)
    or drops the row (``"drop"``; the returned mask tells which rows were kept).

    Args:
        samples: one row per sample.
        feature_names: the ordered input columns (a feature set).
        target: the label column.
        nan_policy: ``"error"`` or ``"drop"`` (see above).
        where: how to name the table in error messages (e.g. its path).

    Returns:
        ``x`` (N_kept, F) float32, ``y`` (N_kept,) float32, ``keep`` (N,) bool.
    """
    if nan_policy not in ("error", "drop"):
        raise VmafDistillError(f"nan_policy must be 'error' or 'drop', got {nan_policy!r}")
    missing = [c for c in (*feature_names, target) if c not in samples.columns]
    if missing:
        raise MissingColumnsError(f"{where}: missing column(s) {', '.join(missing)}", missing)
    try:
        x = samples[list(feature_names)].to_numpy(dtype=np.float64)
        y = samples[target].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise VmafDistillError(f"{where}: non-numeric feature or target column ({exc})") from None
    inf_cols = [c for j, c in enumerate(feature_names) if np.isinf(x[:, j]).any()]
    if inf_cols:
        raise VmafDistillError(f"{where}: infinite values in column(s) {', '.join(inf_cols)}")
    keep = np.isfinite(y)
    if not keep.all() and nan_policy == "error":
        raise VmafDistillError(
            f"{where}: target column {target!r} has {int((~keep).sum())} non-finite row(s); "
            "fix the corpus or set nan_policy=drop"
        )
    if not keep.any():
        raise VmafDistillError(f"{where}: no row with a finite {target!r}")
    return x[keep].astype(np.float32), y[keep].astype(np.float32), keep


class TensorBatches:
    """An iterable of ``(x, y)`` batches sliced from in-memory tensors.

    Each pass draws a new permutation from ``seed + pass_index`` when ``shuffle``; with
    ``world_size > 1`` rank ``r`` takes every ``world_size``-th row of the (padded) permutation,
    so all ranks run the same number of equally sized batches.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int | None = None,
        *,
        shuffle: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if len(x) != len(y) or len(x) == 0:
            raise ValueError(f"need equally many (>0) rows in x and y, got {len(x)}, {len(y)}")
        self.x, self.y = x, y
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.per_rank = -(-len(x) // world_size)
        self.batch_size = min(batch_size or self.per_rank, self.per_rank)
        self._passes = 0

    def __len__(self) -> int:
        return -(-self.per_rank // self.batch_size)

    def _order(self) -> torch.Tensor:
        n = len(self.x)
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed + self._passes)
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.arange(n)
        self._passes += 1
        pad = self.per_rank * self.world_size - n
        if pad:  # wrap around so every rank gets per_rank rows
            order = torch.cat([order, order[:pad]])
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.x[idx], self.y[idx]


class SamplesDataModule(pl.LightningDataModule):
    """Train/validation rows of one fold of a samples table, as in-memory batches.

    ``mean``/``std`` (the input scaler) are fitted on the training rows only, with the student
    package's :func:`~vmafdistill.students.models.fit_scaler` (after its fixed transforms), and
    are meant to be stored in the :class:`~vmafdistill.students.models.ScaledStudent`.

    Args:
        x, y: raw features (N, F) and targets (N,) of the whole table (float32).
        feature_names: names of the F columns.
        train_idx: rows to fit on; val_idx: rows to validate on (may be empty).
        batch_size: rows per step (None: full batch).
        seed: shuffling seed.
        transforms: the student's fixed column transforms (None: the models' default).
        interactions: the student's product columns (pairs of feature names), scaled too.
        fit_scaler: fit ``mean``/``std`` (False: None, for a student that keeps its own).
        read: the input columns the student reads (None: all), as ``fit_scaler`` takes them.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        feature_names: Sequence[str],
        train_idx: np.ndarray,
        val_idx: np.ndarray | None = None,
        *,
        batch_size: int | None = None,
        seed: int = 0,
        transforms: Mapping[str, str] | None = None,
        interactions: Sequence[Sequence[str]] | None = None,
        fit_scaler: bool = True,
        read: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        from .models import fit_scaler as fitted_scaler

        self.feature_names = list(feature_names)
        self.x = torch.tensor(np.asarray(x, dtype=np.float32))
        self.y = torch.tensor(np.asarray(y, dtype=np.float32))
        self.train_idx = torch.as_tensor(np.asarray(train_idx, dtype=np.int64))
        self.val_idx = torch.as_tensor(np.asarray(
            val_idx if val_idx is not None else [], dtype=np.int64))
        if len(self.train_idx) == 0:
            raise VmafDistillError("no training rows in this fold")
        self.batch_size = batch_size
        self.seed = seed
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        if fit_scaler:  # fine-tuning keeps its student's scaler: an all-NaN column is no error
            mean, std = fitted_scaler(
                np.asarray(x)[np.asarray(train_idx)], self.feature_names, transforms,
                interactions, read=read)
            self.mean = torch.as_tensor(np.asarray(mean, dtype=np.float32))
            self.std = torch.as_tensor(np.asarray(std, dtype=np.float32))

    def _rank(self) -> tuple[int, int]:
        trainer: Any = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> TensorBatches:
        """Shuffled batches of the training rows (this rank's share under DDP)."""
        rank, world = self._rank()
        return TensorBatches(
            self.x[self.train_idx], self.y[self.train_idx], self.batch_size,
            shuffle=True, seed=self.seed, rank=rank, world_size=world,
        )

    def val_dataloader(self) -> TensorBatches | list[Any]:
        """The validation rows in one batch (every rank sees all of them), or nothing."""
        if len(self.val_idx) == 0:
            return []
        return TensorBatches(self.x[self.val_idx], self.y[self.val_idx], None)
