#!/usr/bin/env bash
# The demo command of the quick start: sets up whatever is missing, then runs `dhta demo`.
# Until the attack demo lands (CLI issue), `dhta demo` is not there yet: this shows the adapter and times the
# small CNN's kernels instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if node apps/cli/run.mjs --help 2>/dev/null | grep -qE "^  demo( |$)"; then
  exec node apps/cli/run.mjs demo "$@"
fi
node apps/cli/run.mjs doctor
echo
node apps/cli/run.mjs bench kernels --groups small-cnn --reps 1
