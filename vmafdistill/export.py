"""Export a trained student to ONNX for the edge (the torch side; needs torch, onnx, pandas).

:func:`export_onnx` takes any ``nn.Module`` mapping raw features (N, F) float32 to (N,) VMAF
with its standardisation inside (a students ``ScaledStudent``), plus its metadata and the
corpus samples, and:

1. exports ONNX (opset from ``conf/export.yaml``, dynamic batch, one input ``features``);
2. runs ``onnx.checker`` (full check) and the operator allowlist (fails on a foreign op);
3. checks onnxruntime against torch on every corpus sample (``parity_tol``, absolute VMAF);
4. optionally tries dynamic INT8 quantization and keeps it only when the corpus MAE moves by at
   most ``int8.max_mae_delta`` and the quantized graph passes the allowlist;
5. writes the model and its card (:mod:`vmafdistill.edge.card`) side by side.

:func:`export_bundle` does the same from a ``student.pt`` bundle.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.metadata
import io
import json
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .config import checked_bool, checked_number, refuse_unknown_keys
from .corpus.tables import corpora_trained_on
from .edge.card import CARD_VERSION, card_path_for, write_card
from .edge.onnx_check import check_allowlist, model_ops, model_opsets
from .edge.tokens import DEFAULT_RULES, merge_rules, robust_stats
from .errors import ModelError, VmafDistillError
from .features.registry import CODECS, FEATURE_SET_VERSION, FEATURE_SETS, canonical_codec
from .folders import atomic_write_bytes
from .shots import checked_shot_settings

if TYPE_CHECKING:
    import pandas as pd
    import torch

__all__ = [
    "export_bundle",
    "export_onnx",
    "load_export_settings",
    "onnx_bytes",
    "resolve_winner",
]

INPUT_NAME = "features"
OUTPUT_NAME = "vmaf"


def refuse_shipped_overwrite(out: str | os.PathLike[str], force: bool = False, *,
                             out_name: str = "--out", force_name: str = "--force") -> None:
    """Raise VmafDistillError when ``out`` or the card written beside it is the shipped
    student's and ``force`` is not set (``--out checkpoints/vmafdistill_default``, no suffix,
    kept the shipped model but replaced its card, and predict's default then refused to run).
    ``out_name``/``force_name``: how the caller spells them (the API: ``out``, ``force=True``)."""
    from .edge.card import card_path_for
    from .students.shipped import SHIPPED_ONNX

    if force:
        return
    out = Path(out)
    shipped = [p.resolve() for p in (SHIPPED_ONNX, card_path_for(SHIPPED_ONNX)) if p.exists()]
    for written in (out, card_path_for(out)):
        if written.exists() and written.resolve() in shipped:
            raise VmafDistillError(
                f"{out}: export refuses to overwrite the shipped student's "
                f"{'card ' if written != out else ''}{written.name} without {force_name} "
                f"(give {out_name} elsewhere.onnx for your own student)")


def refuse_flag_and_override(flags: Mapping[str, tuple[str, Any]],
                             overrides: Sequence[str]) -> None:
    """Refuse a setting given both by a flag (``flags``: setting -> (flag name, value; None
    not given)) and by one of ``overrides`` (``conf/export.yaml`` keys): the flag won without a
    word. An override of the setting's own key is refused; one of a parent (``int8={...}``)
    where it changes or removes the setting (Hydra merges a mapping: ``int8={max_mae_delta:
    0.2}`` leaves ``int8.enabled`` alone)."""
    from .config import compose_dict, override_key

    given = {s: f for s, f in flags.items() if f[1] is not None}
    for item in overrides if given else ():
        key = override_key(str(item))
        for setting, (flag, _) in given.items():
            # a parent's override: does it set or remove the setting? (a marker value put
            # there first survives a merge that leaves it alone)
            if key == setting or key.startswith(f"{setting}.") or (
                    setting.startswith(f"{key}.") and _dotted(compose_dict(
                    "export", [f"{setting}={_MARKER}", str(item)]), setting) != _MARKER):
                raise VmafDistillError(f"{flag} and {item} both set {setting}: give one")


#: A value no export setting takes (see :func:`refuse_flag_and_override`).
_MARKER = "vmafdistill_flag_marker"


def _dotted(tree: Any, key: str) -> Any:
    """``tree``'s value at the dotted ``key``, None where it is missing."""
    for part in key.split("."):
        if not isinstance(tree, Mapping) or part not in tree:
            return None
        tree = tree[part]
    return tree


def load_export_settings(
    overrides: Mapping[str, Any] | None = None, hydra_overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """``conf/export.yaml`` composed by Hydra (with ``conf/shots/default.yaml`` as
    ``edge.shots``) under ``hydra_overrides`` (``["tokens.bands.green=85"]``), then the
    non-None values of ``overrides`` (one level deep: the CLI flags)."""
    from .config import compose_dict

    settings = compose_dict("export", hydra_overrides)
    for key, val in (overrides or {}).items():
        if isinstance(val, Mapping) and isinstance(settings.get(key), dict):
            settings[key] = {**settings[key], **{k: v for k, v in val.items() if v is not None}}
        elif val is not None:
            settings[key] = val
    _check_sections(settings)
    return settings


#: The sections of ``conf/export.yaml`` that must stay mappings (``tokens=5`` was an
#: AttributeError traceback deep in the export).
_EXPORT_SECTIONS = ("tokens", "tokens.bands", "tokens.issues", "edge", "edge.shots", "int8")


def _check_sections(settings: Mapping[str, Any]) -> None:
    """One error naming an export setting that should be a mapping and is not."""
    for dotted in _EXPORT_SECTIONS:
        node: Any = settings
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and not isinstance(node, Mapping):
            raise VmafDistillError(f"export: {dotted}={node!r}: needs a mapping of settings "
                                   "(conf/export.yaml)")


#: Ops onnxruntime's CPU provider only implements in float32: in a float64 graph they are
#: wrapped in Cast nodes (computed in float32, the rest of the graph in float64).
FLOAT32_ONLY_OPS: frozenset[str] = frozenset({"Erf"})


def _float64_wrapper(model: torch.nn.Module) -> torch.nn.Module:
    """float32 in -> ``model`` computed in float64 -> float32 out (a deep copy)."""
    import copy

    import torch

    class Float64Student(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = copy.deepcopy(inner).double().eval()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.inner(x.double()).float()

    return Float64Student(model).eval()


def _cast_float32_only_ops(data: bytes) -> bytes:
    """Wrap :data:`FLOAT32_ONLY_OPS` nodes of a float64 graph in Cast(float)/Cast(double)."""
    import onnx
    from onnx import TensorProto, helper

    m = onnx.load_from_string(data)
    nodes = []
    for k, node in enumerate(m.graph.node):
        if node.op_type not in FLOAT32_ONLY_OPS:
            nodes.append(node)
            continue
        ins = []
        for j, name in enumerate(node.input):
            cast = f"{name}__f32_{k}_{j}"
            nodes.append(helper.make_node("Cast", [name], [cast], to=TensorProto.FLOAT))
            ins.append(cast)
        outs = []
        for j, name in enumerate(node.output):
            tmp = f"{name}__f32out_{k}_{j}"
            outs.append((tmp, name))
        new = helper.make_node(node.op_type, ins, [t for t, _ in outs], name=node.name,
                               domain=node.domain)
        new.attribute.extend(node.attribute)
        nodes.append(new)
        for tmp, name in outs:
            nodes.append(helper.make_node("Cast", [tmp], [name], to=TensorProto.DOUBLE))
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    # Shape inference recorded float64 value_info for the wrapped outputs; drop stale entries.
    del m.graph.value_info[:]
    return m.SerializeToString()


def onnx_bytes(
    model: torch.nn.Module, n_features: int, opset: int, *, precision: str = "float64"
) -> bytes:
    """ONNX of ``model`` (input ``features`` (N, F) float32 -> ``vmaf`` (N,) float32).

    ``precision="float64"`` computes the graph in float64 (see :func:`_float64_wrapper`), so
    onnxruntime and torch agree to float32 rounding; ``"float32"`` exports the module as is.
    """
    import torch

    if precision not in ("float32", "float64"):
        raise VmafDistillError(f"export: precision must be float32 or float64, got {precision!r}")
    module = _float64_wrapper(model) if precision == "float64" else model.eval()
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy-exporter deprecation notice
        try:
            _export_module(module, buf, n_features, opset)
        except Exception as exc:  # the exporter's own error types vary by torch version
            raise ModelError(f"export: torch cannot export this student at opset {opset}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                             ) from None
    data = buf.getvalue()
    return _cast_float32_only_ops(data) if precision == "float64" else data


def _export_module(module: torch.nn.Module, buf: io.BytesIO, n_features: int,
                   opset: int) -> None:
    import torch

    torch.onnx.export(
        module,
        (torch.zeros(2, n_features, dtype=torch.float32),),
        buf,
        dynamo=False,
        opset_version=int(opset),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        dynamic_axes={INPUT_NAME: {0: "n"}, OUTPUT_NAME: {0: "n"}},
        do_constant_folding=True,
    )


def _torch_reference(model: torch.nn.Module, x: np.ndarray, precision: str) -> np.ndarray:
    """What the exported graph computes, in torch: the module in ``precision``, float32 out."""
    import torch

    module = _float64_wrapper(model) if precision == "float64" else model.eval()
    with torch.no_grad():
        out = module(torch.from_numpy(np.array(x, dtype=np.float32)))
    if tuple(out.shape) not in ((len(x),), (len(x), 1)):  # (N, 2) died in a numpy broadcast
        raise ModelError(f"export: the student returns shape {tuple(out.shape)} for {len(x)} "
                         "rows; a student returns one VMAF per row, shape (N,)")
    return out.detach().cpu().numpy().astype(np.float32).reshape(-1)


def _ort_predict(data: bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return np.asarray(out, dtype=np.float32).reshape(-1)


def _versions() -> dict[str, str]:
    out = {}
    for dist in ("vmafdistill", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def _whole_pixels(value: Any) -> int:
    """``value`` as a whole number of pixels; a fraction (960.5 was cut to 960) or a boolean
    (True read as 1) raises ValueError."""
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _ref_size(samples: pd.DataFrame, setting: Any) -> list[int]:
    if setting is not None:  # (0 or "" fell through to the corpus's size, unsaid)
        try:
            w, h = (_whole_pixels(v) for v in setting)
        except (TypeError, ValueError):
            raise VmafDistillError(
                f"export: ref_size (--ref-size or ref_size=, or conf/export.yaml) must be two "
                f"integers WxH, got {setting!r}") from None
        if w <= 0 or h <= 0:
            raise VmafDistillError(f"export: ref_size (--ref-size or ref_size=, or "
                                   f"conf/export.yaml) must be positive, got {w}x{h}")
        return [w, h]
    if {"ref_width", "ref_height"} <= set(samples.columns) and len(samples):
        pair = samples[["ref_width", "ref_height"]].astype(int).value_counts().idxmax()
        return [int(pair[0]), int(pair[1])]
    raise VmafDistillError(
        "export: cannot tell the reference size (no ref_width/ref_height columns); set "
        "ref_size in conf/export.yaml or give --ref-size (ref_size= in the API)"
    )


def _settings_card(s: Mapping[str, Any], samples: pd.DataFrame) -> dict[str, Any]:
    """The card entries that come from the export settings, checked before anything is
    written (a bad band or size used to fail after the .onnx had replaced the old one)."""
    try:
        return {
            "ref_size": _ref_size(samples, s.get("ref_size")),
            **_token_card(s.get("tokens") or {}, samples),
            "edge": _edge_card(dict(s.get("edge") or {})),
        }
    except (TypeError, ValueError) as exc:
        raise VmafDistillError(f"export: bad setting: {exc}") from None


def _mae(pred: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(y) & np.isfinite(pred)
    return float(np.mean(np.abs(pred[ok].astype(np.float64) - y[ok]))) if ok.any() else math.nan


def _ort_predict_row_by_row(data: bytes, x: np.ndarray) -> np.ndarray:
    """``data``'s output for each row of ``x``, one onnxruntime call per row: how the
    predictor runs an INT8 graph (its activation scale comes from the whole call, so the
    corpus as one batch measured numbers ``predict`` never gives)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out = np.empty(len(x), dtype=np.float32)
    for i in range(len(x)):
        out[i] = np.asarray(sess.run(None, {name: np.ascontiguousarray(x[i : i + 1])})[0],
                            dtype=np.float32).reshape(-1)[0]
    return out


def _try_int8(
    data: bytes, float_size: int, x: np.ndarray, y: np.ndarray | None, float_pred: np.ndarray,
    policy: Mapping,
) -> tuple[bytes | None, dict[str, Any]]:
    """Quantize the float32 graph ``data`` dynamically; return (kept bytes or None, report).
    The INT8 graph is measured against the float graph the export would ship instead
    (``float_size`` bytes, predictions ``float_pred``)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    report: dict[str, Any] = {"tried": True, "kept": False,
                              "max_mae_delta": float(policy.get("max_mae_delta", 0.1))}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(data)
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantizer's "consider pre-processing" notice
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        except Exception as exc:  # quantizer failures must not fail the fp32 export
            report["reason"] = f"quantization failed: {exc}"
            return None, report
        finally:
            root.setLevel(level)
        q = dst.read_bytes()
    report["size_bytes"] = len(q)
    if len(q) >= float_size:
        report["reason"] = f"not smaller ({len(q)} vs {float_size} bytes unquantized)"
        return None, report
    try:
        check_allowlist(q, name="int8 model")
    except ModelError as exc:
        report["reason"] = str(exc)
        return None, report
    q_pred = _ort_predict_row_by_row(q, x)
    report["max_abs_change"] = float(np.nanmax(np.abs(q_pred - float_pred)))
    if y is None:
        report["reason"] = "no target column to measure the MAE change"
        return None, report
    mae_float, mae8 = _mae(float_pred, y), _mae(q_pred, y)
    report.update(mae_float=mae_float, mae_int8=mae8, mae_delta=mae8 - mae_float)
    if abs(mae8 - mae_float) <= report["max_mae_delta"]:
        report["kept"] = True
        return q, report
    report["reason"] = f"MAE moved by {mae8 - mae_float:+.3f} VMAF"
    return None, report


def _lineage(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The card's ``corpus`` and ``earlier_corpora`` (a fine-tuned student's earlier ones:
    evaluate scored its first one as unseen content)."""
    return {"corpus": {k: dict(meta.get("corpus") or {}).get(k) for k in ("name", "hash")},
            "earlier_corpora": [{k: c.get(k) for k in ("name", "hash")}
                                for c in corpora_trained_on(meta)[1:]]}


def export_onnx(
    model: torch.nn.Module,
    meta: Mapping[str, Any],
    samples: pd.DataFrame,
    out_path: str | os.PathLike[str],
    *,
    settings: Mapping[str, Any] | None = None,
    allowlist: Any = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Export ``model`` to ``out_path`` (+ ``<stem>.card.json``); return the card.

    Args:
        model: raw features (N, F) float32 -> (N,) VMAF, standardisation inside.
        meta: at least ``feature_names`` (or ``feature_set``); optionally ``feature_set_version``,
            ``corpus`` {name, hash}, ``metrics``, ``conformal`` {alpha, q, rule},
            ``guard_thresholds``, ``target``, ``student_cfg``, ``config``.
        samples: corpus samples table holding every feature column (and the target for MAE);
            every row is a parity case.
        out_path: the ``.onnx`` file to write.
        settings: ``conf/export.yaml`` as a dict (default: :func:`load_export_settings`).
        allowlist: allowlist set or file (default: the repository's).
        source: where the model came from (bundle path), recorded in the card.

    Raises:
        ModelError: checker failure, a foreign op, or a parity miss (nothing is written then).
    """
    s = dict(settings) if settings is not None else load_export_settings()
    out = Path(out_path)
    if out.is_dir():
        raise VmafDistillError(f"export: --out {out} is a directory; name the .onnx file")
    names, version = _checked_inputs(meta, samples, source)
    target = str(meta.get("target", "vmaf"))
    trained = trained_rows(samples, target)  # the card's domain and statistics: those rows
    from_settings = _settings_card(s, trained)
    int8 = _int8_settings(s)
    precision = str(s.get("precision", "float64"))
    data = onnx_bytes(model, len(names), _opset(s.get("opset", 17)), precision=precision)
    ops = _checked_graph(data, allowlist)
    x = samples[names].to_numpy(dtype=np.float32)
    got, export_metrics = _parity(model, data, x, samples, precision,
                                  checked_number("parity_tol", s.get("parity_tol", 1e-5),
                                                 float, 0))
    y = samples[target].to_numpy(dtype=np.float64) if target in samples.columns else None
    export_metrics["mae_vs_target"] = None if y is None else _mae(got, y)
    used = _inputs_read(model, names)

    # dynamic quantization rewrites float32 MatMul only (a float64 graph came back larger)
    float32 = functools.partial(onnx_bytes, model, len(names), _opset(s.get("opset", 17)),
                                precision="float32") if precision != "float32" else lambda: data
    final, int8_report = _int8_graph(data, float32, x, y, got, int8, export_metrics)
    if final is not data:
        ops = model_ops(final)
        precision = "float32"  # the quantized graph's float parts (scales, biases)

    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "model_file": out.name,
        "sha256": hashlib.sha256(final).hexdigest(),
        "size_bytes": len(final),
        "opset": model_opsets(final).get("", int(s.get("opset", 17))),
        "precision": precision,
        "ops": sorted(f"{d}:{o}" if d else o for d, o in ops),
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "feature_set": str(meta.get("feature_set") or "custom"),
        "feature_names": names,
        "feature_set_version": version,
        "transforms": dict(meta.get("transforms") or {}),
        "interactions": [list(pair) for pair in getattr(model, "interactions", [])],
        "target": target,
        **_lineage(meta),
        "metrics": dict(meta.get("metrics") or {}),
        "export_metrics": export_metrics,
        "conformal": dict(meta.get("conformal") or {"alpha": None, "q": None}),
        # numbers, as the card is read (a threshold typed "80" names metric keys in training)
        "guard_thresholds": None if meta.get("guard_thresholds") is None else [
            t if isinstance(t, int | float) and not isinstance(t, bool) else float(t)
            for t in meta["guard_thresholds"]],
        # the inputs the student reads: a student on a column subset takes every column, and
        # the edge checked the others too (NaN or out-of-range in a column it never reads)
        "used_features": used,
        # a fine-tuned student's bundle carries what it saw before (its source's domain too)
        "training_domain": export_domain(trained, used, meta.get("training_domain")),
        **from_settings,
        "int8": int8_report,
        **_recipe(meta),
        "source": source,
        "versions": _versions(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    _check_finite_card(card)
    atomic_write_bytes(out, final)
    write_card(card_path_for(out), card)
    return card


def _int8_graph(data: bytes, float32: Callable[[], bytes], x: np.ndarray,
                y: np.ndarray | None, got: np.ndarray, int8: Mapping[str, Any],
                export_metrics: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The graph to ship (the INT8 one, quantized from the student's ``float32()`` graph,
    where the policy keeps it, else ``data``) and the card's ``int8`` report; a kept INT8
    graph's MAE replaces the float graph's in ``export_metrics`` (they described the float
    graph while the card pinned the INT8 one)."""
    report: dict[str, Any] = {"tried": False, "kept": False}
    final = data
    if int8.get("enabled"):
        try:
            source = float32()
        except Exception as exc:  # INT8 is only tried: the float export stands
            source, report = None, {"tried": True, "kept": False,
                                    "reason": f"no float32 graph to quantize ({exc})"}
        q = None
        if source is not None:
            q, report = _try_int8(source, len(data), x, y, got, int8)
        if q is not None:
            final = q
            export_metrics["mae_vs_target"] = report["mae_int8"]
            export_metrics["parity_of"] = (
                f"the {export_metrics.get('precision', 'float')} graph the INT8 one replaces "
                "(quantized from the student's float32 graph, it moved predictions by "
                "int8.max_abs_change)")
    report["unquantized_size_bytes"] = len(data)
    return final, report


def _inputs_read(model: torch.nn.Module, names: Sequence[str]) -> list[str]:
    """The input columns the student reads, from its structure (a ``features:`` subset and
    its interactions); every column for a module of unknown structure."""
    from .students.models import raw_inputs_read

    read = raw_inputs_read(model)
    if read is None or list(getattr(model, "feature_names", [])) != list(names):
        return list(names)
    return read


def _check_finite_card(card: Mapping[str, Any]) -> None:
    """An infinite conformal q (too few calibration rows for alpha) would ship the interval
    [0, 100] for every shot, and ``Infinity`` is not JSON: refused before anything is written."""
    q = (card.get("conformal") or {}).get("q")
    if q is not None and not math.isfinite(float(q)):
        raise ModelError(
            f"export: the student's conformal q is {q} (too few calibration rows for alpha "
            f"{card['conformal'].get('alpha')}): retrain with more data or a larger "
            "conformal.alpha")


def _opset(value: Any) -> int:
    """The ONNX opset asked for, checked against what torch's exporter writes."""
    from torch.onnx._constants import ONNX_MAX_OPSET, ONNX_MIN_OPSET

    try:
        opset = int(value)
    except (TypeError, ValueError):
        raise VmafDistillError(f"export: opset must be an integer, got {value!r}") from None
    if not ONNX_MIN_OPSET <= opset <= ONNX_MAX_OPSET:
        raise VmafDistillError(
            f"export: opset {opset} is outside what this torch exports "
            f"({ONNX_MIN_OPSET}..{ONNX_MAX_OPSET}); the edge is built for 17")
    return opset


def refuse_other_feature_set_version(version: int | None, where: str) -> None:
    """A student trained on another feature-set version than the one this vmafdistill
    computes (and its corpus tables hold) is refused, by export and finetune alike: its scaler
    and weights read features defined otherwise. None (a bundle that names none) passes."""
    if version is not None and int(version) != FEATURE_SET_VERSION:
        raise ModelError(
            f"{where}: the student was trained on feature-set version {version}; this "
            f"vmafdistill computes version {FEATURE_SET_VERSION} (its corpus tables' too): its "
            "scaler and weights read features defined otherwise; retrain it")


def _checked_inputs(meta: Mapping[str, Any], samples: pd.DataFrame,
                    source: str | None = None) -> tuple[list[str], int]:
    """The student's input columns and feature-set version, checked against this vmafdistill
    and the samples table (``source``: the bundle, named in the error)."""
    names = list(meta.get("feature_names") or FEATURE_SETS[meta["feature_set"]])
    version = int(meta.get("feature_set_version", FEATURE_SET_VERSION))
    refuse_other_feature_set_version(version, f"export: {source}" if source else "export")
    missing = [c for c in names if c not in samples.columns]
    if missing:
        raise VmafDistillError(f"export: samples table lacks feature column(s) {missing}")
    if len(samples) == 0:
        raise VmafDistillError("export: the samples table is empty (nothing to check parity on)")
    return names, version


def _checked_graph(data: bytes, allowlist: Any) -> Any:
    """onnx.checker (full) and the operator allowlist on the serialised graph; its ops."""
    import onnx

    try:
        onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    except Exception as exc:
        raise ModelError(f"export: onnx.checker rejects the graph ({exc})") from None
    return check_allowlist(data, allowlist, name="exported student")


#: float32 steps a ``precision=float32`` graph may differ from torch by at the largest output:
#: onnxruntime and torch round float32 ops apart, 2 steps measured on soft-tree students (at
#: VMAF 64..128 a step is 7.6e-6, and 2 of them failed the default 1e-5).
FLOAT32_PARITY_STEPS = 4


def float32_parity_floor(outputs: np.ndarray) -> float:
    """The least parity tolerance of a float32 graph whose outputs are ``outputs``:
    :data:`FLOAT32_PARITY_STEPS` float32 steps at the largest finite |output| (at least 100)."""
    finite = np.abs(outputs[np.isfinite(outputs)].astype(np.float64))
    top = max(100.0, float(finite.max())) if finite.size else 100.0
    return FLOAT32_PARITY_STEPS * float(np.spacing(np.float32(top)))


def _parity(
    model: torch.nn.Module, data: bytes, x: np.ndarray, samples: pd.DataFrame, precision: str,
    tol: float,
) -> tuple[np.ndarray, dict[str, Any]]:
    """onnxruntime's predictions on every row and the export metrics; ModelError naming the
    sample when one differs from torch (at the graph's precision) by more than ``tol``."""
    ref = _torch_reference(model, x, precision)
    got = _ort_predict(data, x)
    ref32 = _torch_reference(model, x, "float32")  # the module as trained, for the record
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    diff[np.isnan(got) & np.isnan(ref)] = 0.0
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(np.max(diff))
    if precision == "float32":
        tol = max(tol, float32_parity_floor(ref))
    if not worst <= tol:
        i = int(np.argmax(diff))
        sid = samples["sample_id"].iloc[i] if "sample_id" in samples.columns else i
        hint = ("; a float32 graph and torch round float32 ops apart, more so through wide "
                "layers: precision=float64 (the default) holds torch's numbers, or raise "
                "parity_tol" if precision == "float32" else "")
        raise ModelError(
            f"export: onnxruntime and torch disagree by {worst:.3g} VMAF on sample {sid} "
            f"(tolerance {tol:g}){hint}"
        )
    return got, {
        "n_samples": len(samples),
        "parity_max_abs": worst,
        "parity_tol": tol,
        "precision": precision,
        "max_abs_vs_float32_torch": float(np.nanmax(np.abs(got.astype(np.float64) - ref32))),
    }


def _token_card(tok: Mapping[str, Any], samples: pd.DataFrame) -> dict[str, Any]:
    """The card's ``tokens`` (band and issue rules) and ``token_stats`` (robust statistics of
    the issue rules' features over the export corpus)."""
    rules = merge_rules(DEFAULT_RULES, {"bands": tok.get("bands"), "issues": tok.get("issues")})
    stat_features = list(tok.get("stat_features") or [])
    # a name without statistics switched its issue off, unsaid ([sobel_meen], [nope])
    if unknown := [c for c in stat_features if c not in samples.columns]:
        raise VmafDistillError(f"export: tokens.stat_features names {unknown}, not columns "
                               "of the corpus (its pixel features)")
    for key in ("detail_features", "motion_features"):
        if missing := [c for c in rules["issues"][key] if c not in stat_features]:
            raise VmafDistillError(f"export: tokens.issues.{key} names {missing}, without "
                                   "statistics (tokens.stat_features)")
    if "blockiness" not in stat_features:  # the first issue rule reads z(blockiness)
        raise VmafDistillError("export: tokens.stat_features lacks blockiness, which the "
                               "blockiness issue rule reads (it would never fire)")
    log_features = list(tok.get("log_features") or [])
    if stray := [c for c in log_features if c not in stat_features]:
        raise VmafDistillError(f"export: tokens.log_features names {stray}, not among "
                               "tokens.stat_features (no statistics to log-transform)")
    token_stats = robust_stats({c: samples[c].to_numpy() for c in stat_features}, log_features)
    return {"tokens": rules, "token_stats": token_stats}


def _int8_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``int8`` checked before the export: ``enabled`` true or false ("maybe" tried it),
    ``max_mae_delta`` a number (negative: never keep the quantized graph)."""
    int8 = dict(settings.get("int8") or {})
    int8["enabled"] = checked_bool("int8.enabled", int8.get("enabled", False))
    if int8["enabled"]:
        int8["max_mae_delta"] = checked_number("int8.max_mae_delta",
                                               int8.get("max_mae_delta", 0.1), float)
    return int8


def _edge_card(edge: Mapping[str, Any]) -> dict[str, Any]:
    """The card's ``edge`` settings from ``conf/export.yaml``: the frame and pixel steps
    (defaults below when absent), the cut detector and any speed option given
    (``+edge.threads=2``; the edge reads them from the card, they were dropped), each checked
    as ``predict`` takes it; a key the edge does not read is refused (it was dropped unsaid)."""
    from .edge.options import DECODERS, INT_OPTIONS, EdgeOptions

    refuse_unknown_keys(f"edge (decoder one of {', '.join(DECODERS)})", edge,
                        {*INT_OPTIONS, "decoder", "shots"}, ValueError)
    card: dict[str, Any] = {"frame_step": 1, "issue_frame_step": 8, "shot_pixel_step": 0,
                            "temporal_pixel_step": 0}
    card.update({k: v for k, v in edge.items() if k != "shots" and v is not None})
    card["shots"] = checked_shot_settings("edge.shots", edge.get("shots") or {})
    EdgeOptions.from_card(card)  # ValueError naming edge.<key>
    return card


def trained_rows(samples: pd.DataFrame, target: str) -> pd.DataFrame:
    """The rows of a corpus a student was trained on: those with a finite ``target`` (a run
    refuses the others, or leaves them out with ``nan_policy=drop``); all rows for a table
    without the target column or without one label (an unlabelled table to export against)."""
    import pandas as pd

    if target not in samples.columns:
        return samples
    keep = np.isfinite(pd.to_numeric(samples[target], errors="coerce").to_numpy(np.float64))
    return samples if keep.all() or not keep.any() else samples.loc[keep].reset_index(drop=True)


def training_domain(samples: pd.DataFrame, names: Sequence[str]) -> dict[str, Any]:
    """What the student saw: per input feature the [min, max] over the export corpus (its
    training corpus), and the codecs it was trained on. The edge flags shots outside it
    (:func:`vmafdistill.edge.pipeline.domain_flags`): the prediction is then extrapolated."""
    ranges = {}
    for n in names:
        col = samples[n].to_numpy(dtype=np.float64)
        col = col[np.isfinite(col)]
        if col.size:  # a column never finite in training has no range to check against
            ranges[n] = [float(col.min()), float(col.max())]
    if "codec" in samples:
        codecs = sorted({canonical_codec(str(c)) for c in samples["codec"].unique()})
    else:  # a table without the codec column: the one-hot columns say which codecs occur
        codecs = sorted(c for c in CODECS if f"codec_{c}" in samples
                        and float(samples[f"codec_{c}"].max()) > 0)
    return {"features": ranges, "codecs": codecs, "n_samples": len(samples)}


def merge_training_domains(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
                           names: Sequence[str] | None = None) -> dict[str, Any]:
    """The domain of a student that has seen both: per feature the [min of mins, max of
    maxes] (only ``names`` where given), the union of the codecs (and of any other list), the
    sum of ``n_samples``; any other key from ``a`` else ``b``."""
    a, b = dict(a or {}), dict(b or {})
    out: dict[str, Any] = {**b, **a}
    ranges: dict[str, list[float]] = {}
    for dom in (a, b):
        for n, (lo, hi) in (dom.get("features") or {}).items():
            if names is None or n in names:
                old = ranges.get(n, [float(lo), float(hi)])
                ranges[n] = [min(old[0], float(lo)), max(old[1], float(hi))]
    out["features"] = ranges
    for key in a.keys() & b.keys():
        if isinstance(a[key], list) and isinstance(b[key], list):
            out[key] = sorted({*a[key], *b[key]})
    out["codecs"] = sorted({canonical_codec(str(c)) for c in out.get("codecs") or []})
    out["n_samples"] = int(a.get("n_samples") or 0) + int(b.get("n_samples") or 0)
    return out


def export_domain(samples: pd.DataFrame, names: Sequence[str],
                  carried: Mapping[str, Any] | None) -> dict[str, Any]:
    """The card's ``training_domain``: the export corpus's (:func:`training_domain`), widened
    by the domain a fine-tuned bundle carries (its source's and its fine-tune corpus's: the
    student has seen both). ``n_samples`` is then the bundle's count of the rows it was trained
    on (the export corpus is the one it was fine-tuned on last, already counted)."""
    own = training_domain(samples, names)
    if not carried:
        return own
    return {**merge_training_domains(own, carried, names),
            "n_samples": int(carried.get("n_samples") or own["n_samples"])}


def trained_corpus(corpus: Mapping[str, Any], corpus_dir: str | os.PathLike[str] | None = None
                   ) -> tuple[Path, dict[str, Any]]:
    """The directory and manifest of the corpus a bundle was trained on (its meta's
    ``corpus``; ``corpus_dir`` in its place), refused where its hash differs from the
    bundle's (parity, metrics and the training domain would describe other data)."""
    from .corpus.tables import check_manifest_tables, read_manifest

    cdir = Path(corpus_dir) if corpus_dir else _trained_corpus_dir(corpus)
    try:
        manifest = read_manifest(cdir)
    except VmafDistillError as exc:
        raise VmafDistillError(f"{exc}; or give --corpus (corpus_dir= in the API) with the "
                               f"corpus the student was trained on ({corpus.get('name')})"
                               ) from None
    want, have = corpus.get("hash"), manifest.get("corpus_hash")
    if want and have and want != have:
        raise VmafDistillError(
            f"{cdir}: corpus hash {have[:12]} differs from the student's {want[:12]}; give "
            "--corpus (corpus_dir= in the API) with the corpus it was trained on"
        )
    check_manifest_tables(cdir, manifest)  # an edited table under the same manifest hash passed
    return cdir, manifest


def _trained_corpus_dir(corpus: Mapping[str, Any]) -> Path:
    """Where a bundle's corpus is: the directory it was trained on (bundles record it), else
    ``.cache/corpus/<name>`` under the working directory (older bundles; from another
    directory that missed the corpus the run had read)."""
    recorded = corpus.get("dir")
    if recorded and (Path(str(recorded)) / "corpus.json").is_file():
        return Path(str(recorded))
    return Path(".cache/corpus") / str(corpus.get("name"))


def resolve_winner(path: str | os.PathLike[str]) -> Path:
    """The ``student.pt`` a ``winner.json`` (or a directory holding one) points to."""
    p = Path(path)
    if p.is_dir():
        p = p / "winner.json"
    if not p.is_file():
        raise VmafDistillError(
            f"{p}: no winner.json (run `vmafdistill sweep-report SWEEP_DIR` first, or pass "
            "--bundle PATH/student.pt)"
        )
    try:
        win = json.loads(p.read_text())
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 (a parquet)
        raise VmafDistillError(f"{p}: corrupt winner.json ({exc})") from None
    bundle = win.get("bundle") if isinstance(win, dict) else None
    if not bundle or not isinstance(bundle, str):
        raise VmafDistillError(f"{p}: winner.json has no 'bundle' path entry")
    b = Path(bundle)
    # relative to winner.json; an older absolute one yields to the bundle of the same run
    # beside this winner.json (a copied sweep exported the original's)
    beside = p.parent / str(win.get("run", "")) / "student.pt"
    if not b.is_absolute():
        b = p.parent / b
    elif win.get("run") not in (None, "") and beside.is_file():
        b = beside
    if not b.is_file():
        raise VmafDistillError(f"{p}: its bundle {bundle} does not exist")
    _check_winner_current(p, win, b.parent / "metrics.json")
    _check_winner_of_the_sweep(p, win)
    return b


def _check_winner_current(winner_path: Path, win: Mapping[str, Any], metrics_path: Path) -> None:
    """Refuse a ``winner.json`` older than its run's results: a sweep rerun into the same
    directory replaced run 0's bundle (an mlp then, a logistic now) and export took it
    silently, with the old winner's figures in mind."""
    try:
        now = json.loads(metrics_path.read_text())
    except (OSError, ValueError):
        return  # no results to compare with: the bundle's own checks apply
    if not isinstance(now, dict):
        return
    then_mae = ((win.get("metrics") or {}).get("oof") or {}).get("mae")
    now_mae = (now.get("oof") or {}).get("mae")
    same_overrides = "overrides" not in win or list(win["overrides"] or []) == list(
        now.get("overrides") or [])
    if same_overrides and (then_mae is None or now_mae == then_mae):
        return
    raise VmafDistillError(
        f"{winner_path}: it names run {win.get('run')!r} with MAE {then_mae} and overrides "
        f"{list(win.get('overrides') or [])}, but {metrics_path} now reads MAE {now_mae} with "
        f"{list(now.get('overrides') or [])} (the sweep was run again): rerun `vmafdistill "
        f"sweep-report {winner_path.parent}`")


def _check_winner_of_the_sweep(winner_path: Path, win: Mapping[str, Any]) -> None:
    """Refuse a ``winner.json`` the sweep beside it has outgrown: its run is no longer one of
    the sweep's results (a rerun into the same folder with fewer values left it as an earlier
    sweep's job, and export shipped it without a word), or the sweep's results now pick
    another run where some are new or changed since (winner.json keeps the MAEs it picked
    from; one written before it kept them is compared with the current pick). Runs only
    removed since leave the pick as it was (re-deciding over fewer runs can move the spread
    median and crown a run that did not win the full sweep); an older winner.json cannot tell
    a removal from a change, and says so. A winner.json without a sweep beside it (moved away)
    is left to the run's own check."""
    from .students.report import picked_run, run_maes, sweep_table

    if win.get("run") in (None, ""):
        return
    try:
        table = sweep_table(winner_path.parent)  # every metrics.json read once
    except VmafDistillError:
        return  # no sweep results beside it to compare with
    now = run_maes(table)
    rerun = f"(the sweep was run again): rerun `vmafdistill sweep-report {winner_path.parent}`"
    if str(win["run"]) not in now:
        raise VmafDistillError(
            f"{winner_path}: it names run {win['run']!r}, which is no longer one of the "
            f"sweep's results in {winner_path.parent} {rerun}")
    counted = win.get("runs")
    new = changed = []
    if isinstance(counted, Mapping):
        new = [r for r in now if r not in counted]
        changed = [r for r in now if r in counted and now[r] != counted[r]]
        if not new and not changed:
            return
    try:
        pick = picked_run(table)
    except VmafDistillError as exc:  # no finite MAE left: named with the file it checks
        raise VmafDistillError(f"{winner_path}: {exc}") from None
    if pick != str(win["run"]):
        which = "; ".join(f"{what} {', '.join(map(repr, runs))}" for what, runs in
                          (("new", new), ("other results", changed)) if runs)
        if not isinstance(counted, Mapping):  # cannot tell a removed run from a changed one
            which = ("winner.json predates its record of the runs, so a run removed since "
                     "reads as a change too")
        raise VmafDistillError(
            f"{winner_path}: it names run {win['run']!r}, but the sweep's results in "
            f"{winner_path.parent} now pick run {pick!r}{f' ({which})' if which else ''} "
            f"{rerun}")


def _recipe(meta: Mapping[str, Any]) -> dict[str, Any]:
    """How the student was made, as the card keeps it: its config (``student``), the training
    loss (fine-tuning the ONNX later trains with it, :func:`finetune_loss`) and the teacher
    whose labels it learnt (evaluate labels held-out content with it: a v1.0.16 student was
    compared with v0.6.1 labels)."""
    from .students.shipped import bundle_teacher

    config = meta.get("config") or {}
    return {"student": meta.get("student_cfg"), "loss": config.get("loss"),
            "teacher": teacher_record(bundle_teacher(meta))}


def teacher_record(teacher: Any) -> dict[str, Any] | None:
    """The training corpus's teacher as the card keeps it (model and mode; None when the
    bundle does not record one)."""
    if not isinstance(teacher, Mapping) or not teacher.get("model"):
        return None
    return {"model": str(teacher["model"]), "mode": str(teacher.get("mode") or "exact")}


def export_bundle(
    bundle_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    samples: pd.DataFrame | None = None,
    corpus_dir: str | os.PathLike[str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """:func:`export_onnx` for a ``student.pt`` bundle, checked on its corpus's samples.

    ``corpus_dir`` defaults to the directory the bundle was trained on (it records it), else
    ``.cache/corpus/<meta corpus name>``; a corpus whose hash differs from the bundle's is
    refused (the parity and metrics would describe other data).
    """
    from .students.bundle import load_bundle

    model, meta = load_bundle(bundle_path)
    settings = settings if settings is not None else load_export_settings()
    if samples is None:
        from .corpus.tables import load_samples

        cdir, manifest = trained_corpus(meta.get("corpus") or {}, corpus_dir)
        samples = load_samples(cdir)
        _warn_on_other_cuts(cdir, manifest, settings)
    return export_onnx(model, meta, samples, out_path, settings=settings,
                       source=os.fspath(bundle_path))


def _warn_on_other_cuts(cdir: Path, manifest: Mapping[str, Any],
                        settings: Mapping[str, Any]) -> None:
    """Warn where the card would cut shots otherwise than the corpus the student learnt from
    (``corpus shots.max_len_s=0.75`` exported with the default 1 s: predict's shots then are
    not the training shots, and the pilot compared 2 of 6)."""
    corpus_shots = dict(((manifest.get("config") or {}).get("shots")) or {})
    card_shots = dict((settings.get("edge") or {}).get("shots") or {})
    differ = sorted(k for k in corpus_shots.keys() & card_shots.keys()
                    if corpus_shots[k] != card_shots[k])
    if differ:
        warnings.warn(
            f"{cdir} was cut with "
            + ", ".join(f"shots.{k}={corpus_shots[k]}" for k in differ)
            + " and the card cuts with "
            + ", ".join(f"{card_shots[k]}" for k in differ)
            + ": predict's shots are not the training shots; export with "
            + " ".join(f"edge.shots.{k}={corpus_shots[k]}" for k in differ),
            stacklevel=3)
