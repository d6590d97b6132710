"""Distillation losses: ``forward(pred (N,), target (N,)) -> scalar``, built from ``conf/loss``.

* ``mse``: mean (p - y)^2.
* ``huber``: mean Huber_delta(p - y).
* ``temperature``: temperature-scaled distillation through soft quality classes: teacher and
  student scores become Gaussian-kernel distributions over K bin centres spanning 0..100 and the
  loss is tau^2 · KL(p_teacher || p_student) (+ alpha · Huber on the scores, in the loss's
  space). ``tau`` is fixed or learnable (a bounded log-tau parameter of the loss module).

``space: logit`` compares ``g(pred)`` with ``g(target)``, ``g(v) = logit((v + m) / (100 + 2m))``
(the inverse of a bounded student head with margin ``m``), so a low-VMAF error counts as much as
the same *relative* error mid-range (a sigmoidal rate-quality curve is linear there);
``space: vmaf`` compares raw points (``conf/loss/huber_points.yaml``; the other losses' configs
default to ``logit``).

Every loss may add ``rank_weight`` · (1 - corr(pred, target)) over the batch, with ``corr`` the
Pearson correlation (``rank_kind: plcc``) or the Pearson correlation of soft ranks
(``rank_kind: soft_srocc``). Formulas: ``docs/students.md``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
import torch.nn.functional as nnf
from torch import Tensor, nn

from ..config import checked_bool, checked_number, refuse_unknown_keys
from ..errors import VmafDistillError
from ..registry import register

__all__ = [
    "LOSSES",
    "LOSS_SPACES",
    "DistillLoss",
    "HuberLoss",
    "MSELoss",
    "TemperatureLoss",
    "build_loss",
    "pearson_corr",
    "register_loss",
    "soft_rank",
    "vmaf_logit",
]

#: Loss kinds: the ``name`` key of a loss config -> its class (filled by :func:`register_loss`).
LOSSES: dict[str, type[DistillLoss]] = {}
_L = TypeVar("_L", bound="type[DistillLoss]")
_RANK_KINDS: tuple[str, ...] = ("plcc", "soft_srocc")
#: Where the point loss compares scores: ``vmaf`` (raw points) or ``logit`` (:func:`vmaf_logit`).
LOSS_SPACES: tuple[str, ...] = ("vmaf", "logit")
#: Clamp of the unit interval before the logit (keeps out-of-range scores finite).
_LOGIT_EPS = 1e-4


def vmaf_logit(v: Tensor, margin: float = 2.0) -> Tensor:
    """g(v) = logit((v + m) / (100 + 2m)): the inverse of the students' bounded head with margin
    m. Scores outside (-m, 100 + m) are clamped to the unit interval's [1e-4, 1 - 1e-4]."""
    u = (v + margin) / (100.0 + 2.0 * margin)
    u = u.clamp(_LOGIT_EPS, 1.0 - _LOGIT_EPS)
    return torch.log(u) - torch.log1p(-u)


def pearson_corr(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Differentiable Pearson correlation of two 1-D tensors (0 when either is constant)."""
    a = a - a.mean()
    b = b - b.mean()
    return (a * b).sum() / (torch.sqrt((a * a).sum() * (b * b).sum()) + eps)


def soft_rank(x: Tensor, scale: float) -> Tensor:
    """Soft ranks r_i = sum_j sigmoid((x_i - x_j) / scale): rank - 0.5 as scale -> 0."""
    return torch.sigmoid((x[:, None] - x[None, :]) / scale).sum(dim=1)


def register_loss(name: str) -> Callable[[_L], _L]:
    """Class decorator: make a :class:`DistillLoss` subclass buildable as ``name: <name>``
    (its config keys are its constructor's keyword arguments, :meth:`DistillLoss.config_keys`)."""
    return lambda cls: register(LOSSES, "loss", (name,), cls)


class DistillLoss(nn.Module):
    """Base: the per-kind point loss plus the optional batch correlation term.

    A subclass implements :meth:`point_loss`; its own hyper-parameters are keyword arguments of
    its ``__init__``, which passes ``**kw`` (the common keys) on to this one.
    """

    def __init__(self, *, rank_weight: float, rank_kind: str, rank_scale: float, space: str,
                 margin: float) -> None:
        super().__init__()
        if space not in LOSS_SPACES:
            raise VmafDistillError(f"loss space: unknown {space!r}; known: {LOSS_SPACES}")
        margin = checked_number("loss.margin", margin, float)
        rank_weight = checked_number("loss.rank_weight", rank_weight, float)
        rank_scale = checked_number("loss.rank_scale", rank_scale, float)
        if not margin > 0:
            raise VmafDistillError(f"loss margin must be > 0, got {margin}")
        self.space = space
        self.margin = float(margin)
        if rank_kind not in _RANK_KINDS:
            raise VmafDistillError(f"loss rank_kind: unknown {rank_kind!r}; known: {_RANK_KINDS}")
        if rank_weight < 0 or not rank_scale > 0:
            raise VmafDistillError("loss: rank_weight must be >= 0 and rank_scale > 0")
        self.rank_weight = float(rank_weight)
        self.rank_kind = rank_kind
        self.rank_scale = float(rank_scale)

    @classmethod
    def config_keys(cls) -> tuple[str, ...]:
        """The config keys this loss takes: the keyword arguments of its ``__init__`` and, while
        an ``__init__`` passes ``**kw`` on, of its bases' (down to the common ones here)."""
        keys: list[str] = []
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = list(inspect.signature(init).parameters.values())
            keys += [p.name for p in params if p.name != "self"
                     and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break
        return tuple(dict.fromkeys(keys))

    def to_space(self, v: Tensor) -> Tensor:
        """Scores in the space the point loss compares them in (identity for ``vmaf``)."""
        return v if self.space == "vmaf" else vmaf_logit(v, self.margin)

    def point_loss(self, pred: Tensor, target: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def rank_term(self, pred: Tensor, target: Tensor) -> Tensor:
        """1 - corr(pred, target) over the batch (0 for batches of fewer than 2)."""
        if pred.numel() < 2:
            return pred.sum() * 0.0
        if self.rank_kind == "soft_srocc":
            pred = soft_rank(pred, self.rank_scale)
            target = soft_rank(target, self.rank_scale)
        return 1.0 - pearson_corr(pred, target)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        """Scalar loss of predictions ``pred`` (N,) against teacher scores ``target`` (N,)."""
        if pred.shape != target.shape or pred.dim() != 1:
            raise VmafDistillError(
                f"loss: pred and target must both be (N,), got {tuple(pred.shape)} and "
                f"{tuple(target.shape)}"
            )
        target = target.to(pred.dtype)
        loss = self.point_loss(self.to_space(pred), self.to_space(target))
        if self.rank_weight > 0:
            loss = loss + self.rank_weight * self.rank_term(pred, target)
        return loss


@register_loss("mse")
class MSELoss(DistillLoss):
    """mean (pred - target)^2."""

    def point_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return nnf.mse_loss(pred, target)


@register_loss("huber")
class HuberLoss(DistillLoss):
    """mean Huber_delta(pred - target): quadratic within ``delta``, linear beyond; pred, target
    and ``delta`` in the loss's ``space`` (logit units in ``space: logit``, VMAF points in
    ``space: vmaf``)."""

    def __init__(self, *, delta: float, **kw: Any) -> None:
        super().__init__(**kw)
        # an infinite delta is the squared error: a meaningful choice
        delta = checked_number("loss.delta", delta, float, finite=False)
        if not delta > 0:
            raise VmafDistillError(f"huber delta must be > 0, got {delta}")
        self.delta = float(delta)

    def point_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        return nnf.huber_loss(pred, target, delta=self.delta)


@register_loss("temperature")
class TemperatureLoss(DistillLoss):
    """Temperature-scaled distillation through soft quality classes.

    With K bin centres c_k = linspace(lo, hi, K), spacing s and width sigma = tau·s, a score v
    maps to q_k(v) = softmax_k(-(v - c_k)^2 / (2 sigma^2)). The loss is
    tau^2 · mean_batch KL(q(target) || q(pred)) + alpha · Huber_delta(pred - target).
    Scores, centres, s and delta are in the loss's ``space``: in ``logit`` the centres are
    equally spaced between g(lo) and g(hi) (docs/students.md gives them in VMAF).

    Its gradient in pred is tau^2 (E_q(pred)[c] - E_q(target)[c]) / sigma^2, which is linear in
    the error inside the bin range and saturates (never vanishes) outside it. The tau^2 factor
    makes that gradient independent of tau. ``learnable_tau`` makes log tau a parameter, bounded
    to [log tau_min, log tau_max] by a sigmoid, because tau^2·KL falls as tau grows (a free tau
    would flatten both distributions instead of fitting).
    """

    def __init__(
        self,
        *,
        tau: float,
        n_bins: int,
        lo: float,
        hi: float,
        alpha: float,
        delta: float,
        learnable_tau: bool,
        tau_min: float,
        tau_max: float,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        # read as numbers and bounded here: a negative alpha silently meant 0, a negative delta
        # failed inside the fit, tau_min == tau_max divided by zero
        n_bins = checked_number("loss.n_bins", n_bins, int, 2)
        learnable_tau = checked_bool("loss.learnable_tau", learnable_tau)  # "no" was true
        lo, hi = checked_number("loss.lo", lo, float), checked_number("loss.hi", hi, float)
        alpha = checked_number("loss.alpha", alpha, float, 0)
        # an infinite Huber delta is the squared error: a meaningful choice
        delta = checked_number("loss.delta", delta, float, 0, False, finite=False)
        tau = checked_number("loss.tau", tau, float, 0, False)
        tau_min = checked_number("loss.tau_min", tau_min, float, 0, False)
        tau_max = checked_number("loss.tau_max", tau_max, float, 0, False)
        if not hi > lo:
            raise VmafDistillError(f"temperature loss: need hi > lo, got [{lo}, {hi}]")
        if learnable_tau and not (tau_min < tau_max and tau_min <= tau <= tau_max):
            raise VmafDistillError(
                f"temperature loss: a learnable tau needs tau_min < tau_max and "
                f"tau_min <= tau <= tau_max, got tau={tau}, [{tau_min}, {tau_max}]"
            )
        # bins span [lo, hi] VMAF points; in logit space, [g(lo), g(hi)] (equally spaced there)
        lo_t, hi_t = (float(self.to_space(torch.tensor([float(v)]))[0]) for v in (lo, hi))
        self.register_buffer("centres", torch.linspace(lo_t, hi_t, int(n_bins)))
        self.spacing = (hi_t - lo_t) / (int(n_bins) - 1)
        self.alpha, self.delta = float(alpha), float(delta)
        self.learnable_tau = bool(learnable_tau)
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.log_tau_min, self.log_tau_max = math.log(tau_min), math.log(tau_max)
        if self.learnable_tau:
            # log tau = lmin + (lmax - lmin)·sigmoid(raw); raw initialised so tau == tau.
            frac = (math.log(tau) - self.log_tau_min) / (self.log_tau_max - self.log_tau_min)
            frac = min(max(frac, 1e-4), 1 - 1e-4)
            self.raw_tau = nn.Parameter(torch.tensor(math.log(frac / (1 - frac))))
        else:
            self.register_buffer("fixed_log_tau", torch.tensor(math.log(tau)))

    @property
    def log_tau(self) -> Tensor:
        """Current log tau (a differentiable function of ``raw_tau`` when learnable)."""
        if self.learnable_tau:
            span = self.log_tau_max - self.log_tau_min
            return self.log_tau_min + span * torch.sigmoid(self.raw_tau)
        return self.fixed_log_tau

    @property
    def tau(self) -> float:
        """Current tau as a float (for logging)."""
        return float(torch.exp(self.log_tau).detach())

    def log_probs(self, v: Tensor, tau: Tensor) -> Tensor:
        """(N, K) log q_k(v) for the given tau."""
        sigma = tau * self.spacing
        logits = -((v[:, None] - self.centres[None, :]) ** 2) / (2.0 * sigma**2)
        return torch.log_softmax(logits, dim=1)

    def point_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        tau = torch.exp(self.log_tau).to(pred.dtype)
        log_t = self.log_probs(target, tau)
        log_s = self.log_probs(pred, tau)
        kl = nnf.kl_div(log_s, log_t, reduction="batchmean", log_target=True)
        loss = tau**2 * kl
        if self.alpha > 0:
            loss = loss + self.alpha * nnf.huber_loss(pred, target, delta=self.delta)
        return loss


def build_loss(cfg: Mapping[str, Any]) -> nn.Module:
    """Build the loss a ``conf/loss/<name>.yaml`` mapping describes (``name`` in :data:`LOSSES`).

    The other keys are the class's :meth:`~DistillLoss.config_keys`; a key left out (or null)
    takes its value from ``conf/loss/<name>.yaml`` (the only place defaults live); an unknown
    key is an error listing the known ones. Common keys: ``space``,
    ``margin``, ``rank_weight``, ``rank_kind`` (``plcc`` | ``soft_srocc``), ``rank_scale``.
    ``huber``: ``delta``. ``temperature``: ``tau``, ``n_bins``, ``lo``, ``hi``, ``alpha``,
    ``delta``, ``learnable_tau``, ``tau_min``, ``tau_max``. Learnable parameters are the module's.
    """
    kw = {k: v for k, v in dict(cfg).items() if v is not None}
    name = kw.pop("name", None)
    if name not in LOSSES:
        raise VmafDistillError(
            f"loss config: unknown name {name!r}; known: {', '.join(sorted(LOSSES))}")
    cls = LOSSES[name]
    allowed = set(cls.config_keys())
    refuse_unknown_keys(f"loss {name!r}", kw, allowed)
    defaults = _yaml_defaults(name)
    kw = {**{k: v for k, v in defaults.items() if k in allowed and v is not None}, **kw}
    missing = sorted(allowed - set(kw))
    if missing:
        raise VmafDistillError(f"loss {name!r}: missing key(s) {missing} (no conf/loss/{name}.yaml "
                               "to take them from)")
    return cls(**kw)


#: What a key a *stored* loss config (a bundle's training loss) lacks meant when it was saved:
#: the constructor defaults of the time, before the defaults moved to conf/loss/ (VMAF-point
#: space; conf/loss/huber.yaml's logit space would silently change an old bundle's loss).
_ABSENT_IN_OLD_CONFIGS: dict[str, dict[str, Any]] = {
    "*": {"rank_weight": 0.0, "rank_kind": "plcc", "rank_scale": 1.0, "space": "vmaf",
          "margin": 2.0},
    "huber": {"delta": 5.0},
    "temperature": {"tau": 1.0, "n_bins": 21, "lo": 0.0, "hi": 100.0, "alpha": 0.0, "delta": 5.0,
                    "learnable_tau": False, "tau_min": 0.25, "tau_max": 4.0},
}


def complete_stored_loss_cfg(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A loss config read back from a bundle, with each key it lacks (or holds as null) set to
    what it meant when the bundle was saved (not today's conf/loss defaults)."""
    out = dict(cfg)
    name = str(out.get("name"))
    for key, value in {**_ABSENT_IN_OLD_CONFIGS["*"],
                       **_ABSENT_IN_OLD_CONFIGS.get(name, {})}.items():
        if out.get(key) is None:
            out[key] = value
    return out


def _yaml_defaults(name: str) -> dict[str, Any]:
    """``conf/loss/<name>.yaml``: the defaults of the keys a loss config leaves out ({} when
    there is no such file, e.g. a loss registered by user code with a complete config)."""
    from ..config import conf_dir, load_yaml

    return load_yaml(f"loss/{name}") if (conf_dir() / "loss" / f"{name}.yaml").is_file() else {}
