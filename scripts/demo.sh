#!/usr/bin/env bash
# Set up (idempotent) and run the weight-free demo: a reference photo animated by a driving
# video (guidance maps, baked texture, animation.mp4). Uses the real footage in $CHAMP3D_FIXTURES (default ../shared/fixtures)
# when present, otherwise synthesises a reference and a driving clip first.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/champ3d demo --out "${1:-runs/demo}"
