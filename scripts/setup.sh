#!/usr/bin/env bash
# Create .venv and install vmafdistill with everything needed to run and test it (CPU only).
# torch==2.13.0 goes in first: an unpinned torch pulls multi-GB CUDA wheels.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[dev]"
python - <<'PY'
import torch, vmafdistill
from vmafdistill._ffmpeg import ffmpeg_exe, ffmpeg_version
print(f"vmafdistill {vmafdistill.__version__} ready: torch {torch.__version__}, ffmpeg {ffmpeg_version()}")
PY
