#!/usr/bin/env bash
# video2dataset 1.3 in its own virtualenv, for bench_long_video's third-party anchor.
#
#   bash benchmarks/anchors/setup_video2dataset.sh            # -> benchmarks/anchors/.venv-v2d (gitignored)
#   V2D_VENV=/some/dir bash benchmarks/anchors/setup_video2dataset.sh
#
# Why its own venv: video2dataset 1.3 pins torch 2.1.2, transformers 4.37, scenedetect 0.6.2 and numpy < 2,
# none of which can live beside our stack. The benchmark imports only its three subsamplers (cut detection,
# clipping, resolution), so only what those import is installed, every version pinned (--no-deps keeps pip
# from pulling the rest of its requirement list: torch, wandb, yt-dlp, decord...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
VENV=${V2D_VENV:-$here/.venv-v2d}
PY=${PYTHON:-python3}
stamp="$VENV/.v2d-1.3.0"
if [ -f "$stamp" ]; then
  echo "[anchors] video2dataset 1.3.0 already set up in $VENV"
  exit 0
fi
command -v ffmpeg >/dev/null 2>&1 || { echo "[anchors] video2dataset's clipping needs the ffmpeg binary (apt-get install ffmpeg)" >&2; exit 1; }
"$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --no-deps \
  video2dataset==1.3.0 \
  scenedetect==0.6.2 \
  opencv-python-headless==4.9.0.80 \
  numpy==1.26.4 \
  ffmpeg-python==0.2.0 \
  future==1.0.0 \
  click==8.1.7 \
  tqdm==4.66.4 \
  platformdirs==4.2.2
# the same check the benchmark's harness makes: the three subsamplers import without the package's __init__
"$VENV/bin/python" - <<'EOF'
import importlib, os, sys, types
site = [p for p in sys.path if p.endswith("site-packages")][0]
for name in ("video2dataset", "video2dataset.subsamplers"):
    mod = types.ModuleType(name)
    mod.__path__ = [os.path.join(site, *name.split("."))]
    sys.modules[name] = mod
for sub in ("cut_detection_subsampler", "clipping_subsampler", "resolution_subsampler"):
    importlib.import_module(f"video2dataset.subsamplers.{sub}")
import scenedetect
print(f"[anchors] video2dataset 1.3.0 subsamplers import; scenedetect {scenedetect.__version__}")
EOF
touch "$stamp"
echo "[anchors] ready: $VENV/bin/python"
