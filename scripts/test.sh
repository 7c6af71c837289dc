#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite. Real-footage tests read
# $CHAMP3D_FIXTURES (default ../shared/fixtures) and are skipped when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
