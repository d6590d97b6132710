"""Student models: tiny regressors from per-shot features to VMAF, all ONNX-exportable.

Functional split:

* :func:`build_student` turns a ``conf/student/<name>.yaml`` mapping into an ``nn.Module`` that
  maps *standardised* features ``(N, F)`` to predicted VMAF ``(N,)``: the ``name`` key picks a
  class from :data:`STUDENTS` (filled by :func:`register_student`) and the class reads its
  hyper-parameters from the mapping (:meth:`Student.from_config`; the defaults are the YAML's);
* :class:`ScaledStudent` wraps it with the fixed input pipeline (heavy-tail transform, NaN
  imputation, standardisation), so the exported graph takes *raw* feature values;
* :func:`fit_scaler` computes the standardisation statistics on training rows.

Every forward uses only ops with a plain ONNX mapping (MatMul/Gemm, Sigmoid, Mul, Add, Gather,
ReduceProd, Where, Log, Abs, Sign), with no data-dependent control flow.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor, nn

from ..config import checked_bool, checked_number
from ..errors import VmafDistillError
from ..registry import register

__all__ = [
    "DEFAULT_TRANSFORMS",
    "OUTPUT_CENTER",
    "OUTPUT_SCALE",
    "STD_FLOOR",
    "STUDENTS",
    "TRANSFORMS",
    "LinearStudent",
    "MLPStudent",
    "MonotoneLinear",
    "ScaledStudent",
    "SoftTreeStudent",
    "Student",
    "apply_transforms",
    "auxiliary_loss",
    "build_student",
    "complete_student_cfg",
    "expand_inputs",
    "fit_scaler",
    "init_output_bias",
    "interaction_name",
    "leaf_path_table",
    "make_scaled_student",
    "monotone_check",
    "monotone_signs",
    "output_head",
    "raw_columns_read",
    "register_student",
    "resolve_interactions",
    "resolve_transforms",
    "scaled_student",
    "student_class",
    "student_input_names",
]

#: Fixed per-column input transforms. ``slog1p`` is sign(x)·ln(1+|x|): the identity near zero,
#: logarithmic in the tails, defined for any real x.
TRANSFORMS: tuple[str, ...] = ("slog1p",)

#: Columns transformed by default (heavy-tailed pixel features: ``blockiness`` reaches thousands
#: on flat frames, ``laplacian_var`` spans orders of magnitude). A student config may override
#: this with a ``transforms:`` mapping ``{column: slog1p}`` (``{}`` disables it).
DEFAULT_TRANSFORMS: dict[str, str] = {"blockiness": "slog1p", "laplacian_var": "slog1p"}

#: Standard deviations below this are replaced by 1 (constant columns, e.g. a single codec flag).
STD_FLOOR = 1e-6

#: Output heads work on a unit scale: ``linear`` = CENTER + SCALE·z, ``bounded`` =
#: -m + (100 + 2m)·sigmoid(z) with margin m (``output_margin``, default 0: 100·sigmoid(z)).
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


def interaction_name(left: str, right: str) -> str:
    """Name of the product column an ``interactions`` pair adds to the student's input."""
    return f"{left}*{right}"


def resolve_interactions(
    interactions: Sequence[Sequence[str]] | None, feature_names: Sequence[str]
) -> list[tuple[str, str]]:
    """Validate a student config's ``interactions`` (pairs of input column names).

    Each pair ``[a, b]`` adds the product of the two *transformed* columns (e.g. ``scene_qp`` x
    ``slog1p(scale_ratio)``) as one more input, so a linear or logistic student can let one
    input's slope depend on another (the quantizer costs VMAF at a rate that depends on scale).
    """
    names = list(feature_names)
    out: list[tuple[str, str]] = []
    if isinstance(interactions, str):
        interactions = [interactions]
    for item in interactions or []:
        if isinstance(item, str) or len(item) != 2:
            raise VmafDistillError(
                f"student interactions: {item!r} is not a pair of columns; expected a list of "
                "pairs, e.g. interactions: [[scene_qp, scale_ratio]]"
            )
        pair = (str(item[0]), str(item[1]))
        missing = [c for c in pair if c not in names]
        if missing:
            raise VmafDistillError(
                f"student interactions {list(pair)}: column(s) {missing} not among the inputs "
                f"{names}"
            )
        if pair in out or pair[::-1] in out:  # [a, b] and [b, a] are one product ([a, a]: a²)
            raise VmafDistillError(f"student interactions: {list(pair)} listed twice")
        out.append(pair)
    return out


def student_input_names(
    feature_names: Sequence[str], interactions: Sequence[Sequence[str]] | None = None
) -> list[str]:
    """The student's input columns: the raw feature names, then one per interaction pair."""
    pairs = resolve_interactions(interactions, feature_names)
    return [*map(str, feature_names), *(interaction_name(a, b) for a, b in pairs)]


def expand_inputs(
    xt: np.ndarray, feature_names: Sequence[str],
    interactions: Sequence[Sequence[str]] | None = None,
) -> np.ndarray:
    """Numpy twin of :class:`ScaledStudent`'s interaction step: the products of the named
    (already transformed) columns appended to ``xt``."""
    pairs = resolve_interactions(interactions, feature_names)
    if not pairs:
        return xt
    names = list(feature_names)
    prods = [xt[:, names.index(a)] * xt[:, names.index(b)] for a, b in pairs]
    return np.concatenate([xt, np.stack(prods, axis=1)], axis=1)


def fit_scaler(
    x_train: np.ndarray,
    feature_names: Sequence[str],
    transforms: Mapping[str, str] | None = None,
    interactions: Sequence[Sequence[str]] | None = None,
    read: Collection[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32, shape (F + K,)) of the *transformed* training features and of
    their K ``interactions`` products.

    The transform (``transforms``, default :data:`DEFAULT_TRANSFORMS`) is applied first, then
    the products (:func:`expand_inputs`), so pass the same mapping and pairs to
    :class:`ScaledStudent`. NaNs are ignored (nanmean/nanstd); a std below
    :data:`STD_FLOOR` becomes 1 so constant columns standardise to 0. A column with no finite
    value, or any infinite value, raises :class:`VmafDistillError` naming it; under ``read``
    (the input columns a ``features:`` subset keeps, :func:`student_inputs_read`) a column
    the student never reads may have no finite value (mean 0, std 1: it is imputed and dropped).
    """
    names = student_input_names(feature_names, interactions)
    xt = expand_inputs(apply_transforms(x_train, list(feature_names), transforms),
                       list(feature_names), interactions)
    if xt.shape[0] == 0:
        raise VmafDistillError("fit_scaler: no training rows")
    empty = np.isnan(xt).all(axis=0)
    for j, name in enumerate(names):
        if np.isinf(xt[:, j]).any():
            raise VmafDistillError(f"feature column {name!r} has infinite values")
        if empty[j] and (read is None or name in read):
            raise VmafDistillError(f"feature column {name!r} has no finite value")
    filled = np.where(empty, 0.0, xt)  # unread columns without a value: no nanmean warning
    mean = np.nanmean(filled, axis=0)
    std = np.nanstd(filled, axis=0)
    std = np.where(std < STD_FLOOR, 1.0, std)
    return mean.astype(np.float32), std.astype(np.float32)


def student_inputs_read(
    cfg: Mapping[str, Any], feature_names: Sequence[str],
    interactions: Sequence[Sequence[str]] | None = None,
) -> list[str] | None:
    """The input columns (raw features, then interaction products) a student config's
    ``features:`` subset keeps; None when it reads them all."""
    in_names = student_input_names(feature_names, interactions)
    index = _feature_index(cfg.get("name"), cfg.get("features"), in_names,
                           resolve_interactions(interactions, feature_names))
    return None if index is None else [in_names[i] for i in index]


def raw_columns_read(
    cfg: Mapping[str, Any], feature_names: Sequence[str],
    interactions: Sequence[Sequence[str]] | None = None,
) -> list[str]:
    """The raw feature columns a student config reads, in ``feature_names`` order: those its
    ``features:`` subset keeps and both factors of each interaction it keeps (all of them
    without a subset). The sklearn baselines are fitted on these, the student's own inputs."""
    read = student_inputs_read(cfg, feature_names, interactions)
    if read is None:
        return [str(f) for f in feature_names]
    return _raw_columns_of(read, feature_names, resolve_interactions(interactions, feature_names))


def _raw_columns_of(read: Sequence[str], raw: Sequence[str],
                    pairs: Sequence[tuple[str, str]]) -> list[str]:
    """The ``raw`` columns among input columns ``read``: an interaction product reads both
    its factors."""
    factors = {interaction_name(a, b): (a, b) for a, b in pairs}
    wanted = {column for name in read for column in factors.get(name, (name,))}
    return [str(n) for n in raw if n in wanted]


# --------------------------------------------------------------------------- heads / helpers


def output_head(kind: str, margin: float) -> nn.Module:
    """The output head a student config's ``output`` / ``output_margin`` name: ``bounded``
    (-m + (100 + 2m)·sigmoid(z)) or ``linear`` (CENTER + SCALE·z)."""
    if kind not in _OUTPUTS:
        raise VmafDistillError(
            f"student output: unknown head {kind!r}; known: {', '.join(_OUTPUTS)}"
        )
    margin = checked_number("student.output_margin", margin, float)
    if not 0.0 <= margin < 50.0:
        raise VmafDistillError(f"student output_margin must be in [0, 50), got {margin}")
    return _BoundedHead(float(margin)) if kind == "bounded" else _LinearHead()


class _BoundedHead(nn.Module):
    """z -> -m + (100 + 2m)·sigmoid(z): smooth, clamp-free, always inside (-m, 100 + m).

    A small margin m (e.g. 2) lets scores of exactly 0 or 100 be reached at a finite logit."""

    def __init__(self, margin: float = 0.0) -> None:
        super().__init__()
        self.margin = float(margin)

    def forward(self, z: Tensor) -> Tensor:
        if self.margin == 0.0:
            return 100.0 * torch.sigmoid(z)
        return (100.0 + 2.0 * self.margin) * torch.sigmoid(z) - self.margin

    def inverse(self, v: float) -> float:
        """The logit z with forward(z) == v (v clamped 0.5 % inside the range)."""
        span = 100.0 + 2.0 * self.margin
        u = min(max((float(v) + self.margin) / span, 0.005), 0.995)
        return math.log(u / (1.0 - u))


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


# --------------------------------------------------------------------------- registry

#: Student kinds: the ``name`` key of a student config -> its class. Filled by
#: :func:`register_student`; :func:`build_student` looks the name up here.
STUDENTS: dict[str, type[Student]] = {}

_S = TypeVar("_S", bound="type[Student]")

#: Config keys every student reads outside its constructor (:func:`build_student`), all
#: optional (absent or null = none / the default): input subset, sign constraints, the
#: ScaledStudent's transforms and interaction products.
PIPELINE_KEYS: tuple[str, ...] = ("name", "features", "monotone", "transforms", "interactions")


def register_student(*names: str) -> Callable[[_S], _S]:
    """Class decorator: make a :class:`Student` subclass buildable as ``name: <name>``.

    One class may serve several names (``linear`` and ``logistic`` are one class whose
    ``output`` head differs in their YAML). Each name needs a ``conf/student/<name>.yaml`` that
    sets every key of :meth:`Student.config_keys` (the defaults live there only).
    """
    return lambda cls: register(STUDENTS, "student", names, cls)


def student_class(name: Any) -> type[Student]:
    """The registered class of student kind ``name`` (a clear error for an unknown one)."""
    if name not in STUDENTS:
        raise VmafDistillError(
            f"student config: unknown name {name!r}; known: {', '.join(sorted(STUDENTS))}")
    return STUDENTS[name]


class Student(nn.Module):
    """Base of the student kinds: standardised ``(N, F)`` -> ``(N,)`` VMAF, with an output head.

    A subclass takes ``n_features``, its hyper-parameters as keyword arguments named like their
    config keys (no defaults: those are in ``conf/student/<name>.yaml``) and ``signs`` (the
    monotone constraints of its linear part); it sets ``self.head`` and implements
    :meth:`set_output_bias`.
    """

    head: nn.Module

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The hyper-parameters this kind reads: its constructor's keyword arguments."""
        params = inspect.signature(cls.__init__).parameters.values()
        return tuple(p.name for p in params
                     if p.name not in ("self", "n_features", "signs")
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any], n_features: int,
                    signs: Sequence[int]) -> Student:
        """Build from a student config: every :meth:`config_keys` key must be set (not null)."""
        name = cfg.get("name")
        missing = [k for k in cls.config_keys() if cfg.get(k) is None]
        if missing:
            raise VmafDistillError(
                f"student {name!r}: the config sets no {', '.join(map(repr, missing))} (the "
                f"defaults are in conf/student/{name}.yaml; a hand-built mapping needs every "
                f"key of {list(cls.config_keys())}, or complete_student_cfg)"
            )
        return cls(n_features, signs=signs, **{k: cfg[k] for k in cls.config_keys()})

    def set_output_bias(self, z: float) -> None:  # pragma: no cover - abstract
        """Set the last bias so that, with zero hidden contribution, the head's input is ``z``."""
        raise NotImplementedError

    def init_output_bias(self, target_mean: float) -> None:
        """Start at ``target_mean`` (VMAF): :meth:`set_output_bias` with the head's logit."""
        if isinstance(self.head, _BoundedHead):
            z = self.head.inverse(target_mean)
        else:
            z = (float(target_mean) - OUTPUT_CENTER) / OUTPUT_SCALE
        with torch.no_grad():
            self.set_output_bias(z)


#: Hyper-parameters added to conf/student after the first bundles were written (commit
#: a3e8418: margin, residual skip path), with what their absence meant then. A *stored* config
#: (bundle, card) without one is completed with this value, not the YAML's (mlp.yaml's
#: ``linear_skip: true`` would not fit an older bundle's weights).
_ABSENT_IN_OLD_CONFIGS: dict[str, Any] = {
    "output_margin": 0.0, "linear_skip": False, "residual_penalty": 0.0,
}


#: Student config keys every kind may carry besides its class's :meth:`Student.config_keys`.
COMMON_STUDENT_KEYS = ("name", "features", "monotone", "interactions", "transforms")


def check_student_keys(cfg: Mapping[str, Any]) -> None:
    """An error naming a student config key that no part of the student reads
    (``+student.widthz=[4]`` composed and was ignored)."""
    from ..config import refuse_unknown_keys

    name = cfg.get("name")
    refuse_unknown_keys(f"student ({name})", cfg,
                        {*COMMON_STUDENT_KEYS, *student_class(name).config_keys()})


def complete_student_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored student config (a bundle's ``student_cfg``, a card's ``student``) with every
    hyper-parameter its class reads: a key it lacks (or holds as null) comes from the packaged
    ``conf/student/<name>.yaml``, or, for a key added after older bundles were written, the
    value its absence meant then. Keys it has are kept as they are."""
    from ..config import load_yaml

    out = dict(cfg)
    name = out.get("name")
    missing = [k for k in student_class(name).config_keys() if out.get(k) is None]
    if missing:
        defaults = {**load_yaml(f"student/{name}"), **_ABSENT_IN_OLD_CONFIGS}
        out.update({k: defaults[k] for k in missing if k in defaults})
    return out


# --------------------------------------------------------------------------- students


def monotone_signs(
    monotone: Mapping[str, int] | None, feature_names: Sequence[str] | None, n_features: int
) -> list[int]:
    """Per-input sign constraints (+1 increasing, -1 decreasing, 0 free) from a config mapping
    ``{column: ±1}``. Columns not among ``feature_names`` are skipped (one config serves feature
    sets with ``log_bpp`` or ``log_bitrate``); a sign other than ±1 raises."""
    signs = [0] * n_features
    if not monotone:
        return signs
    if feature_names is None:
        raise VmafDistillError("student monotone constraints need feature_names")
    names = list(feature_names)
    for col, sign in dict(monotone).items():
        if int(sign) not in (-1, 1):
            raise VmafDistillError(f"student monotone[{col!r}] must be +1 or -1, got {sign}")
        if col in names:
            signs[names.index(col)] = int(sign)
    return signs


class MonotoneLinear(nn.Module):
    """``x·w + b`` (one output) with sign-constrained weights on chosen inputs.

    Input j with sign s_j != 0 gets ``w_j = s_j·softplus(raw_j)`` (so the output is monotone in
    it: standardisation and slog1p keep the order of the raw feature); the others are free.
    Starts at w = 0 on free inputs and w = ±softplus(-4) ≈ ±0.018 on constrained ones."""

    def __init__(self, n_features: int, signs: Sequence[int]) -> None:
        super().__init__()
        sign_t = torch.as_tensor(list(signs), dtype=torch.float32)
        if sign_t.shape != (n_features,):
            raise VmafDistillError(f"monotone signs: {len(signs)} for {n_features} inputs")
        self.register_buffer("sign", sign_t)
        self.register_buffer("constrained", sign_t != 0)
        self.weight = nn.Parameter(torch.where(self.constrained, -4.0, 0.0))
        self.bias = nn.Parameter(torch.zeros(1))

    def effective_weight(self) -> Tensor:
        """(F,) weights actually applied."""
        # softplus(r) = relu(r) + log(1 + exp(-|r|)): stable, and every op has a float32 and
        # float64 onnxruntime kernel (its Softplus has no float64 one)
        r = self.weight
        soft = torch.relu(r) + torch.log(1.0 + torch.exp(-torch.abs(r)))
        return torch.where(self.constrained, self.sign * soft, r)

    def forward(self, x: Tensor) -> Tensor:
        return (x @ self.effective_weight()[:, None]) + self.bias


def _linear_layer(n_features: int, signs: Sequence[int]) -> nn.Module:
    if any(signs):
        return MonotoneLinear(n_features, signs)
    layer = nn.Linear(n_features, 1)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@register_student("linear", "logistic")
class LinearStudent(Student):
    """Affine map of the (selected) standardised features, then the output head.

    With ``output="bounded"`` this is the *logistic* student: VMAF = -m + (100 + 2m)·sigmoid(w·x
    + b), a linear model in logit space (the rate-quality curve is sigmoidal in log rate)."""

    def __init__(self, n_features: int, *, output: str, output_margin: float,
                 signs: Sequence[int] | None = None) -> None:
        super().__init__()
        self.linear = _linear_layer(n_features, signs or [0] * n_features)
        self.head = output_head(str(output), output_margin)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.linear(x).squeeze(-1))

    def set_output_bias(self, z: float) -> None:
        self.linear.bias.fill_(z)


class _ResidualMixin:
    """Optional linear skip path: z = skip(x) + branch(x), the branch penalised to stay small.

    In training mode the last forward stores ``aux_loss = residual_penalty · mean(branch²)``
    (logit units) for the trainer to add (:func:`auxiliary_loss`); the skip path alone is the
    logistic student, so with a large penalty the model falls back to it."""

    skip: nn.Module | None
    residual_penalty: float
    aux_loss: Tensor | None

    def _combine(self, branch: Tensor, x: Tensor) -> Tensor:
        if self.skip is None:
            return branch
        if self.training and self.residual_penalty > 0:  # type: ignore[attr-defined]
            self.aux_loss = self.residual_penalty * (branch * branch).mean()
        return self.skip(x).squeeze(-1) + branch

    def _split_output_bias(self, z: float, own_bias: Tensor) -> None:
        """Output bias ``z``: on the skip path when there is one (the branch's bias 0)."""
        if self.skip is None:
            own_bias.fill_(z)
        else:
            self.skip.bias.fill_(z)  # type: ignore[union-attr,operator]
            own_bias.zero_()


@register_student("mlp")
class MLPStudent(_ResidualMixin, Student):
    """MLP: optional learned per-feature scale gate, hidden layers, unit-scale output head.

    ``feature_weighting`` multiplies input column j by a learned ``gate[j]`` (initialised to 1);
    its magnitudes after training rank how much the network uses each feature.
    """

    def __init__(
        self,
        n_features: int,
        *,
        widths: Sequence[int],
        activation: str,
        dropout: float,
        feature_weighting: bool,
        output: str,
        output_margin: float,
        linear_skip: bool,
        residual_penalty: float,
        signs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
            raise VmafDistillError(f"student.widths={widths!r}: needs a list of layer widths")
        widths = [checked_number("student.widths", w, int, 1) for w in widths]
        activation = str(activation)
        dropout = checked_number("student.dropout", dropout, float, 0, True, 1)
        linear_skip = checked_bool("student.linear_skip", linear_skip)
        residual_penalty = checked_number("student.residual_penalty", residual_penalty, float, 0)
        feature_weighting = checked_bool("student.feature_weighting", feature_weighting)
        if activation not in _ACTIVATIONS:
            raise VmafDistillError(
                f"mlp activation: unknown {activation!r}; known: {', '.join(_ACTIVATIONS)}"
            )
        self.gate = nn.Parameter(torch.ones(n_features)) if feature_weighting else None
        layers: list[nn.Module] = []
        width_in = n_features
        for width in widths:  # whole numbers >= 1, checked above
            layers += [nn.Linear(width_in, width), _ACTIVATIONS[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width_in = width
        last = nn.Linear(width_in, 1)
        nn.init.zeros_(last.bias)
        nn.init.normal_(last.weight, std=0.01)
        layers.append(last)
        self.body = nn.Sequential(*layers)
        self.head = output_head(str(output), output_margin)
        self.skip = _linear_layer(n_features, signs or [0] * n_features) if linear_skip else None
        self.residual_penalty = float(residual_penalty)
        self.aux_loss = None
        if linear_skip:  # the residual starts at exactly 0: the model starts as its skip path
            nn.init.zeros_(last.weight)

    def forward(self, x: Tensor) -> Tensor:
        gated = x * self.gate if self.gate is not None else x
        z = self._combine(self.body(gated).squeeze(-1), x)
        return self.head(z)

    def set_output_bias(self, z: float) -> None:
        self._split_output_bias(z, self.body[-1].bias)


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


@register_student("soft_tree")
class SoftTreeStudent(_ResidualMixin, Student):
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
        *,
        depth: int,
        n_trees: int,
        temperature: float,
        routing: str,
        output: str,
        output_margin: float,
        linear_skip: bool,
        residual_penalty: float,
        signs: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        # as typed: int() truncated depth 2.5 to 2 while the card said 2.5
        depth = checked_number("student.depth", depth, int, 1)
        n_trees = checked_number("student.n_trees", n_trees, int, 1)
        temperature = checked_number("student.temperature", temperature, float)
        routing = str(routing)
        linear_skip = checked_bool("student.linear_skip", linear_skip)
        residual_penalty = checked_number("student.residual_penalty", residual_penalty, float, 0)
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
        self.head = output_head(str(output), output_margin)
        self.skip = _linear_layer(n_features, signs or [0] * n_features) if linear_skip else None
        self.residual_penalty = float(residual_penalty)
        self.aux_loss = None
        if linear_skip:  # leaves start at 0: the model starts as its skip path
            with torch.no_grad():
                self.leaf.zero_()

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
        z = self._combine((mu * self.leaf).sum(dim=2).mean(dim=1) + self.bias, x)
        return self.head(z)

    def set_output_bias(self, z: float) -> None:
        self._split_output_bias(z, self.bias)


# --------------------------------------------------------------------------- factory / wrapper


def build_student(
    cfg: Mapping[str, Any], n_features: int, feature_names: Sequence[str] | None = None,
    interactions: Sequence[tuple[str, str]] | None = None,
) -> nn.Module:
    """Build the student a ``conf/student/<name>.yaml`` mapping describes.

    Args:
        cfg: mapping with ``name`` in :data:`STUDENTS` and every hyper-parameter its class
            reads (:meth:`Student.config_keys`; a missing one is an error naming it). Any kind
            may carry ``features:`` (a list of input column names it uses; the rest are
            dropped by a fixed selection inside the module, so it still takes all
            ``n_features`` columns; needs ``feature_names``) and ``monotone:``.
        n_features: number of input columns the module receives.
        feature_names: names of those columns, in order.
        interactions: the ``(a, b)`` pairs whose products (:func:`interaction_name`) are among
            ``feature_names``; a ``features:`` subset keeps a product when it keeps both columns.

    Returns:
        ``nn.Module``: standardised ``(N, n_features)`` float32 -> ``(N,)`` predicted VMAF.
    """
    name = cfg.get("name")
    cls = student_class(name)
    if feature_names is not None and len(feature_names) != n_features:
        raise VmafDistillError(
            f"student: {len(feature_names)} feature names for {n_features} features"
        )
    index = _feature_index(name, cfg.get("features"), feature_names, interactions)
    n_in = n_features if index is None else len(index)
    if n_in < 1:
        raise VmafDistillError(f"student {name!r}: no input features")
    in_names = None if feature_names is None else (
        list(feature_names) if index is None else [list(feature_names)[i] for i in index])
    signs = monotone_signs(cfg.get("monotone"), in_names, n_in)
    model = cls.from_config(cfg, n_in, signs)
    return model if index is None else _Select(index, model)


def _feature_index(
    name: Any, subset: Sequence[str] | None, feature_names: Sequence[str] | None,
    interactions: Sequence[tuple[str, str]] | None,
) -> list[int] | None:
    """Positions of a ``features:`` subset among ``feature_names`` (None: all columns), with
    the interaction products whose two columns it keeps."""
    if subset is None:
        return None
    if feature_names is None:
        raise VmafDistillError(f"student {name!r} selects features {list(subset)}: "
                               "feature_names are required")
    names = list(feature_names)
    subset = [str(c) for c in subset]
    missing = [c for c in subset if c not in names]
    if missing:
        raise VmafDistillError(
            f"student {name!r}: feature column(s) {missing} not among the inputs {names}"
        )
    # Interaction products (appended by ScaledStudent) follow their columns: kept when the
    # subset keeps both factors, an error when it drops one of them.
    for a, b in interactions or []:
        prod = interaction_name(a, b)
        if prod not in names:
            raise VmafDistillError(f"student {name!r}: interaction {prod!r} is not among "
                                   f"the inputs {names}")
        if prod in subset:
            continue
        dropped = [c for c in (a, b) if c not in subset]
        if dropped:
            raise VmafDistillError(
                f"student {name!r}: interaction {prod!r} uses column(s) {dropped}, which "
                f"features: {subset} leaves out (drop the interaction or keep the columns)"
            )
        subset.append(prod)
    return [names.index(c) for c in subset]


def raw_inputs_read(model: nn.Module) -> list[str] | None:
    """The raw input columns a :class:`ScaledStudent` reads, in input order: all of them, or
    under a ``features:`` subset the selected ones and both factors of each selected
    interaction product. None for any other module (nothing known about its inputs)."""
    if not isinstance(model, ScaledStudent):
        return None
    raw = list(model.feature_names)
    if not isinstance(model.student, _Select):
        return raw
    extended = student_input_names(raw, model.interactions)
    return _raw_columns_of([extended[i] for i in model.student.index.tolist()], raw,
                           model.interactions)


class ScaledStudent(nn.Module):
    """Raw features in, VMAF out: the fixed input pipeline plus a student (what gets exported).

    ``forward(x_raw)``: (1) slog1p on the columns named in ``transforms``; (2) the products of
    the ``interactions`` pairs appended (:func:`expand_inputs`); (3) ``(x - mean) / std``; (4)
    NaN -> 0, i.e. mean imputation (a temporal feature of a one-frame shot is NaN); (5) the
    student. All five are in the ONNX graph; its input is the F raw features.
    """

    def __init__(
        self,
        student: nn.Module,
        mean: Tensor | np.ndarray,
        std: Tensor | np.ndarray,
        feature_names: Sequence[str],
        transforms: Mapping[str, str] | None = None,
        interactions: Sequence[Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.student = student
        self.feature_names = [str(n) for n in feature_names]
        self.transforms = {
            k: v for k, v in resolve_transforms(transforms).items() if k in self.feature_names
        }
        self.interactions = resolve_interactions(interactions, self.feature_names)
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32))
        n = len(self.feature_names) + len(self.interactions)
        if mean_t.shape != (n,) or std_t.shape != (n,):
            raise VmafDistillError(
                f"scaler: mean/std shapes {tuple(mean_t.shape)}/{tuple(std_t.shape)} do not "
                f"match {len(self.feature_names)} feature names and "
                f"{len(self.interactions)} interaction(s)"
            )
        if not (torch.isfinite(mean_t).all() and (std_t > 0).all()):
            raise VmafDistillError("scaler: mean must be finite and std positive")
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)
        mask = torch.as_tensor(_transform_mask(self.feature_names, self.transforms))
        self.register_buffer("log_mask", mask)
        self._any_log = bool(mask.any())
        # Gather indices (not one-hot matmuls: a NaN in an unrelated column must not reach a
        # product through 0 * NaN).
        # (derived from the names: not in the state dict, so bundles without interactions load)
        self.register_buffer("pair_left", torch.tensor(
            [self.feature_names.index(a) for a, _ in self.interactions], dtype=torch.long),
            persistent=False)
        self.register_buffer("pair_right", torch.tensor(
            [self.feature_names.index(b) for _, b in self.interactions], dtype=torch.long),
            persistent=False)

    @property
    def n_features(self) -> int:
        """Number of raw input columns."""
        return len(self.feature_names)

    @property
    def input_names(self) -> list[str]:
        """The student's input columns: the raw features, then the interaction products."""
        return student_input_names(self.feature_names, self.interactions)

    def standardise(self, x_raw: Tensor) -> Tensor:
        """Steps (1)-(4) of :meth:`forward`: the student's input."""
        x = x_raw.to(self.mean.dtype)
        if self._any_log:
            logx = torch.sign(x) * torch.log(1.0 + torch.abs(x))
            x = torch.where(self.log_mask, logx, x)
        if self.interactions:
            prods = x.index_select(1, self.pair_left) * x.index_select(1, self.pair_right)
            x = torch.cat([x, prods], dim=1)
        z = (x - self.mean) / self.std
        return torch.where(torch.isnan(z), torch.zeros_like(z), z)

    def forward(self, x_raw: Tensor) -> Tensor:
        """(N, F) raw feature values -> (N,) predicted VMAF."""
        return self.student(self.standardise(x_raw))


def init_output_bias(model: nn.Module, target_mean: float) -> None:
    """Set the student's last bias so that, with zero hidden contribution, it predicts
    ``target_mean`` (VMAF). Speeds up early training; call before optimising. Works on a
    student, a feature-selecting student or a :class:`ScaledStudent`
    (:meth:`Student.init_output_bias` of the student inside)."""
    inner = model
    while isinstance(inner, (ScaledStudent, _Select)):
        inner = inner.student if isinstance(inner, ScaledStudent) else inner.inner
    if not isinstance(inner, Student):
        raise VmafDistillError(f"init_output_bias: unsupported module {type(inner).__name__}")
    inner.init_output_bias(target_mean)


def auxiliary_loss(model: nn.Module) -> Tensor | None:
    """Sum of the ``aux_loss`` terms the last training-mode forward of ``model``'s submodules
    stored (residual penalties), or None; clears them."""
    total: Tensor | None = None
    for module in model.modules():
        aux = getattr(module, "aux_loss", None)
        if isinstance(aux, Tensor):
            total = aux if total is None else total + aux
            module.aux_loss = None
    return total


def monotone_check(
    model: nn.Module, x_raw: np.ndarray, feature_names: Sequence[str],
    monotone: Mapping[str, int] | None, step_frac: float = 0.02,
) -> dict[str, float]:
    """How far the trained ``model`` breaks its ``monotone`` constraints on the rows ``x_raw``.

    Weight signs guarantee monotonicity only when no other input involves the column; an
    ``interactions`` product does, so the promise is checked numerically: every row's column is
    moved by ``step_frac`` of its range in the direction that must not raise the score (sign
    -1: up, +1: down) and the largest rise of the prediction (VMAF points) is returned per
    column; 0.0 means monotone on every row. Rows whose checked column is NaN are skipped
    (other NaN columns are imputed by the model, as in use); NaN is returned for a column with
    no such row or a non-finite prediction (not checked: callers treat it as a failure).
    """
    names = list(feature_names)
    x = np.asarray(x_raw, dtype=np.float32)
    out: dict[str, float] = {}
    if not monotone:
        return out
    model.eval()
    with torch.no_grad():
        for col, sign in dict(monotone).items():
            if col not in names:
                continue
            j = names.index(col)
            rows = x[np.isfinite(x[:, j])]
            if len(rows) == 0:
                out[col] = float("nan")
                continue
            span = float(np.ptp(rows[:, j])) or 1.0
            moved = rows.copy()
            moved[:, j] -= float(sign) * step_frac * span
            base = model(torch.from_numpy(rows)).numpy().astype(np.float64)
            rise = model(torch.from_numpy(moved)).numpy().astype(np.float64) - base
            out[col] = float(max(0.0, rise.max())) if np.isfinite(rise).all() else float("nan")
    return out


def scaled_student(
    cfg: Mapping[str, Any],
    mean: Tensor | np.ndarray,
    std: Tensor | np.ndarray,
    feature_names: Sequence[str],
    transforms: Mapping[str, str] | None = None,
    interactions: Sequence[Sequence[str]] | None = None,
) -> ScaledStudent:
    """:func:`build_student` on the student's input columns (raw features, then the
    ``interactions`` products) wrapped in a :class:`ScaledStudent` with the given scaler."""
    in_names = student_input_names(feature_names, interactions)
    pairs = resolve_interactions(interactions, feature_names)
    return ScaledStudent(build_student(cfg, len(in_names), in_names, pairs), mean, std,
                         feature_names, transforms=transforms, interactions=interactions)


def make_scaled_student(
    cfg: Mapping[str, Any],
    x_train: np.ndarray,
    feature_names: Sequence[str],
    y_train: np.ndarray | None = None,
) -> ScaledStudent:
    """Convenience: scaler fitted on ``x_train`` with the config's ``transforms`` (``null`` ->
    :data:`DEFAULT_TRANSFORMS`) and ``interactions`` + :func:`build_student`, wrapped in a
    :class:`ScaledStudent`.
    With ``y_train``, the output bias starts at the mean target (:func:`init_output_bias`)."""
    transforms = resolve_transforms(cfg.get("transforms"))
    interactions = cfg.get("interactions")
    mean, std = fit_scaler(x_train, feature_names, transforms, interactions,
                           read=student_inputs_read(cfg, feature_names, interactions))
    model = scaled_student(cfg, mean, std, feature_names, transforms, interactions)
    if y_train is not None:
        init_output_bias(model, float(np.nanmean(np.asarray(y_train, dtype=np.float64))))
    return model
