"""``adm3``: libvmaf's combination of integer ADM (``adm2``) and its additive-impairment ``aim``.

``integer_adm.c`` computes, in one pass with the model's options (``adm_csf_mode`` 2 = the
Barten/Watson blend, ``adm_noise_weight``, ``adm_enhn_gain_limit``, ``adm_norm_view_dist``,
``adm_ref_display_height``), the usual ``adm2`` ratio and ``aim`` (the additive impairment
measure), and prints::

    adm3 = max(adm2 * adm_dlm_weight + (1 - aim) * (1 - adm_dlm_weight), adm_min_val)

:func:`adm3_from_adm2_aim` is that last line. ``adm2``/``aim`` with CSF mode 2 need libvmaf's
integer ADM, reproduced in :mod:`vmafdistill.teacher.exact.integer_adm` (which applies this
function to its own ``adm2``/``aim``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Adm3Options:
    """The adm3-specific options; the others go to the integer ADM itself."""

    dlm_weight: float = 0.5  # adm_dlm_weight
    min_val: float = 0.0  # adm_min_val

    @classmethod
    def from_libvmaf(cls, opts: dict[str, object]) -> Adm3Options:
        """Read ``adm_dlm_weight`` and ``adm_min_val`` (other ADM options are ignored here)."""
        return cls(
            dlm_weight=float(opts.get("adm_dlm_weight", cls.dlm_weight)),  # type: ignore[arg-type]
            min_val=float(opts.get("adm_min_val", cls.min_val)),  # type: ignore[arg-type]
        )


def adm3_from_adm2_aim(adm2: torch.Tensor, aim: torch.Tensor, opts: Adm3Options) -> torch.Tensor:
    """``max(adm2 * w + (1 - aim) * (1 - w), min_val)`` in float64, as libvmaf prints it."""
    a2 = torch.as_tensor(adm2, dtype=torch.float64)
    am = torch.as_tensor(aim, dtype=torch.float64)
    w = opts.dlm_weight
    return torch.clamp(a2 * w + (1.0 - am) * (1.0 - w), min=opts.min_val)
