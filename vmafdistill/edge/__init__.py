"""The torch-free edge runtime: model cards, the ONNX predictor, quality tokens, the pipeline.

Nothing here imports torch (``vmafdistill predict`` runs on the base install + onnxruntime);
the torch side of export lives in :mod:`vmafdistill.export`. Submodules are imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["EdgeOptions", "Predictor", "analyze_video", "default_model_path", "shot_feature_rows"]

_LAZY = {
    "EdgeOptions": ".pipeline",
    "analyze_video": ".pipeline",
    "shot_feature_rows": ".pipeline",
    "Predictor": ".predictor",
    "default_model_path": ".predictor",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
