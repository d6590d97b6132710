"""The VMAF v1.0.16 models: four features, a nu-SVR, a score transform and a chroma correction.

Netflix's v1.0.16 files (``vmaf_v1.0.16_{3d0h,5d0h,1d5h_2160,3d0h_2160}`` and their ``hfr``
variants) drop VIF and feed a libsvm nu-SVR with ``Cambi_feature_cambi_score``,
``Speed_chroma_feature_speed_chroma_uv_score``, ``VMAF_integer_feature_adm3_score`` and
``VMAF_integer_feature_motion3_score``. :func:`predict_v1016` applies them as libvmaf's
``predict.c`` does, in this order:

1. each feature ``x`` -> ``slope * x + intercept`` (the model's per-feature linear rescale);
2. chroma correction (``chroma_correction_parameter`` c): when the SpEED chroma feature is
   exactly 0 (libvmaf's test is on the value denormalised back), it is replaced by
   ``c * (1 - adm3)`` before normalisation;
3. the RBF nu-SVR, then ``(y - intercept0) / slope0``;
4. the polynomial score transform ``p0 + p1 y + p2 y^2`` (only the coefficients present);
5. the clip to ``score_clip`` (``[0, 110]`` for the ``3d0h_2160`` files).

Model files are not committed: they are read from the ``ffmpeg-quality-metrics`` package.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import ModelError
from ..oracle import model_files_dir

if TYPE_CHECKING:
    from .model import ScoreTransform

#: The eight v1.0.16 files, addressable by these names.
V1016_MODELS: tuple[str, ...] = tuple(
    f"vmaf_v1.0.16_{hfr}{kind}"
    for hfr in ("", "hfr_")
    for kind in ("3d0h", "5d0h", "1d5h_2160", "3d0h_2160")
)

#: The SVR inputs, in the model files' order, by the short names used here.
V1016_FEATURES: tuple[str, ...] = ("cambi", "speed_chroma_uv", "adm3", "motion3")

_RAW_FEATURES = {
    "Cambi_feature_cambi_score": "cambi",
    "Speed_chroma_feature_speed_chroma_uv_score": "speed_chroma_uv",
    "VMAF_integer_feature_adm3_score": "adm3",
    "VMAF_integer_feature_motion3_score": "motion3",
}

# Option name -> (alias libvmaf prints, default value). libvmaf names a feature by its key and
# the aliases and values of the options that differ from their defaults, sorted by option name.
_OPTION_ALIASES: dict[str, tuple[str, Any]] = {
    "cambi_high_res_speedup": ("hrs", 0),
    "cambi_max_val": ("cmxv", 1000.0),
    "cambi_vis_lum_threshold": ("vlt", 0.0),
    "cambi_topk": ("ctpk", 0.6),
    "topk": ("topk", 0.6),  # libvmaf takes both names, and prints each with its own alias
    "cambi_eotf": ("ceot", "bt1886"),
    "window_size": ("ws", 65),
    "tvi_threshold": ("tvit", 0.019),
    "max_log_contrast": ("mlc", 2),
    "speed_kernelscale": ("ks", 1.0),
    "speed_prescale": ("ps", 1.0),
    "speed_prescale_method": ("psm", "nearest"),
    "speed_sigma_nn": ("snn", 0.29),
    "speed_nn_floor": ("nnf", 0.0),
    "speed_max_val": ("mxv", 1000.0),
    "speed_weight_var_mode": ("wvm", 0),
    "adm_csf_mode": ("csf", 0),
    "adm_dlm_weight": ("dlmw", 0.5),
    "adm_enhn_gain_limit": ("egl", 100.0),
    "adm_min_val": ("min", 0.0),
    "adm_noise_weight": ("nw", 0.03125),
    "adm_norm_view_dist": ("nvd", 3.0),
    "adm_ref_display_height": ("rdh", 1080),
    "motion_max_val": ("mmxv", 10000.0),
    "motion_five_frame_window": ("mffw", False),
    "motion_moving_average": ("mma", False),
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def libvmaf_feature_name(base: str, opts: dict[str, Any]) -> str:
    """The name libvmaf prints for feature ``base`` computed with ``opts`` (non-defaults only).

    ``libvmaf_feature_name("cambi", {"cambi_max_val": 17.0, ...})`` ->
    ``"cambi_hrs_1080_cmxv_17_vlt_0.06"``; boolean options print their alias alone.
    """
    parts = [base]
    for key in sorted(opts):
        if key not in _OPTION_ALIASES:
            raise ModelError(f"feature option {key!r} of {base} is not reproduced here")
        alias, default = _OPTION_ALIASES[key]
        value = opts[key]
        if isinstance(default, bool):
            if bool(value):
                parts.append(alias)
            continue
        if isinstance(default, str):
            if str(value) != default:
                parts.append(f"{alias}_{value}")
            continue
        if abs(float(value) - float(default)) > 1e-9:
            parts.append(f"{alias}_{_fmt(float(value))}")
    return "_".join(parts)


def existing_model_file(path: Path) -> Path:
    """Return ``path`` if it is a readable file; else raise ModelError saying what it is."""
    if path.is_dir():
        raise ModelError(f"model file {path}: is a directory, not a model JSON")
    if not path.is_file():
        raise ModelError(f"model file {path}: no such file")
    return path


def resolve_v1016_path(name_or_path: str | Path) -> Path:
    """Map ``vmaf_v1.0.16_3d0h`` (or a JSON path) to the model file."""
    text = str(name_or_path)
    if text in V1016_MODELS:
        path = model_files_dir() / f"{text}.json"
        if not path.is_file():
            raise ModelError(f"model {text!r}: expected file {path} is missing")
        return path
    return existing_model_file(Path(text).expanduser())


def is_v1016_model(name_or_path: str | Path) -> bool:
    """True for a v1.0.16 model name, or a readable JSON file in the v1.0.16 layout."""
    if not isinstance(name_or_path, (str, Path)):
        return False  # a loaded model object (VmafModel)
    text = str(name_or_path)
    if text in V1016_MODELS:
        return True
    path = Path(text)
    try:
        if not path.is_file():  # any suffix (my_model.JSON): the document decides
            return False
    except OSError:  # a name too long to be a path
        return False
    try:
        return is_v1016_document(json.loads(path.read_text()))
    except (OSError, ValueError):
        return False


def is_v1016_document(doc: dict[str, Any]) -> bool:
    """True when a parsed model JSON uses the v1.0.16 feature set."""
    md = doc.get("model_dict") if isinstance(doc, dict) else None
    names = md.get("feature_names") if isinstance(md, dict) else None
    # anything else is not a model JSON: the loader names what is wrong with it
    return isinstance(names, list) and any(n in _RAW_FEATURES for n in names)


@dataclass
class V1016Model:
    """A parsed v1.0.16 model: options per feature, normalisation, SVR, transform, clip."""

    name: str
    feature_names: list[str]  # short names, in SVR input order
    feature_options: dict[str, dict[str, Any]]  # short name -> libvmaf options
    slopes: list[float]
    intercepts: list[float]
    support_vectors: torch.Tensor  # (S, F) float64
    coefs: torch.Tensor  # (S,) float64
    gamma: float
    rho: float
    transform: ScoreTransform | None = None  # where the JSON enables it
    score_clip: tuple[float, float] | None = None
    chroma_correction: float | None = None

    @classmethod
    def load(cls, name_or_path: str | Path = "vmaf_v1.0.16_3d0h") -> V1016Model:
        """Load a v1.0.16 model by name or path; ModelError names the file on bad content."""
        # the libsvm string format and the score transform are shared with v0.6.1
        from .model import _parse_libsvm, parse_score_transform

        path = resolve_v1016_path(name_or_path)
        try:
            doc = json.loads(path.read_text())
            md = doc["model_dict"]
            raw_names = list(md["feature_names"])
            opts = md.get("feature_opts_dicts") or [{} for _ in raw_names]
        except KeyError as exc:
            raise ModelError(f"model file {path}: not a VMAF model JSON "
                             f"(no {exc} key)") from exc
        except (OSError, ValueError, TypeError) as exc:
            raise ModelError(f"model file {path}: not a VMAF model JSON ({exc})") from exc
        if md.get("model_type") != "LIBSVMNUSVR" or md.get("norm_type") != "linear_rescale":
            raise ModelError(f"model file {path}: only linear_rescale LIBSVMNUSVR is supported")
        names = []
        for raw in raw_names:
            if raw not in _RAW_FEATURES:
                raise ModelError(f"model file {path}: feature {raw!r} is not computed here (a "
                                 "v1.0.16 model reads cambi, speed_chroma_uv, adm3 and motion3: "
                                 "this one mixes them with others)")
            names.append(_RAW_FEATURES[raw])
        sv, coefs, gamma, rho = _parse_libsvm(md["model"], len(names), path)
        transform = parse_score_transform(md, path)
        clip = md.get("score_clip")
        ccp = md.get("chroma_correction_parameter")
        name = str(name_or_path) if str(name_or_path) in V1016_MODELS else path.stem
        model = cls(
            name=name,
            feature_names=names,
            feature_options={n: dict(o or {}) for n, o in zip(names, opts, strict=True)},
            slopes=[float(v) for v in md["slopes"]],
            intercepts=[float(v) for v in md["intercepts"]],
            support_vectors=sv,
            coefs=coefs,
            gamma=gamma,
            rho=rho,
            transform=transform,
            score_clip=(float(clip[0]), float(clip[1])) if clip else None,
            chroma_correction=float(ccp) if ccp else None,
        )
        try:  # an option libvmaf takes and this teacher does not: said at load, with the file
            model.printed_names()
        except ModelError as exc:
            raise ModelError(f"model file {path}: {exc}") from None
        return model

    def printed_names(self) -> dict[str, str]:
        """Short feature name -> the per-frame metric name libvmaf prints for this model."""
        bases = {"cambi": "cambi", "speed_chroma_uv": "speed_chroma_uv",
                 "adm3": "integer_adm3", "motion3": "integer_motion3"}
        return {n: libvmaf_feature_name(bases[n], self.feature_options[n])
                for n in self.feature_names}

    def predict(self, features: dict[str, torch.Tensor], *, clip: bool = True) -> torch.Tensor:
        """VMAF per frame from the four features (each ``(N,)``), in float64 as libvmaf."""
        return predict_v1016(self, features, clip=clip)


def predict_v1016(
    model: V1016Model, features: dict[str, torch.Tensor], *, clip: bool = True
) -> torch.Tensor:
    """libvmaf's ``vmaf_predict_score_at_index`` for a v1.0.16 model (see the module doc)."""
    cols = [torch.as_tensor(features[n]).to(torch.float64) for n in model.feature_names]
    x = torch.stack(cols, dim=-1)
    slopes = torch.tensor(model.slopes[1:], dtype=torch.float64, device=x.device)
    intercepts = torch.tensor(model.intercepts[1:], dtype=torch.float64, device=x.device)
    x = x * slopes + intercepts
    if model.chroma_correction:
        i_s = model.feature_names.index("speed_chroma_uv")
        i_a = model.feature_names.index("adm3")
        # libvmaf tests the denormalised value: (slope*x + b - b) / slope == 0 iff x == 0.
        s_den = (x[..., i_s] - intercepts[i_s]) / slopes[i_s]
        a_den = (x[..., i_a] - intercepts[i_a]) / slopes[i_a]
        c = model.chroma_correction
        corrected = slopes[i_s] * (-c * a_den + c) + intercepts[i_s]
        x = x.clone()
        x[..., i_s] = torch.where(s_den == 0.0, corrected, x[..., i_s])
    sv = model.support_vectors.to(x.device)
    sq_dist = ((x.unsqueeze(-2) - sv) ** 2).sum(dim=-1)
    raw = (torch.exp(-model.gamma * sq_dist) * model.coefs.to(x.device)).sum(dim=-1) - model.rho
    score = (raw - model.intercepts[0]) / model.slopes[0]
    if model.transform is not None:
        score = model.transform(score)
    if clip and model.score_clip is not None:
        score = score.clamp(model.score_clip[0], model.score_clip[1])
    return score
