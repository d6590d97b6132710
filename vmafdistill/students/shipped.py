"""The trainable bundle of an exported student, rebuilt from its ONNX file and card.

An exported student is an ONNX graph whose initializers are the trained module's state
(``inner.<name>``; ``<name>`` in a ``precision=float32`` export) and a card that records how
it was built (student config, feature names, transforms, interactions, conformal q, corpus,
training domain). That is everything :func:`load_bundle` needs, so
the shipped student (``checkpoints/vmafdistill_default.onnx``) can be fine-tuned without the
corpus it was trained on: :func:`bundle_from_onnx` rebuilds the :class:`ScaledStudent`, loads the
initializers and checks that torch reproduces onnxruntime on rows across the card's training
domain before anything is written.

    python -m vmafdistill.students.shipped checkpoints/vmafdistill_default.onnx [OUT.pt]
"""

from __future__ import annotations

import copy
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError, VmafDistillError
from ..export import float32_parity_floor

__all__ = [
    "SHIPPED_BUNDLE",
    "SHIPPED_ONNX",
    "bundle_from_onnx",
    "rebuilt_training_domain",
    "resolve_student_source",
    "write_bundle_from_onnx",
]

#: The shipped student (ONNX + card) and its trainable bundle beside them (all ship in the wheel).
SHIPPED_ONNX = Path(__file__).resolve().parents[1] / "checkpoints" / "vmafdistill_default.onnx"
SHIPPED_BUNDLE = SHIPPED_ONNX.with_suffix(".pt")

#: Loss the shipped recipe trains with (conf/experiment/default_student.yaml: loss=huber_points); a
#: card does not record its loss, fine-tuning lays `loss=` overrides over this.
_SHIPPED_LOSS = "huber_points"

#: Torch vs onnxruntime, absolute VMAF: the export's parity tolerance (conf/export.yaml).
PARITY_TOL = 1e-5

#: The least rebuild tolerance of a ``precision=float32`` card, absolute VMAF: the export's
#: float32 floor at VMAF 100 (4 float32 steps, 7.6e-6 each). onnxruntime and torch round each
#: float32 op apart: 1 to 2 steps on domain rows (logistic, mlp and soft-tree students); a
#: misplaced weight moves the output by orders more.
FLOAT32_REBUILD_TOL = float32_parity_floor(np.array([100.0]))


def _initializers(onnx_path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(onnx_path))
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelError(f"{onnx_path}: not a valid ONNX model ({exc})") from None
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _domain_rows(card: Mapping[str, Any], n: int = 512, seed: int = 0) -> np.ndarray:
    """Rows spread over the card's training domain (uniform per feature, one codec flag set)."""
    names = list(card["feature_names"])
    dom = (card.get("training_domain") or {}).get("features") or {}
    rng = np.random.default_rng(seed)
    x = np.zeros((n, len(names)), dtype=np.float32)
    codec_cols = [i for i, c in enumerate(names) if c.startswith("codec_")]
    for j, name in enumerate(names):
        if j in codec_cols:
            continue
        lo, hi = dom.get(name, (0.0, 1.0))
        x[:, j] = rng.uniform(float(lo), float(hi), n)
    if codec_cols:
        x[np.arange(n), rng.choice(codec_cols, n)] = 1.0
    return x


def _complete_state(model: Any, state: dict[str, Any], inits: Mapping[str, Any],
                    prefix: str) -> None:
    """Put back into ``state`` what the export leaves out of the initializers.

    * buffers the graph never reads, which the exporter prunes (``log_mask`` of a student
      with no log-transformed column): the rebuilt module's own, made from the card;
    * an axis-routed soft tree's routing logits, which constant folding replaces by their
      softmax (an unnamed initializer whose columns sum to 1): its log has the same softmax.

    ``prefix`` is how the graph names the module's state (:func:`_module_state`); an
    initializer not so named is a folded constant. A wrong guess cannot pass unnoticed: the
    caller compares the rebuilt module with the graph.
    """
    import torch

    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    folded = [torch.from_numpy(np.array(v)) for k, v in inits.items()
              if not (k.startswith(prefix) and k[len(prefix):] in own)]
    for name in sorted(own.keys() - state.keys()):
        if name in buffers:
            state[name] = own[name]
            continue
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else None
        if getattr(owner, "routing", None) != "axis" or not name.endswith(".weight"):
            continue
        for cand in folded:
            if tuple(cand.shape) == tuple(own[name].shape) and bool(
                    torch.allclose(cand.sum(dim=0), torch.ones(()).to(cand), atol=1e-5)):
                state[name] = torch.log(cand.clamp_min(1e-300)).to(own[name].dtype)
                break


def _module_state(inits: Mapping[str, Any], onnx_path: Path) -> tuple[str, dict[str, Any]]:
    """``(prefix, state)``: the module's state among the initializers. A float64 export wraps
    the student (:func:`vmafdistill.export._float64_wrapper`), so its state is named
    ``inner.<name>``; a ``precision=float32`` export names it ``<name>`` beside the folded
    constants (those the caller drops: they are not in the module's state dict)."""
    import torch

    prefix = "inner." if "inner.mean" in inits else ""
    if f"{prefix}mean" not in inits or f"{prefix}std" not in inits:
        raise ModelError(f"{onnx_path}: no mean / std initializers (inner.mean or mean; not "
                         "exported by vmafdistill export?)")
    return prefix, {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in inits.items()
                    if k.startswith(prefix)}


def _rebuilt_student(card: Mapping[str, Any], onnx_path: Path) -> tuple[Any, dict[str, Any]]:
    """The card's :class:`ScaledStudent` with the graph's initializers loaded, and its config."""
    from .models import complete_student_cfg, scaled_student

    inits = _initializers(onnx_path)
    prefix, state = _module_state(inits, onnx_path)
    try:
        cfg = complete_student_cfg(card["student"])  # a key an older card lacks: conf/student
        model = scaled_student(cfg, state["mean"], state["std"], list(card["feature_names"]),
                               card.get("transforms") or {}, card.get("interactions") or [])
        if not prefix:  # unprefixed: the folded constants share the namespace
            state = {k: v for k, v in state.items() if k in model.state_dict()}
        _complete_state(model, state, inits, prefix)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, KeyError, VmafDistillError) as exc:
        raise ModelError(f"{onnx_path}: initializers do not fit the student the card "
                         f"describes ({exc})") from None
    return model.eval(), dict(cfg)


def _parity_gap(model: Any, card: Mapping[str, Any], onnx_path: Path,
                card_file: Path) -> tuple[float, float]:
    """``(gap, tolerance)``: the largest |torch - onnxruntime| on rows across the card's
    training domain, the rebuilt module run in the card's ``precision`` as the export ran it,
    and the tolerance the export checked that precision with (``export_metrics.parity_tol``,
    else :data:`PARITY_TOL`; for float32 at least :data:`FLOAT32_REBUILD_TOL`)."""
    import torch

    from ..edge.predictor import Predictor

    rows = _domain_rows(card)
    float64 = str(card.get("precision") or "float64") == "float64"
    with torch.no_grad():
        if float64:
            # float64 in, float32 out (vmafdistill.export); the float64 initializers hold the
            # float32 weights exactly, so the float32 module loaded from them loses nothing
            ours = copy.deepcopy(model).double()(torch.from_numpy(rows.astype(np.float64)))
        else:  # float32: the module as is (run in float64 it differed from the graph by 3e-5)
            ours = model(torch.from_numpy(rows))
    ours_np = ours.float().cpu().numpy().astype(np.float64).reshape(-1)
    ref = Predictor(onnx_path, card_file, scalar=False,
                    edge_features=False).predict(rows).astype(np.float64)
    recorded = (card.get("export_metrics") or {}).get("parity_tol")
    tol = PARITY_TOL if recorded is None else float(recorded)
    return float(np.max(np.abs(ours_np - ref))), tol if float64 else max(tol, FLOAT32_REBUILD_TOL)


def bundle_from_onnx(
    onnx_path: str | Path, card_path: str | Path | None = None
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Rebuild ``(model, student_cfg, meta)`` of an exported student from its ONNX and card.

    Either precision rebuilds (``inner.<name>`` or ``<name>`` initializers); an INT8 graph
    (card ``int8.kept``) holds quantized weights, which no float student reproduces.

    Raises:
        ModelError: the file is not ONNX, the card lacks the student's recipe, the initializers
            do not fit the module it describes, or torch and onnxruntime disagree by more than
            the export's parity tolerance on rows across the training domain.
    """
    from ..edge.card import card_path_for, read_card

    onnx_path = Path(onnx_path)
    card_file = Path(card_path) if card_path else card_path_for(onnx_path)
    card = read_card(card_file, beside=None if card_path else onnx_path)
    if not isinstance(card.get("student"), Mapping) or not card["student"].get("name"):
        raise ModelError(f"{card_file}: the card records no student config; cannot rebuild it")
    int8 = bool((card.get("int8") or {}).get("kept"))
    try:
        model, cfg = _rebuilt_student(card, onnx_path)
        gap, tol = _parity_gap(model, card, onnx_path, card_file)
        if not gap <= tol:
            raise ModelError(f"{onnx_path}: rebuilt student differs from the ONNX graph by "
                             f"{gap:.3g} VMAF (tolerance {tol:g})")
    except ModelError:
        if int8:  # the float weights are gone: say where they are instead of how it failed
            raise ModelError(f"{onnx_path}: an INT8 export (card int8.kept) cannot be rebuilt "
                             "exactly; fine-tune from the float export or the student.pt "
                             f"({card.get('source') or 'the bundle it was exported from'})"
                             ) from None
        raise
    meta = {
        "feature_set": card.get("feature_set"),
        "feature_set_version": card.get("feature_set_version"),
        "corpus": card.get("corpus"),
        # the corpora a fine-tuned student saw before (its card's): fine-tuned again, it keeps them
        "earlier_corpora": card.get("earlier_corpora") or [],
        "conformal": card.get("conformal"),
        "guard_thresholds": card.get("guard_thresholds"),
        "target": card.get("target", "vmaf"),
        "metrics": card.get("metrics"),
        "rebuilt_from": {"onnx": str(onnx_path), "sha256": card.get("sha256"),
                         "parity_max_abs": gap, "parity_tol": tol},
        # what the student has seen: a fine-tune's card widens it (vmafdistill.export)
        "training_domain": card.get("training_domain"),
        "config": {**({"loss": loss} if (loss := _training_loss(card)) else {}),
                   # the labels it learnt: finetune names another teacher's corpus, and a
                   # re-export keeps the card's key
                   **({"teacher": dict(card["teacher"])}
                      if isinstance(card.get("teacher"), Mapping) else {})},
    }
    return model, dict(cfg), meta


def _training_loss(card: Mapping[str, Any]) -> dict[str, Any] | None:
    """The loss the card's student was trained with: recorded by the export, else (the shipped
    student's card predates that) the shipped recipe's when this is the shipped student, else
    None (fine-tuning then says it falls back to its default loss)."""
    if card.get("loss"):
        return dict(card["loss"])
    from ..edge.card import card_path_for, read_card

    shipped_card = card_path_for(SHIPPED_ONNX)
    if shipped_card.is_file() and card.get("sha256") == read_card(shipped_card).get("sha256"):
        return _shipped_loss()
    return None


def _shipped_loss() -> dict[str, Any]:
    from .. import config

    return config.load_yaml(f"loss/{_SHIPPED_LOSS}")


def rebuilt_card(meta: Mapping[str, Any], key: str) -> Any:
    """``key`` of the card a bundle was rebuilt from (``meta["rebuilt_from"]``): the first of
    that card and the shipped student's that holds the same graph (sha256) and the key (a
    same-graph card of an older checkout, found first by the recorded relative path, may lack
    it); None where none does."""
    from ..edge.card import card_path_for, read_card

    src = meta.get("rebuilt_from") or {}
    if not src.get("sha256"):
        return None
    for onnx_path in (Path(str(src.get("onnx"))), SHIPPED_ONNX):
        card_file = card_path_for(onnx_path)
        if not card_file.is_file():
            continue
        card = read_card(card_file)
        if card.get("sha256") == src["sha256"] and card.get(key):
            return card[key]
    return None


def rebuilt_training_domain(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ``training_domain`` of the card a bundle was rebuilt from (:func:`rebuilt_card`),
    else None. The shipped bundle's meta predates the key, its card has it."""
    domain = rebuilt_card(meta, "training_domain")
    return dict(domain) if domain else None


def bundle_teacher(meta: Mapping[str, Any]) -> Any:
    """The teacher a bundle's student learnt the labels of: its config's, else (the shipped
    bundle's meta predates the key) the card it was rebuilt from's; None where neither says."""
    teacher = (meta.get("config") or {}).get("teacher")
    return rebuilt_card(meta, "teacher") if teacher is None else teacher


def write_bundle_from_onnx(onnx_path: str | Path, out: str | Path,
                           card_path: str | Path | None = None) -> Path:
    """:func:`bundle_from_onnx`, saved as a student bundle at ``out``."""
    from .bundle import save_bundle

    model, cfg, meta = bundle_from_onnx(onnx_path, card_path)
    save_bundle(out, model, cfg, meta)
    return Path(out)


def resolve_student_source(ckpt: str | Path, work_dir: Path | None = None) -> Path:
    """A bundle path for ``ckpt``: ``default`` (the shipped student's bundle), a ``.pt`` bundle,
    an exported ``.onnx`` or its ``.card.json`` (rebuilt into a bundle in ``work_dir``, which
    the caller removes; without one, in a new temporary folder left to the caller)."""
    text = str(ckpt)
    if text == "default":
        if SHIPPED_BUNDLE.is_file():
            return SHIPPED_BUNDLE
        onnx_path = SHIPPED_ONNX
        if not onnx_path.is_file():
            raise ModelError(f"the shipped student is missing ({SHIPPED_BUNDLE})")
        text = str(onnx_path)
    path = Path(text).expanduser()
    if path.name.endswith(".card.json"):
        path = path.with_name(path.name[: -len(".card.json")] + ".onnx")
    if path.suffix == ".onnx":
        if not path.is_file():
            raise ModelError(f"ckpt {path}: no such file")
        folder = work_dir if work_dir is not None else Path(
            tempfile.mkdtemp(prefix="vmafdistill-rebuilt-"))
        out = folder / f"{path.stem}.pt"
        return write_bundle_from_onnx(path, out)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m vmafdistill.students.shipped MODEL.onnx [OUT.pt]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or len(args) > 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    onnx_path = Path(args[0])
    out = Path(args[1]) if len(args) > 1 else onnx_path.with_suffix(".pt")
    write_bundle_from_onnx(onnx_path, out)
    print(f"{onnx_path} -> {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
