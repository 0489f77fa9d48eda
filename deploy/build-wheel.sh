#!/usr/bin/env bash
# A release wheel: the browser client built into collab/web first, so that
# installing the wheel needs no Node (docs/client.md). Run from a clone:
#   deploy/build-wheel.sh [out-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
npm --prefix client ci --no-audit --no-fund
npm --prefix client run build --silent
python3 -m pip wheel --no-deps --quiet -w "$out" .
ls "$out"/collab-*.whl
