"""Distillation losses against closed forms and independent numpy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp

from vmafdistill.errors import VmafDistillError
from vmafdistill.students import build_loss


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _np_temperature(pred, target, tau, n_bins=21, lo=0.0, hi=100.0) -> float:
    """numpy reference: tau^2 * mean KL(q(target) || q(pred)), q = normalised Gaussian kernel."""
    c = np.linspace(lo, hi, n_bins)
    sigma = tau * (hi - lo) / (n_bins - 1)

    def log_q(v):
        logits = -((np.asarray(v)[:, None] - c) ** 2) / (2 * sigma**2)
        return logits - logsumexp(logits, axis=1, keepdims=True)

    lt, ls = log_q(target), log_q(pred)
    return float(tau**2 * np.mean(np.sum(np.exp(lt) * (lt - ls), axis=1)))


def test_mse_and_huber_closed_form() -> None:
    rng = np.random.default_rng(0)
    p, y = rng.uniform(0, 100, 50), rng.uniform(0, 100, 50)
    mse = build_loss({"name": "mse", "space": "vmaf"})(_t(p), _t(y))
    assert float(mse) == pytest.approx(np.mean((p - y) ** 2), rel=1e-12)
    d = 5.0
    e = np.abs(p - y)
    ref = np.mean(np.where(e <= d, 0.5 * e**2, d * (e - 0.5 * d)))
    huber = build_loss({"name": "huber", "space": "vmaf", "delta": d})
    assert float(huber(_t(p), _t(y))) == pytest.approx(ref)


def test_temperature_matches_numpy_reference() -> None:
    rng = np.random.default_rng(1)
    p, y = rng.uniform(-10, 110, 40), rng.uniform(0, 100, 40)
    for tau in (0.5, 1.0, 2.5):
        loss = build_loss({"name": "temperature", "space": "vmaf", "tau": tau})(_t(p), _t(y))
        assert float(loss) == pytest.approx(_np_temperature(p, y, tau), rel=1e-9, abs=1e-12)


def test_temperature_minimised_at_target() -> None:
    loss_fn = build_loss({"name": "temperature", "space": "vmaf", "tau": 1.0})
    for y in (3.0, 37.5, 61.2, 99.0):
        grid = np.linspace(y - 10, y + 10, 401)
        values = [float(loss_fn(_t([g]), _t([y]))) for g in grid]
        assert grid[int(np.argmin(values))] == pytest.approx(y, abs=0.026)
        pred = _t([y]).requires_grad_(True)
        at = loss_fn(pred, _t([y]))
        at.backward()
        assert at.item() == pytest.approx(0.0, abs=1e-12)
        assert abs(pred.grad.item()) < 1e-9


def test_temperature_gradient_closed_form_and_far_student() -> None:
    tau, n_bins = 1.5, 21
    loss_fn = build_loss({"name": "temperature", "space": "vmaf", "tau": tau, "n_bins": n_bins})
    c = np.linspace(0, 100, n_bins)
    sigma = tau * 100 / (n_bins - 1)
    y = np.array([95.0, 90.0, 5.0, 50.0])
    p = np.array([0.0, -40.0, 140.0, 52.0])  # far below, outside the range both sides, close
    pred = _t(p).requires_grad_(True)
    loss_fn(pred, _t(y)).backward()
    grad = pred.grad.numpy()

    def mean_c(v):
        w = np.exp(-((v[:, None] - c) ** 2) / (2 * sigma**2))
        return (w / w.sum(axis=1, keepdims=True)) @ c

    # d/dp tau^2 KL = tau^2 (E_q(p)[c] - E_q(y)[c]) / sigma^2, averaged over the batch of 4
    want = tau**2 * (mean_c(p) - mean_c(y)) / sigma**2 / len(p)
    np.testing.assert_allclose(grad, want, rtol=1e-9, atol=1e-15)
    assert np.all(np.sign(grad) == np.sign(p - y))
    assert np.all(np.abs(grad[:3]) > 0.1 * np.abs(grad[3]))  # far students still get pulled


def test_temperature_loss_trains_a_far_student() -> None:
    torch.manual_seed(0)
    y = torch.tensor([92.0, 15.0, 60.0], dtype=torch.float64)
    pred = torch.tensor([2.0, 98.0, -30.0], dtype=torch.float64, requires_grad=True)
    loss_fn = build_loss({"name": "temperature", "space": "vmaf", "tau": 1.0})
    opt = torch.optim.Adam([pred], lr=1.0)
    for _ in range(400):
        opt.zero_grad()
        loss_fn(pred, y).backward()
        opt.step()
    assert torch.allclose(pred.detach(), y, atol=0.5)


def test_learnable_tau_gets_gradient_and_stays_bounded() -> None:
    cfg = {"name": "temperature", "space": "vmaf", "tau": 1.0, "learnable_tau": True,
           "tau_min": 0.25, "tau_max": 4.0, "alpha": 0.1}
    loss_fn = build_loss(cfg)
    params = list(loss_fn.parameters())
    assert len(params) == 1
    assert loss_fn.tau == pytest.approx(1.0, rel=1e-6)
    p = _t([10.0, 40.0, 80.0]).requires_grad_(True)
    loss = loss_fn(p, _t([30.0, 45.0, 60.0]))
    loss.backward()
    g = params[0].grad
    assert g is not None and torch.isfinite(g) and abs(float(g)) > 1e-6
    assert torch.isfinite(p.grad).all() and (p.grad.abs() > 0).all()
    with torch.no_grad():
        params[0].fill_(1e3)
    assert loss_fn.tau == pytest.approx(4.0, rel=1e-6)
    assert list(build_loss({"name": "temperature", "space": "vmaf"}).parameters()) == []


def test_rank_terms_against_scipy() -> None:
    rng = np.random.default_rng(2)
    p, y = rng.uniform(0, 100, 64), rng.uniform(0, 100, 64)
    base = float(build_loss({"name": "mse", "space": "vmaf"})(_t(p), _t(y)))
    plcc = float(build_loss({"name": "mse", "space": "vmaf", "rank_weight": 2.0})(_t(p), _t(y)))
    assert plcc - base == pytest.approx(2.0 * (1 - stats.pearsonr(p, y).statistic), rel=1e-6)
    soft = build_loss({"name": "mse", "space": "vmaf", "rank_weight": 1.0,
                       "rank_kind": "soft_srocc", "rank_scale": 1e-3})
    srocc = float(soft(_t(p), _t(y))) - base
    assert srocc == pytest.approx(1 - stats.spearmanr(p, y).statistic, abs=1e-6)
    pred = _t(p).requires_grad_(True)
    build_loss({"name": "huber", "space": "vmaf", "rank_weight": 1.0, "rank_kind": "soft_srocc",
                "rank_scale": 5.0})(pred, _t(y)).backward()
    assert torch.isfinite(pred.grad).all() and (pred.grad.abs() > 0).any()


def test_loss_config_errors() -> None:
    with pytest.raises(VmafDistillError, match="unknown name"):
        build_loss({"name": "l1"})
    with pytest.raises(VmafDistillError, match="temp"):
        build_loss({"name": "huber", "space": "vmaf", "temp": 3})
    with pytest.raises(VmafDistillError, match=r"\(N,\)"):
        build_loss({"name": "mse", "space": "vmaf"})(torch.zeros(3, 1), torch.zeros(3))


def test_shipped_loss_configs_build() -> None:
    from omegaconf import OmegaConf

    from vmafdistill.config import conf_dir

    files = sorted((conf_dir() / "loss").glob("*.yaml"))
    assert {f.stem for f in files} >= {"mse", "huber", "temperature"}
    for f in files:
        loss = build_loss(OmegaConf.to_container(OmegaConf.load(f)))
        value = loss(_t([10.0, 50.0]), _t([20.0, 45.0]))
        assert torch.isfinite(value) and float(value) > 0


def test_every_loss_config_builds_through_the_registry() -> None:
    from omegaconf import OmegaConf

    from vmafdistill.config import conf_dir
    from vmafdistill.students.losses import LOSSES

    for f in sorted((conf_dir() / "loss").glob("*.yaml")):
        cfg = OmegaConf.to_container(OmegaConf.load(f))
        assert cfg["name"] in LOSSES, f.name
        loss = build_loss(cfg)
        assert type(loss) is LOSSES[cfg["name"]], f.name
        # every key a YAML sets is one its class takes (null: inert, e.g. a sweep axis `tau`)
        set_keys = {k for k, v in cfg.items() if v is not None} - {"name"}
        assert set_keys <= set(LOSSES[cfg["name"]].config_keys()), f.name


def test_a_loss_registered_in_one_place_builds_through_the_factory(monkeypatch) -> None:
    """Adding a loss = one class + one registration line (+ conf/loss/<name>.yaml): the
    docs/students.md example, registered here, builds through build_loss with its own keys."""
    from vmafdistill.students import losses

    monkeypatch.setattr(losses, "LOSSES", dict(losses.LOSSES))  # leave the real registry alone

    @losses.register_loss("logcosh")
    class LogCoshLoss(losses.DistillLoss):
        """mean scale·log(cosh((p - y) / scale)): quadratic near 0, linear beyond."""

        def __init__(self, scale: float = 1.0, **kw) -> None:
            super().__init__(**kw)
            self.scale = float(scale)

        def point_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            r = ((pred - target) / self.scale).abs()
            return (self.scale * (r + torch.nn.functional.softplus(-2 * r) - np.log(2.0))).mean()

    assert LogCoshLoss.config_keys() == ("scale", "rank_weight", "rank_kind", "rank_scale",
                                         "space", "margin")
    cfg = {"name": "logcosh", "space": "vmaf", "margin": 2.0, "scale": 4.0, "rank_weight": 0.0,
           "rank_kind": "plcc", "rank_scale": 1.0}  # what conf/loss/logcosh.yaml would hold
    loss = build_loss(cfg)
    assert isinstance(loss, LogCoshLoss) and loss.scale == 4.0
    p, y = np.array([10.0, 50.0, 90.0]), np.array([20.0, 45.0, 91.0])
    want = float(np.mean(4.0 * np.log(np.cosh((p - y) / 4.0))))
    assert float(loss(_t(p), _t(y))) == pytest.approx(want, rel=1e-9)
    with pytest.raises(VmafDistillError, match=r"unknown key\(s\) \['delta'\]"):
        build_loss({**cfg, "delta": 1.0})
    with pytest.raises(VmafDistillError, match="already registered"):
        losses.register_loss("huber")(LogCoshLoss)


def test_logit_space_losses_match_numpy() -> None:
    from vmafdistill.students.losses import vmaf_logit

    rng = np.random.default_rng(0)
    y = rng.uniform(0, 100, 40)
    p = np.clip(y + rng.normal(0, 8, 40), 0.0, 100.0)
    g = lambda v: np.log((v + 2.0) / (100.0 - v + 2.0))  # noqa: E731  logit((v+m)/(100+2m))
    np.testing.assert_allclose(vmaf_logit(torch.tensor(y), 2.0).numpy(), g(y), rtol=1e-12)
    pt, yt = torch.tensor(p), torch.tensor(y)
    mse = build_loss({"name": "mse", "space": "logit", "margin": 2.0})
    assert float(mse(pt, yt)) == pytest.approx(np.mean((g(p) - g(y)) ** 2), rel=1e-10)
    e = np.abs(g(p) - g(y))
    hub = np.where(e <= 0.5, 0.5 * e**2, 0.5 * (e - 0.25))
    huber = build_loss({"name": "huber", "space": "logit", "delta": 0.5})
    assert float(huber(pt, yt)) == pytest.approx(hub.mean(), rel=1e-10)
    # a low-VMAF error weighs more than the same error mid-range (relative, not absolute)
    lo_err = float(mse(torch.tensor([3.0]), torch.tensor([1.0])))
    mid_err = float(mse(torch.tensor([52.0]), torch.tensor([50.0])))
    assert lo_err > 10 * mid_err
    # temperature loss: bin centres equally spaced in logit space between g(lo) and g(hi)
    temp = build_loss({"name": "temperature", "space": "logit", "n_bins": 5})
    np.testing.assert_allclose(temp.centres.numpy(), np.linspace(g(0.0), g(100.0), 5), atol=1e-5)
    assert float(temp(yt.float(), yt.float())) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(VmafDistillError, match="space"):
        build_loss({"name": "mse", "space": "probit"})


def test_loss_defaults_live_in_conf_only() -> None:
    """No loss constructor carries a default; a key a config leaves out takes the value of
    conf/loss/<name>.yaml (huber's delta there is 1.0 in logit units)."""
    import inspect

    from vmafdistill.students import losses

    shipped = [c for c in losses.LOSSES.values() if c.__module__ == losses.__name__]
    assert len(shipped) >= 3
    for cls in shipped:
        for klass in cls.__mro__:
            if "__init__" in vars(klass) and issubclass(klass, losses.DistillLoss):
                params = inspect.signature(klass.__init__).parameters.values()
                with_default = [p.name for p in params if p.default is not p.empty]
                assert not with_default, (klass.__name__, with_default)
    huber = build_loss({"name": "huber"})
    assert huber.delta == 1.0 and huber.space == "logit"


def test_a_stored_loss_config_keeps_its_old_meaning() -> None:
    """A bundle saved before the loss defaults moved to conf/loss/ records no `space`: its
    Huber loss was on VMAF points with delta 5 (the constructor defaults then), not the logit
    space conf/loss/huber.yaml now sets; fine-tuning it must keep that loss."""
    from vmafdistill.students.losses import complete_stored_loss_cfg

    old = {"name": "huber", "rank_weight": 0.0, "tau": None}
    loss = build_loss(complete_stored_loss_cfg(old))
    assert loss.space == "vmaf" and loss.delta == 5.0 and loss.margin == 2.0
    full = {"name": "huber", "space": "logit", "delta": 1.0, "margin": 2.0, "rank_weight": 0.0,
            "rank_kind": "plcc", "rank_scale": 1.0, "tau": None}
    assert complete_stored_loss_cfg(full) == full  # a complete config is kept as it is
