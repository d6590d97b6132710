"""The trainable bundle of an exported student, rebuilt from its ONNX file and card.

An exported student is an ONNX graph whose initializers are the trained module's state
(``inner.<name>``) and a card that records how it was built (student config, feature names,
transforms, interactions, conformal q, corpus). That is everything :func:`load_bundle` needs, so
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

__all__ = [
    "SHIPPED_BUNDLE",
    "SHIPPED_ONNX",
    "bundle_from_onnx",
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


def _complete_state(model: Any, state: dict[str, Any], inits: Mapping[str, Any]) -> None:
    """Put back into ``state`` what the export leaves out of the initializers.

    * buffers the graph never reads, which the exporter prunes (``log_mask`` of a student
      with no log-transformed column): the rebuilt module's own, made from the card;
    * an axis-routed soft tree's routing logits, which constant folding replaces by their
      softmax (an unnamed initializer whose columns sum to 1): its log has the same softmax.

    A wrong guess cannot pass unnoticed: the caller compares the rebuilt module with the graph.
    """
    import torch

    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    folded = [torch.from_numpy(np.array(v)) for k, v in inits.items()
              if not k.startswith("inner.")]
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


def bundle_from_onnx(
    onnx_path: str | Path, card_path: str | Path | None = None
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Rebuild ``(model, student_cfg, meta)`` of an exported student from its ONNX and card.

    Raises:
        ModelError: the file is not ONNX, the card lacks the student's recipe, the initializers
            do not fit the module it describes, or torch and onnxruntime disagree by more than
            :data:`PARITY_TOL` on rows across the training domain.
    """
    import torch

    from ..edge.card import card_path_for, read_card
    from ..edge.predictor import Predictor
    from .models import complete_student_cfg, scaled_student

    onnx_path = Path(onnx_path)
    card_file = Path(card_path) if card_path else card_path_for(onnx_path)
    card = read_card(card_file, beside=None if card_path else onnx_path)
    cfg = card.get("student")
    if not isinstance(cfg, Mapping) or not cfg.get("name"):
        raise ModelError(f"{card_file}: the card records no student config; cannot rebuild it")
    names = list(card["feature_names"])
    inits = _initializers(onnx_path)
    state = {k.removeprefix("inner."): torch.from_numpy(np.array(v)) for k, v in inits.items()
             if k.startswith("inner.")}
    if "mean" not in state or "std" not in state:
        raise ModelError(f"{onnx_path}: no inner.mean / inner.std initializers (not exported "
                         "by vmafdistill export?)")
    try:
        cfg = complete_student_cfg(cfg)  # a key an older card lacks: from conf/student
        model = scaled_student(cfg, state["mean"], state["std"], names,
                               card.get("transforms") or {}, card.get("interactions") or [])
        _complete_state(model, state, inits)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, ValueError, KeyError, VmafDistillError) as exc:
        raise ModelError(f"{onnx_path}: initializers do not fit the student the card "
                         f"describes ({exc})") from None
    model.eval()
    rows = _domain_rows(card)
    # the export runs the (float32-trained) student in float64 and casts its output to float32
    # (vmafdistill.export): evaluate it the same way; the float64 initializers hold the float32
    # weights exactly, so loading them into the float32 module loses nothing
    with torch.no_grad():
        ours = copy.deepcopy(model).double()(torch.from_numpy(rows.astype(np.float64))).float()
    ours = ours.cpu().numpy().astype(np.float64).reshape(-1)
    ref = Predictor(onnx_path, card_file, scalar=False,
                    edge_features=False).predict(rows).astype(np.float64)
    gap = float(np.max(np.abs(ours - ref)))
    if not gap <= PARITY_TOL:
        raise ModelError(f"{onnx_path}: rebuilt student differs from the ONNX graph by "
                         f"{gap:.3g} VMAF (tolerance {PARITY_TOL})")
    meta = {
        "feature_set": card.get("feature_set"),
        "feature_set_version": card.get("feature_set_version"),
        "corpus": card.get("corpus"),
        "conformal": card.get("conformal"),
        "guard_thresholds": card.get("guard_thresholds"),
        "target": card.get("target", "vmaf"),
        "metrics": card.get("metrics"),
        "rebuilt_from": {"onnx": str(onnx_path), "sha256": card.get("sha256"),
                         "parity_max_abs": gap},
        "config": {"loss": loss} if (loss := _training_loss(card)) else {},
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
