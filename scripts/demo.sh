#!/usr/bin/env bash
# The demo command of the quick start: sets up whatever is missing, then runs `dhta demo` (the shipped
# 32-bit Fashion-MNIST model attacked with Original, Noise, P2P and DHTA: 50 queries, 300 iterations, eps 0.1
# in pixels; outputs in ./dhta-demo). Arguments are passed on, e.g. `bash scripts/demo.sh --full` (the paper's
# settings exactly), `--paper-eps`, `--data mnist` or `--json`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node apps/cli/run.mjs demo "$@"
