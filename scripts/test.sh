#!/usr/bin/env bash
# Runs every test (unit, integration, fuzz, round-trip, engine, E2E in Chromium) after setup.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npx tsc -p tsconfig.json --noEmit
npx tsc -p renderer/tsconfig.json --noEmit
npx eslint .
npx vitest run "$@"
