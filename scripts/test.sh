#!/usr/bin/env bash
# The test command: sets up whatever is missing (scripts/setup.sh), then typechecks, lints and runs every
# package's tests in one vitest run. Exits nonzero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== typecheck" >&2
pnpm exec tsc -p packages/kernels/tsconfig.json
pnpm exec tsc -p apps/cli/tsconfig.json
echo "== lint" >&2
pnpm exec biome check .
echo "== tests" >&2
pnpm exec vitest run "$@"
