#!/usr/bin/env bash
# The demo command of the quick start: sets up whatever is missing, then runs `dhta demo` (the shipped
# 32-bit MNIST model attacked with Original, Noise, P2P and DHTA; outputs in ./dhta-demo). Arguments are
# passed on, e.g. `bash scripts/demo.sh --full` or `--json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node apps/cli/run.mjs demo "$@"
