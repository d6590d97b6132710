"""The Lightning layer around a student: a ScaledStudent + a loss, trained with AdamW."""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch import nn

from .models import auxiliary_loss


class StudentModule(pl.LightningModule):
    """Train a :class:`~vmafdistill.students.models.ScaledStudent` (raw features in, VMAF out).

    Args:
        model: the student with its input scaler inside.
        loss: ``loss(pred, target) -> scalar``; its parameters (e.g. a learnable temperature)
            are optimised too, with ``loss_lr`` and no weight decay.
        lr, weight_decay: AdamW settings of the student's parameters.
        loss_lr: learning rate of the loss's parameters (default ``lr``).
        frozen: parameter-name prefixes (of ``model.student``, e.g. ``"body.0"``) kept fixed.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        *,
        lr: float = 3e-3,
        weight_decay: float = 0.0,
        loss_lr: float | None = None,
        frozen: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.loss_lr = float(loss_lr) if loss_lr is not None else self.lr
        self.frozen = tuple(frozen)
        freeze_parameters(self.model, self.frozen)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted VMAF (N,) of raw features (N, F)."""
        return self.model(x)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        aux = auxiliary_loss(self.model)  # e.g. a residual student's penalty on its branch
        if aux is not None:
            loss = loss + aux
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(y),
                 sync_dist=self.trainer.world_size > 1)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        pred = self(x)
        self.log("val_loss", self.loss_fn(pred, y), batch_size=len(y))
        self.log("val_mae", (pred - y).abs().mean(), batch_size=len(y), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{
            "params": [p for p in self.model.parameters() if p.requires_grad],
            "weight_decay": self.weight_decay,
            "lr": self.lr,
        }]
        loss_params = [p for p in self.loss_fn.parameters() if p.requires_grad]
        if loss_params:
            groups.append({"params": loss_params, "weight_decay": 0.0, "lr": self.loss_lr})
        return torch.optim.AdamW(groups, lr=self.lr)


def freeze_parameters(model: nn.Module, prefixes: Sequence[str]) -> list[str]:
    """Set ``requires_grad=False`` on parameters under one of the dotted ``prefixes``.

    A prefix matches a parameter name equal to it or continuing with ``.``, as given or relative
    to a wrapped ``student`` submodule (``"body.0"`` matches ``student.body.0.weight``, not
    ``student.body.01``). Raises ValueError when a prefix matches
    nothing (listing the parameter names) or every parameter is frozen; returns the frozen
    names.
    """
    names = [n for n, _ in model.named_parameters()]
    frozen: list[str] = []
    for prefix in prefixes:
        full = (prefix, f"student.{prefix}")
        hits = [n for n in names if any(n == p or n.startswith(f"{p}.") for p in full)]
        if not hits:
            raise ValueError(
                f"freeze prefix {prefix!r} matches no parameter; parameters: {', '.join(names)}"
            )
        frozen.extend(hits)
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    if prefixes and not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"freeze prefixes {list(prefixes)} freeze every parameter: nothing would train "
            f"(parameters: {', '.join(names)})")
    return frozen
