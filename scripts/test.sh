#!/usr/bin/env bash
# The test command: sets up whatever is missing (scripts/setup.sh), then typechecks, lints and runs every
# package's tests in one vitest run. Exits nonzero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
DHTA_SETUP_TESTS=1 bash scripts/setup.sh
echo "== typecheck" >&2
for pkg in packages/kernels packages/hamming packages/data packages/models packages/attack packages/eval apps/cli; do
  pnpm exec tsc -p "$pkg/tsconfig.json"
done
# The web app in two parts: the page (DOM types) and its worker, tests and build script (Node's).
pnpm exec tsc -p apps/web/tsconfig.json
pnpm exec tsc -p apps/web/tsconfig.node.json
echo "== lint" >&2
pnpm exec biome check .
echo "== tests" >&2
pnpm exec vitest run "$@"
