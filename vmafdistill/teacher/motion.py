"""Temporal features ``motion`` and ``motion2``, following libvmaf's ``float_motion``.

``motion[i]`` is the mean absolute difference between the blurred reference frames ``i`` and
``i - 1`` (0 for the first frame); ``motion2[i] = min(motion[i], motion[i + 1])``, except
``motion2[0] = 0`` and the last frame keeps its own ``motion``. Only the reference is used.
"""

from __future__ import annotations

import torch

from .filters import MOTION_FILTER_5, separable_filter


def motion_blur(ref: torch.Tensor, *, filter_method: str = "exact") -> torch.Tensor:
    """Blur ``(N, H, W)`` reference frames with libvmaf's 5-tap motion filter."""
    return separable_filter(ref, MOTION_FILTER_5, method=filter_method)


def motion_sad(
    blurred: torch.Tensor, prev_blurred: torch.Tensor | None
) -> torch.Tensor:
    """``motion`` of each frame in a chunk of blurred frames, shape ``(N,)`` float64.

    ``prev_blurred`` is the blurred frame just before the chunk (``None`` at the start of the
    video, where the first frame's motion is 0 by definition). Passing it is what makes chunked
    scoring identical to whole-clip scoring.
    """
    n = blurred.shape[0]
    prev = blurred[:1] if prev_blurred is None else prev_blurred.unsqueeze(0)
    previous = torch.cat([prev, blurred[: n - 1]])
    # Row sums in the working precision, then float64 across rows: libvmaf sums each row in
    # float32 too, and this is 3x cheaper than promoting every pixel to float64.
    h, w = blurred.shape[-2:]
    sad = (blurred - previous).abs().sum(dim=-1).sum(dim=-1, dtype=torch.float64) / (h * w)
    if prev_blurred is None:
        sad = torch.cat([torch.zeros_like(sad[:1]), sad[1:]])
    return sad


def motion2_from_motion(motion: torch.Tensor) -> torch.Tensor:
    """``motion2`` of a whole video from its per-frame ``motion`` (shape ``(N,)``)."""
    if motion.numel() <= 1:
        return torch.zeros_like(motion)
    inner = torch.minimum(motion[1:-1], motion[2:])
    return torch.cat([torch.zeros_like(motion[:1]), inner, motion[-1:]])
