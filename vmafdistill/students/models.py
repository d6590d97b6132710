"""Student models: tiny regressors from per-shot features to VMAF, all ONNX-exportable.

Functional split:

* :func:`build_student` turns a ``conf/student/<name>.yaml`` mapping into an ``nn.Module`` that
  maps *standardised* features ``(N, F)`` to predicted VMAF ``(N,)``;
* :class:`ScaledStudent` wraps it with the fixed input pipeline (heavy-tail transform, NaN
  imputation, standardisation), so the exported graph takes *raw* feature values;
* :func:`fit_scaler` computes the standardisation statistics on training rows.

Every forward uses only ops with a plain ONNX mapping (MatMul/Gemm, Sigmoid, Mul, Add, Gather,
ReduceProd, Where, Log, Abs, Sign), with no data-dependent control flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import VmafDistillError

__all__ = [
    "DEFAULT_TRANSFORMS",
    "OUTPUT_CENTER",
    "OUTPUT_SCALE",
    "STD_FLOOR",
    "STUDENT_NAMES",
    "TRANSFORMS",
    "LinearStudent",
    "MLPStudent",
    "ScaledStudent",
    "SoftTreeStudent",
    "apply_transforms",
    "build_student",
    "fit_scaler",
    "init_output_bias",
    "leaf_path_table",
    "make_scaled_student",
    "resolve_transforms",
]

#: Student kinds :func:`build_student` knows (the ``name`` key of a student config).
STUDENT_NAMES: tuple[str, ...] = ("mlp", "soft_tree", "linear")

#: Fixed per-column input transforms. ``slog1p`` is sign(x)·ln(1+|x|): the identity near zero,
#: logarithmic in the tails, defined for any real x.
TRANSFORMS: tuple[str, ...] = ("slog1p",)

#: Columns transformed by default (heavy-tailed pixel features: ``blockiness`` reaches thousands
#: on flat frames, ``laplacian_var`` spans orders of magnitude). A student config may override
#: this with a ``transforms:`` mapping ``{column: slog1p}`` (``{}`` disables it).
DEFAULT_TRANSFORMS: dict[str, str] = {"blockiness": "slog1p", "laplacian_var": "slog1p"}

#: Standard deviations below this are replaced by 1 (constant columns, e.g. a single codec flag).
STD_FLOOR = 1e-6

#: Output heads work on a unit scale: ``linear`` = CENTER + SCALE·z, ``bounded`` = 100·sigmoid(z).
OUTPUT_CENTER = 50.0
OUTPUT_SCALE = 50.0

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
_OUTPUTS: tuple[str, ...] = ("bounded", "linear")


# --------------------------------------------------------------------------- transforms / scaler


def resolve_transforms(transforms: Mapping[str, str] | None) -> dict[str, str]:
    """The transform mapping to use: ``None`` -> :data:`DEFAULT_TRANSFORMS`; validates kinds."""
    out = dict(DEFAULT_TRANSFORMS if transforms is None else transforms)
    for col, kind in out.items():
        if kind not in TRANSFORMS:
            raise VmafDistillError(
                f"transform of column {col!r}: unknown kind {kind!r}; "
                f"known: {', '.join(TRANSFORMS)}"
            )
    return out


def _transform_mask(feature_names: Sequence[str], transforms: Mapping[str, str]) -> np.ndarray:
    return np.array([name in transforms for name in feature_names], dtype=bool)


def apply_transforms(
    x: np.ndarray, feature_names: Sequence[str], transforms: Mapping[str, str] | None = None
) -> np.ndarray:
    """Numpy twin of :class:`ScaledStudent`'s transform: slog1p on the named columns (a copy)."""
    x = np.array(x, dtype=np.float64, copy=True)
    if x.ndim != 2 or x.shape[1] != len(feature_names):
        raise VmafDistillError(
            f"features: expected shape (N, {len(feature_names)}), got {tuple(x.shape)}"
        )
    mask = _transform_mask(feature_names, resolve_transforms(transforms))
    x[:, mask] = np.sign(x[:, mask]) * np.log1p(np.abs(x[:, mask]))
    return x


def fit_scaler(
    x_train: np.ndarray,
    feature_names: Sequence[str],
    transforms: Mapping[str, str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32, shape (F,)) of the *transformed* training features.

    The transform (``transforms``, default :data:`DEFAULT_TRANSFORMS`) is applied first, so pass
    the same mapping to :class:`ScaledStudent`. NaNs are ignored (nanmean/nanstd); a std below
    :data:`STD_FLOOR` becomes 1 so constant columns standardise to 0. A column with no finite
    value, or any infinite value, raises :class:`VmafDistillError` naming it.
    """
    names = list(feature_names)
    xt = apply_transforms(x_train, names, transforms)
    if xt.shape[0] == 0:
        raise VmafDistillError("fit_scaler: no training rows")
    for j, name in enumerate(names):
        col = xt[:, j]
        if np.isinf(col).any():
            raise VmafDistillError(f"feature column {name!r} has infinite values")
        if np.isnan(col).all():
            raise VmafDistillError(f"feature column {name!r} has no finite value")
    mean = np.nanmean(xt, axis=0)
    std = np.nanstd(xt, axis=0)
    std = np.where(std < STD_FLOOR, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


# --------------------------------------------------------------------------- heads / helpers


def _output_head(kind: str) -> nn.Module:
    if kind not in _OUTPUTS:
        raise VmafDistillError(
            f"student output: unknown head {kind!r}; known: {', '.join(_OUTPUTS)}"
        )
    return _BoundedHead() if kind == "bounded" else _LinearHead()


class _BoundedHead(nn.Module):
    """z -> 100·sigmoid(z): smooth, clamp-free, always inside [0, 100]."""

    def forward(self, z: Tensor) -> Tensor:
        return 100.0 * torch.sigmoid(z)


class _LinearHead(nn.Module):
    """z -> CENTER + SCALE·z: unbounded, unit-scale network output."""

    def forward(self, z: Tensor) -> Tensor:
        return OUTPUT_CENTER + OUTPUT_SCALE * z


class _Select(nn.Module):
    """Fixed column selection (ONNX Gather) in front of a student that uses a feature subset."""

    def __init__(self, index: Sequence[int], inner: nn.Module) -> None:
        super().__init__()
        self.register_buffer("index", torch.as_tensor(list(index), dtype=torch.long))
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(x.index_select(1, self.index))


def _get(cfg: Mapping[str, Any], key: str, default: Any) -> Any:
    value = cfg.get(key, default)
    return default if value is None else value


# --------------------------------------------------------------------------- students


class LinearStudent(nn.Module):
    """Affine map of the (selected) standardised features, then the output head."""

    def __init__(self, n_features: int, output: str = "linear") -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.head = _output_head(output)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.linear(x).squeeze(-1))


class MLPStudent(nn.Module):
    """MLP: optional learned per-feature scale gate, hidden layers, unit-scale output head.

    ``feature_weighting`` multiplies input column j by a learned ``gate[j]`` (initialised to 1);
    its magnitudes after training rank how much the network uses each feature.
    """

    def __init__(
        self,
        n_features: int,
        widths: Sequence[int] = (32, 16),
        activation: str = "gelu",
        dropout: float = 0.0,
        feature_weighting: bool = False,
        output: str = "bounded",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise VmafDistillError(
                f"mlp activation: unknown {activation!r}; known: {', '.join(_ACTIVATIONS)}"
            )
        if not 0.0 <= float(dropout) < 1.0:
            raise VmafDistillError(f"mlp dropout must be in [0, 1), got {dropout}")
        self.gate = nn.Parameter(torch.ones(n_features)) if feature_weighting else None
        layers: list[nn.Module] = []
        width_in = n_features
        for width in widths:
            if int(width) <= 0:
                raise VmafDistillError(f"mlp widths must be positive, got {list(widths)}")
            layers += [nn.Linear(width_in, int(width)), _ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            width_in = int(width)
        last = nn.Linear(width_in, 1)
        nn.init.zeros_(last.bias)
        nn.init.normal_(last.weight, std=0.01)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        self.head = _output_head(output)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate is not None:
            x = x * self.gate
        return self.head(self.body(x).squeeze(-1))


def leaf_path_table(depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Routing tables of a complete binary tree of ``depth`` (heap order, root = node 0).

    Returns ``(node, go_right)``, both ``(2**depth, depth)``: for leaf ``l`` (left to right) and
    level ``d``, the internal node its path visits and whether it turns right there.
    """
    n_leaves = 2**depth
    node = np.zeros((n_leaves, depth), dtype=np.int64)
    right = np.zeros((n_leaves, depth), dtype=bool)
    for leaf in range(n_leaves):
        k = 0
        for d in range(depth):
            bit = (leaf >> (depth - 1 - d)) & 1
            node[leaf, d] = k
            right[leaf, d] = bool(bit)
            k = 2 * k + 1 + bit
    return node, right


class SoftTreeStudent(nn.Module):
    """Ensemble of soft decision trees of fixed depth, vectorised over trees, nodes and leaves.

    Each internal node n of tree t routes left with probability
    ``p = sigmoid((x·w_tn - b_tn) / temperature)``. Oblique routing learns ``w`` freely; axis
    routing uses ``w = softmax(a_tn)`` over features (a convex feature choice that sharpens to a
    single axis). All node probabilities come from one matmul; a leaf's path probability is the
    product of its ``depth`` branch probabilities, gathered with a fixed index table. The tree
    output is ``sum_leaves mu_l · v_l``; trees are averaged, a bias added, then the output head.
    """

    def __init__(
        self,
        n_features: int,
        depth: int = 4,
        n_trees: int = 8,
        temperature: float = 1.0,
        routing: str = "oblique",
        output: str = "bounded",
    ) -> None:
        super().__init__()
        if depth < 1 or n_trees < 1:
            raise VmafDistillError(f"soft_tree needs depth>=1, n_trees>=1; got {depth}, {n_trees}")
        if not temperature > 0:
            raise VmafDistillError(f"soft_tree temperature must be > 0, got {temperature}")
        if routing not in ("oblique", "axis"):
            raise VmafDistillError(f"soft_tree routing: unknown {routing!r}; known: oblique, axis")
        self.depth, self.n_trees, self.routing = int(depth), int(n_trees), routing
        self.temperature = float(temperature)
        self.n_nodes, self.n_leaves = 2**depth - 1, 2**depth
        total = self.n_trees * self.n_nodes
        if routing == "oblique":
            self.weight = nn.Parameter(torch.randn(n_features, total) / math.sqrt(n_features))
        else:
            self.weight = nn.Parameter(0.5 * torch.randn(n_features, total))  # softmax logits
        self.threshold = nn.Parameter(0.5 * torch.randn(total))
        self.leaf = nn.Parameter(torch.randn(self.n_trees, self.n_leaves))  # unit-scale logits
        self.bias = nn.Parameter(torch.zeros(()))
        node, right = leaf_path_table(self.depth)
        # Index into cat([p_left, p_right]) along the node axis: left -> n, right -> n_nodes + n.
        gather = node + right.astype(np.int64) * self.n_nodes
        self.register_buffer("path_index", torch.as_tensor(gather.reshape(-1)), persistent=False)
        self.head = _output_head(output)

    def routing_weight(self) -> Tensor:
        """The effective (F, n_trees·n_nodes) routing matrix."""
        if self.routing == "axis":
            return torch.softmax(self.weight, dim=0)
        return self.weight

    def leaf_probabilities(self, x: Tensor) -> Tensor:
        """(N, n_trees, n_leaves) path probabilities (each tree's row sums to 1)."""
        z = (x @ self.routing_weight() - self.threshold) / self.temperature
        p_left = torch.sigmoid(z).reshape(-1, self.n_trees, self.n_nodes)
        p_right = torch.sigmoid(-z).reshape(-1, self.n_trees, self.n_nodes)
        both = torch.cat([p_left, p_right], dim=2)  # (N, T, 2·nodes)
        steps = both.index_select(2, self.path_index)  # (N, T, leaves·depth)
        steps = steps.reshape(-1, self.n_trees, self.n_leaves, self.depth)
        return torch.prod(steps, dim=3)

    def forward(self, x: Tensor) -> Tensor:
        mu = self.leaf_probabilities(x)
        z = (mu * self.leaf).sum(dim=2).mean(dim=1) + self.bias
        return self.head(z)


# --------------------------------------------------------------------------- factory / wrapper


def build_student(
    cfg: Mapping[str, Any], n_features: int, feature_names: Sequence[str] | None = None
) -> nn.Module:
    """Build the student a ``conf/student/<name>.yaml`` mapping describes.

    Args:
        cfg: mapping with ``name`` in :data:`STUDENT_NAMES` and that kind's hyper-parameters.
            Any kind may carry ``features:`` (a list of input column names it uses; the rest are
            dropped by a fixed selection inside the module, so it still takes all ``n_features``
            columns); this needs ``feature_names``.
        n_features: number of input columns the module receives.
        feature_names: names of those columns, in order.

    Returns:
        ``nn.Module``: standardised ``(N, n_features)`` float32 -> ``(N,)`` predicted VMAF.
    """
    name = cfg.get("name")
    if name not in STUDENT_NAMES:
        raise VmafDistillError(f"student config: unknown name {name!r}; known: {STUDENT_NAMES}")
    if feature_names is not None and len(feature_names) != n_features:
        raise VmafDistillError(
            f"student: {len(feature_names)} feature names for {n_features} features"
        )
    subset = cfg.get("features")
    index: list[int] | None = None
    if subset is not None:
        if feature_names is None:
            raise VmafDistillError(f"student {name!r} selects features {list(subset)}: "
                                   "feature_names are required")
        names = list(feature_names)
        missing = [c for c in subset if c not in names]
        if missing:
            raise VmafDistillError(
                f"student {name!r}: feature column(s) {missing} not among the inputs {names}"
            )
        index = [names.index(c) for c in subset]
    n_in = n_features if index is None else len(index)
    if n_in < 1:
        raise VmafDistillError(f"student {name!r}: no input features")

    if name == "mlp":
        model: nn.Module = MLPStudent(
            n_in,
            widths=list(_get(cfg, "widths", [32, 16])),
            activation=str(_get(cfg, "activation", "gelu")),
            dropout=float(_get(cfg, "dropout", 0.0)),
            feature_weighting=bool(_get(cfg, "feature_weighting", False)),
            output=str(_get(cfg, "output", "bounded")),
        )
    elif name == "soft_tree":
        model = SoftTreeStudent(
            n_in,
            depth=int(_get(cfg, "depth", 4)),
            n_trees=int(_get(cfg, "n_trees", 8)),
            temperature=float(_get(cfg, "temperature", 1.0)),
            routing=str(_get(cfg, "routing", "oblique")),
            output=str(_get(cfg, "output", "bounded")),
        )
    else:
        model = LinearStudent(n_in, output=str(_get(cfg, "output", "linear")))
    return model if index is None else _Select(index, model)


class ScaledStudent(nn.Module):
    """Raw features in, VMAF out: the fixed input pipeline plus a student (what gets exported).

    ``forward(x_raw)``: (1) slog1p on the columns named in ``transforms``; (2) ``(x - mean) /
    std``; (3) NaN -> 0, i.e. mean imputation (a temporal feature of a one-frame shot is NaN);
    (4) the student. All four are in the ONNX graph.
    """

    def __init__(
        self,
        student: nn.Module,
        mean: Tensor | np.ndarray,
        std: Tensor | np.ndarray,
        feature_names: Sequence[str],
        transforms: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.student = student
        self.feature_names = [str(n) for n in feature_names]
        self.transforms = {
            k: v for k, v in resolve_transforms(transforms).items() if k in self.feature_names
        }
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32))
        n = len(self.feature_names)
        if mean_t.shape != (n,) or std_t.shape != (n,):
            raise VmafDistillError(
                f"scaler: mean/std shapes {tuple(mean_t.shape)}/{tuple(std_t.shape)} do not "
                f"match {n} feature names"
            )
        if not (torch.isfinite(mean_t).all() and (std_t > 0).all()):
            raise VmafDistillError("scaler: mean must be finite and std positive")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        mask = torch.as_tensor(_transform_mask(self.feature_names, self.transforms))
        self.register_buffer("log_mask", mask)
        self._any_log = bool(mask.any())

    @property
    def n_features(self) -> int:
        """Number of raw input columns."""
        return len(self.feature_names)

    def standardise(self, x_raw: Tensor) -> Tensor:
        """Steps (1)-(3) of :meth:`forward`: the student's input."""
        x = x_raw.to(self.mean.dtype)
        if self._any_log:
            logx = torch.sign(x) * torch.log(1.0 + torch.abs(x))
            x = torch.where(self.log_mask, logx, x)
        z = (x - self.mean) / self.std
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)

    def forward(self, x_raw: Tensor) -> Tensor:
        """(N, F) raw feature values -> (N,) predicted VMAF."""
        return self.student(self.standardise(x_raw))


def init_output_bias(model: nn.Module, target_mean: float) -> None:
    """Set the student's last bias so that, with zero hidden contribution, it predicts
    ``target_mean`` (VMAF). Speeds up early training; call before optimising. Works on a
    student, a feature-selecting student or a :class:`ScaledStudent`."""
    inner = model
    while isinstance(inner, (ScaledStudent, _Select)):
        inner = inner.student if isinstance(inner, ScaledStudent) else inner.inner
    head = getattr(inner, "head", None)
    if isinstance(head, _BoundedHead):
        m = min(max(float(target_mean), 0.5), 99.5) / 100.0
        z = math.log(m / (1.0 - m))
    else:
        z = (float(target_mean) - OUTPUT_CENTER) / OUTPUT_SCALE
    with torch.no_grad():
        if isinstance(inner, SoftTreeStudent):
            inner.bias.fill_(z)
        elif isinstance(inner, MLPStudent):
            inner.body[-1].bias.fill_(z)
        elif isinstance(inner, LinearStudent):
            inner.linear.bias.fill_(z)
        else:
            raise VmafDistillError(f"init_output_bias: unsupported module {type(inner).__name__}")


def make_scaled_student(
    cfg: Mapping[str, Any],
    x_train: np.ndarray,
    feature_names: Sequence[str],
    y_train: np.ndarray | None = None,
) -> ScaledStudent:
    """Convenience: scaler fitted on ``x_train`` with the config's ``transforms`` (``null`` ->
    :data:`DEFAULT_TRANSFORMS`) + :func:`build_student`, wrapped in a :class:`ScaledStudent`.
    With ``y_train``, the output bias starts at the mean target (:func:`init_output_bias`)."""
    transforms = resolve_transforms(cfg.get("transforms"))
    mean, std = fit_scaler(x_train, feature_names, transforms)
    student = build_student(cfg, len(feature_names), feature_names)
    model = ScaledStudent(student, mean, std, feature_names, transforms=transforms)
    if y_train is not None:
        init_output_bias(model, float(np.nanmean(np.asarray(y_train, dtype=np.float64))))
    return model
