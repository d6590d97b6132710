"""The torch-free predictor: an ONNX student plus its card, run by onnxruntime.

``Predictor(model)`` loads ``model.onnx`` and ``model.card.json`` beside it, checks that they
agree (sha256, opset, feature count and names, feature-set version, operator allowlist) and
predicts VMAF from raw (unstandardized) feature rows in the card's column order; the
standardisation is inside the graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError
from .card import card_path_for, read_card, validate_card
from .onnx_check import check_allowlist, model_opsets

__all__ = ["DEFAULT_MODEL_NAME", "Predictor", "default_model_path"]

#: File name of the student shipped in the repository's ``checkpoints/``.
DEFAULT_MODEL_NAME = "vmafdistill_default.onnx"


def default_model_path() -> Path:
    """The shipped student: ``$VMAFDISTILL_MODEL`` or ``checkpoints/`` next to the package.

    Raises ModelError (with what to do) when no such file exists.
    """
    override = os.environ.get("VMAFDISTILL_MODEL")
    if override:
        p = Path(override)
        if not p.is_file():
            raise ModelError(f"VMAFDISTILL_MODEL={override!r} is not a file")
        return p
    pkg = Path(__file__).resolve().parents[1]  # .../vmafdistill
    candidates = [pkg.parent / "checkpoints" / DEFAULT_MODEL_NAME,
                  pkg / "checkpoints" / DEFAULT_MODEL_NAME]
    for p in candidates:
        if p.is_file():
            return p
    raise ModelError(
        f"no default model: {DEFAULT_MODEL_NAME} is not in "
        + " or ".join(str(c.parent) for c in candidates)
        + "; pass --model PATH.onnx (its .card.json beside it) or set VMAFDISTILL_MODEL"
    )


class Predictor:
    """An exported student ready to predict (onnxruntime, single-threaded by default)."""

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        card_path: str | os.PathLike[str] | None = None,
        *,
        threads: int = 1,
    ) -> None:
        """Load and check ``model_path`` and its card (default: ``<stem>.card.json`` beside it)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(
                "onnxruntime is not installed: pip install 'vmafdistill[edge]'"
            ) from None
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelError(f"{self.model_path}: model file not found")
        self.card_path = Path(card_path) if card_path else card_path_for(self.model_path)
        self.card: dict[str, Any] = read_card(self.card_path)
        data = self.model_path.read_bytes()
        check_allowlist(data, name=self.model_path.name)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(
                data, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{self.model_path}: onnxruntime cannot load it ({exc})") from None
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ModelError(f"{self.model_path}: expected one input, found {len(inputs)}")
        shape = inputs[0].shape
        width = shape[-1] if len(shape) == 2 and isinstance(shape[-1], int) else None
        validate_card(
            self.card,
            model_path=self.model_path,
            model_sha256=self.sha256_of(data),
            model_opsets=model_opsets(data),
            input_width=width,
        )
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.feature_names: list[str] = list(self.card["feature_names"])

    @staticmethod
    def sha256_of(data: bytes) -> str:
        """Hex sha256 of model bytes (what the card pins)."""
        import hashlib

        return hashlib.sha256(data).hexdigest()

    @property
    def size_bytes(self) -> int:
        """Size of the ONNX file in bytes."""
        return self.model_path.stat().st_size

    def predict(self, x: Any) -> np.ndarray:
        """VMAF for each row of ``x`` ((N, F) or (F,) raw features in card order) as float32."""
        arr = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise ModelError(
                f"{self.model_path.name}: expects (N, {len(self.feature_names)}) features, "
                f"got shape {arr.shape}"
            )
        out = self.session.run([self.output_name], {self.input_name: arr})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def predict_rows(self, rows: list[dict[str, float]]) -> np.ndarray:
        """:meth:`predict` on dict rows keyed by feature name."""
        x = np.array([[row[n] for n in self.feature_names] for row in rows], dtype=np.float32)
        return self.predict(x.reshape(len(rows), len(self.feature_names)))

