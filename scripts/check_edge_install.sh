#!/usr/bin/env bash
# The torch-free edge install, checked end to end (CI; < 2 min):
#   1. a fresh virtual environment gets `pip install <repo>[edge]` (base + onnxruntime + PyAV);
#   2. `import torch` must fail there (and pip must not have installed it);
#   3. `vmafdistill predict` runs on a small synthetic H.264 encode twice and its --json output is
#      checked: with no --model (the student shipped in checkpoints/, which the wheel carries; it
#      must be the installed copy, byte-identical to the repo's) and with the tiny test student
#      (tests/data/edge/tiny.onnx + card, which reads pixel features); the shipped student must
#      have decoded in-process (PyAV) and taken its pixel sums from the compiled kernel, which
#      pip builds where a C compiler is found (this check assumes one).
# Usage: bash scripts/check_edge_install.sh            (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail
# A checkout on PYTHONPATH would be imported instead of the install this script checks.
unset PYTHONPATH PYTHONHOME
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS

echo "[edge-install] fresh venv in $WORK"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q --disable-pip-version-check "$REPO[edge]"

if "$VPY" -c "import torch" 2>/dev/null; then
  echo "[edge-install] FAIL: torch is importable in the edge install" >&2
  exit 1
fi
if "$VPY" -m pip list --format=freeze 2>/dev/null | grep -iqE '^(torch|onnx|pandas|lightning)=='; then
  echo "[edge-install] FAIL: the edge install pulled a training dependency:" >&2
  "$VPY" -m pip list --format=freeze | grep -iE '^(torch|onnx|pandas|lightning)==' >&2
  exit 1
fi
echo "[edge-install] torch absent: ok"

cd "$WORK"  # not the repo: the installed package must be the one imported
"$VPY" - <<'PYEOF'
from vmafdistill._ffmpeg import run_ffmpeg
run_ffmpeg(["-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1.2",
            "-f", "lavfi", "-i", "mandelbrot=size=320x180:rate=25",
            "-filter_complex", "[1:v]trim=duration=1.2,setpts=PTS-STARTPTS[m];[0:v][m]concat=n=2:v=1",
            "-c:v", "libx264", "-preset", "veryfast", "-crf", "32", "-pix_fmt", "yuv420p",
            "clip.mp4"], what="encoding the synthetic clip")
PYEOF

"$WORK/venv/bin/vmafdistill" predict clip.mp4 --json shipped.json
"$WORK/venv/bin/vmafdistill" predict clip.mp4 --model "$REPO/tests/data/edge/tiny.onnx" \
  --ref-size 1280x720 --json tiny.json
REPO="$REPO" "$VPY" - <<'PYEOF'
import filecmp, json, os, sys
from pathlib import Path
from vmafdistill.edge.predictor import default_model_path
shipped = default_model_path()
repo = Path(os.environ["REPO"])
assert repo not in shipped.resolve().parents, f"default model not from the install: {shipped}"
assert filecmp.cmp(shipped, repo / "checkpoints" / shipped.name, shallow=False), shipped
keys = {"shot", "start", "end", "codec", "res", "pred_vmaf", "interval", "band", "issue"}
for name in ("shipped.json", "tiny.json"):
    doc = json.load(open(name))
    (video,) = doc["videos"]
    shots = video["shots"]
    assert len(shots) == 4, f"{name}: expected 4 shots, got {len(shots)}"
    for r in shots:
        assert keys <= set(r), r
        assert r["codec"] == "H264" and r["res"] == "180p", r
        assert 0.0 <= r["pred_vmaf"] <= 100.0, r
        assert r["interval"][0] <= r["pred_vmaf"] <= r["interval"][1], r
        assert r["band"] in ("green", "amber", "red"), r
    print(f"[edge-install] {name} ok: {len(shots)} shots, "
          f"pred {[r['pred_vmaf'] for r in shots]}")
assert "torch" not in sys.modules
# the shipped student reads the decoder's H.264 block QPs: PyAV must be there and read them
import numpy as np
from vmafdistill.io.packets import read_packets
p = read_packets("clip.mp4", quantizer=True, mb_quantizer=True)
assert np.isfinite(p.mb_qp).sum() >= 2, p.mb_qp
print(f"[edge-install] block QPs read on {int(np.isfinite(p.mb_qp).sum())} of {len(p)} frames")
# ... and predict decoded the clip once, in-process, for its pixels and block QPs
pixel = json.load(open("shipped.json"))["videos"][0]["summary"]["pixel_features"]
assert pixel["decoder"] == "pyav", pixel
print(f"[edge-install] shipped student decoded in-process ({pixel['decoder']})")
# ... and the install built the compiled pixel-sum kernel (a C compiler is on this machine)
assert pixel["kernel"] == "c", pixel
print(f"[edge-install] pixel sums from the compiled kernel ({pixel['kernel']})")
PYEOF
# Serving must equal the full install (its other dependencies, PyAV among them): an NTSC-rate
# clip (ffmpeg -i prints 30000/1001 as "29.97"), predicted by both, records equal.
FULL="$REPO/.venv/bin/vmafdistill"
if [ ! -x "$FULL" ]; then
  echo "[edge-install] no full install at $FULL: edge vs full comparison skipped"
else
  "$VPY" -c 'from vmafdistill._ffmpeg import run_ffmpeg; run_ffmpeg(["-f", "lavfi", "-i",
    "testsrc2=size=320x180:rate=30000/1001:duration=2", "-c:v", "libx264", "-preset",
    "veryfast", "-crf", "30", "-pix_fmt", "yuv420p", "ntsc.mp4"], what="NTSC clip")'
  "$WORK/venv/bin/vmafdistill" predict ntsc.mp4 --json edge_ntsc.json
  "$FULL" predict ntsc.mp4 --json full_ntsc.json
  "$VPY" - <<'PYEOF'
import json
edge, full = (json.load(open(n))["videos"][0] for n in ("edge_ntsc.json", "full_ntsc.json"))
assert edge["shots"] == full["shots"], (edge["shots"], full["shots"])
print(f"[edge-install] NTSC clip: records equal to the full install's ({len(edge['shots'])} shots)")
PYEOF
fi
# the commands that need more than the edge install say which extra to install, in one line
for pair in "teacher:score clip.mp4 clip.mp4" "train:train --help" "teacher:sources synth --out s" \
            "train:evaluate"; do
  extra=${pair%%:*}
  cmd=${pair#*:}
  set +e
  err=$("$WORK/venv/bin/vmafdistill" $cmd 2>&1 >/dev/null)
  rc=$?
  set -e
  if [ "$rc" != 2 ] || ! grep -qF "pip install 'vmafdistill[$extra]'" <<<"$err" \
      || grep -q Traceback <<<"$err"; then
    echo "[edge-install] FAIL: vmafdistill $cmd (exit $rc): $err" >&2
    exit 1
  fi
done
echo "[edge-install] score/train/sources/evaluate name the extra they need"
echo "[edge-install] passed in $((SECONDS - start)) s"
