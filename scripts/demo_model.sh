#!/usr/bin/env bash
# The model half of `make demo`: train a TINY RANDOM VidRD model for a few steps on the demo shards, then (if
# the sampler is installed) sample a short clip from it. Run from the repo root with the venv at .venv, after
# `vidrd-data build --manifest manifests/demo.yaml` has written out/demo/shards/*.tar.
#
# The model is tiny (a few million parameters) and starts from random weights: this shows the pipeline
# working end to end (shards -> trainer -> checkpoint -> sampler), NOT video generation. Its samples are noise.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT=out/demo_model
SHARDS=${SHARDS:-out/demo/shards}

if ! ls "$SHARDS"/*.tar >/dev/null 2>&1; then
  echo "[demo-model] no shards in $SHARDS: run 'vidrd-data build --manifest manifests/demo.yaml' first" >&2
  exit 1
fi

echo "[demo-model] NOTE: the model below is TINY and RANDOM: a tiny random Stable Diffusion 2.x folder (made by the"
echo "[demo-model]       test support code vidrd_testing.tiny_vidrd.make_tiny_sd2) inflated with 'vidrd-model init',"
echo "[demo-model]       the same command that inflates the real stable-diffusion-2-1-base. It demonstrates the"
echo "[demo-model]       pipeline (init -> train -> sample), not a usable video model."
rm -rf "$OUT"
"$PY" -c "from vidrd_testing.tiny_vidrd import make_tiny_sd2; print(make_tiny_sd2('$OUT/tiny_random_sd2'))"
"$VENV/bin/vidrd-model" init --from "$OUT/tiny_random_sd2" --output "$OUT/tiny_random_model"

"$VENV/bin/vidrd-model" train \
  --shards "$SHARDS/*.tar" \
  --pretrained "$OUT/tiny_random_model" \
  --output-dir "$OUT/train" \
  --max-steps 8 --batch-size 2 --num-frames 8 --resolution 64 \
  --dataloader-workers 2 --learning-rate 1e-3 --warmup-steps 0 \
  --checkpoint-every 4 --keep-last 2 --log-every 1 \
  --set run.logger=csv

echo "[demo-model] trained the tiny random model: $OUT/train/model (logs: $OUT/train/logs/metrics.csv)"

if "$VENV/bin/vidrd-model" sample --help >/dev/null 2>&1; then
  echo "[demo-model] sampling a short clip from the tiny random model (expect noise)"
  "$VENV/bin/vidrd-model" sample --model "$OUT/train/model" --prompt "a dog running on the beach" \
    --output "$OUT/sample.mp4" --num-clips 2 --num-frames 8 --height 64 --width 64 --steps 10 --seed 0
  echo "[demo-model] wrote $OUT/sample.mp4 (from a TINY RANDOM model: noise, by design)"
else
  echo "[demo-model] 'vidrd-model sample' is not available yet: skipped sampling"
fi
