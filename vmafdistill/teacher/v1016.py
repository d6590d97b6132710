"""Streaming VMAF v1.0.16 features: CAMBI, chroma SpEED, motion3 (and adm3 once available).

:class:`V1016Scorer` takes aligned chunks of decoded planes (luma for CAMBI and motion, chroma
for SpEED) and keeps the only temporal state (the last one or two reference luma frames for
motion) across chunks, so any chunking gives the numbers of one big chunk. Per-frame results use
libvmaf's printed names for the model (``cambi_hrs_1080_cmxv_17_vlt_0.06`` ...).

``adm3`` (libvmaf's integer ADM with CSF mode 2) is not reproduced yet: without it there is no
VMAF score, and :meth:`V1016Scorer.result` says so unless ``features_only=True``. An ``adm3``
function ``(ref_y, dist_y, bit_depth, options) -> (n,) tensor`` can be passed in to complete
the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import ModelError, VideoInputError
from .cambi import CambiOptions, cambi, check_cambi_size
from .model_v1016 import V1016Model
from .motion3 import Motion3Options, motion3_from_sad, motion_sad_scores
from .speed import SpeedOptions, check_speed_size, chroma_planes, require_chroma, speed_chroma

Adm3Fn = Callable[[torch.Tensor, torch.Tensor, int, dict[str, Any]], torch.Tensor]

ADM3_MISSING = (
    "feature 'adm3' (libvmaf's integer ADM with adm_csf_mode 2) is not reproduced here yet; "
    "CAMBI, SpEED chroma and motion3 are. VMAF v1.0.16 scores need it (see docs/teacher.md)"
)


class V1016Scorer:
    """Stream chunks through the v1.0.16 feature extractors, then :meth:`result`."""

    def __init__(
        self,
        model: V1016Model | str = "vmaf_v1.0.16_3d0h",
        *,
        device: str | torch.device = "cpu",
        adm3: Adm3Fn | None = None,
    ) -> None:
        self.model = model if isinstance(model, V1016Model) else V1016Model.load(model)
        self.device = torch.device(device)
        self.adm3 = adm3
        fo = self.model.feature_options
        self.cambi_opts = CambiOptions.from_libvmaf(fo["cambi"])
        self.speed_opts = SpeedOptions.from_libvmaf(fo["speed_chroma_uv"])
        self.motion_opts = Motion3Options.from_libvmaf(fo["motion3"])
        self._history: torch.Tensor | None = None
        self._seen = 0
        self._parts: dict[str, list[np.ndarray]] = {}
        self._size: tuple[int, int] | None = None

    def check_input(self, width: int, height: int, chroma_shape: tuple[int, int] | None) -> None:
        """Raise VideoInputError for input the model cannot score (size, missing chroma)."""
        name = self.model.name
        check_cambi_size(width, height, model=name)
        require_chroma(chroma_shape, model=name)
        assert chroma_shape is not None
        ch, cw = chroma_shape
        pw = width // 2 if cw < width else width
        ph = height // 2 if ch < height else height
        check_speed_size(pw, ph, self.speed_opts, model=name)

    @torch.no_grad()
    def update(
        self,
        ref_y: np.ndarray | torch.Tensor,
        dist_y: np.ndarray | torch.Tensor,
        ref_uv: tuple[Any, Any] | None,
        dist_uv: tuple[Any, Any] | None,
        *,
        bit_depth: int = 8,
    ) -> None:
        """Score one aligned chunk: luma ``(n, H, W)`` and chroma ``(u, v)`` planes."""
        ry = torch.as_tensor(np.asarray(ref_y)).to(self.device)
        dy = torch.as_tensor(np.asarray(dist_y)).to(self.device)
        n, h, w = ry.shape
        if self._size is None:
            self.check_input(w, h, None if ref_uv is None else tuple(np.shape(ref_uv[0])[-2:]))
            self._size = (w, h)
        if dist_uv is None or ref_uv is None:
            require_chroma(None, model=self.model.name)
            return
        feats: dict[str, torch.Tensor] = {}
        feats[self.model.printed_names()["cambi"]] = cambi(dy.to(torch.int32), bit_depth,
                                                           self.cambi_opts)
        ru, rv = chroma_planes(ref_uv[0], ref_uv[1], w, h, bit_depth)
        du, dv = chroma_planes(dist_uv[0], dist_uv[1], w, h, bit_depth)
        sp = speed_chroma(ru.to(self.device), rv.to(self.device), du.to(self.device),
                          dv.to(self.device), self.speed_opts)
        uv_name = self.model.printed_names()["speed_chroma_uv"]
        for key, value in sp.items():
            feats[uv_name.replace("speed_chroma_uv", key)] = value
        sad, self._history = motion_sad_scores(ry, bit_depth, self.motion_opts,
                                               history=self._history, start=self._seen)
        feats["_sad"] = sad
        if self.adm3 is not None:
            feats[self.model.printed_names()["adm3"]] = self.adm3(
                ry, dy, bit_depth, self.model.feature_options["adm3"])
        for key, value in feats.items():
            self._parts.setdefault(key, []).append(value.detach().cpu().numpy())
        self._seen += n

    def result(self, *, features_only: bool = False) -> dict[str, np.ndarray]:
        """Per-frame metrics in libvmaf's names (and ``vmaf`` when adm3 is available)."""
        if not self._parts:
            raise VideoInputError("no frames were scored")
        metrics = {k: np.concatenate(v).astype(np.float64) for k, v in self._parts.items()}
        names = self.model.printed_names()
        sad = metrics.pop("_sad")
        m3 = names["motion3"]
        motion = motion3_from_sad(torch.from_numpy(sad), self.motion_opts)
        metrics[m3.replace("integer_motion3", "VMAF_integer_feature_motion_sad_score")] = sad
        metrics[m3.replace("motion3", "motion2")] = motion["motion2"].numpy()
        metrics[m3] = motion["motion3"].numpy()
        if names["adm3"] not in metrics:
            if features_only:
                return metrics
            raise ModelError(f"model {self.model.name}: {ADM3_MISSING}")
        feats = {short: torch.from_numpy(metrics[printed]) for short, printed in names.items()}
        metrics["vmaf"] = self.model.predict(feats).numpy()
        return metrics
