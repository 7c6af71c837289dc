#!/usr/bin/env bash
# Idempotent set-up of everything champ3d needs on a fresh Debian machine:
# the headless EGL/Mesa libraries, a virtual environment with the pinned CPU torch, the
# package with its test and SMPL-X extras, and the body model's one-time cache (about 2 minutes).
# Re-running it is cheap: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${CHAMP3D_VENV:-.venv}
TORCH_SPEC=${CHAMP3D_TORCH:-torch==2.13.0}

need_apt=()
for pkg in libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 libgles2; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
stamp="$VENV/.champ3d-installed"
want="$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1) $TORCH_SPEC"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] installing $TORCH_SPEC and champ3d"
  "$PY" -m pip install -q --upgrade pip
  # torch first, pinned: every later requirement is then satisfied by this CPU build
  "$PY" -m pip install -q "$TORCH_SPEC"
  "$PY" -m pip install -q -e ".[test,smplx]" "$TORCH_SPEC"
  if "$PY" -m pip list 2>/dev/null | grep -qi '^nvidia-'; then
    echo "[setup] error: a CUDA torch build was pulled in; pin $TORCH_SPEC" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi

# The body model builds its data cache on first use (~2 minutes, once per machine).
"$PY" -m champ3d.body.cache
