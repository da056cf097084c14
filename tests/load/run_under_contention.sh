#!/usr/bin/env bash
# Run pytest while busy-loop processes hold every core (one per core, at normal priority):
# the suite must pass on a machine that other work keeps busy.
#
#   tests/load/run_under_contention.sh                 # the suite as a plain pytest runs it
#   tests/load/run_under_contention.sh -m "e2e or not e2e"   # the end-to-end tests too
#   tests/load/run_under_contention.sh tests/flows -x  # any pytest arguments
#
# Uses the existing .venv (`.ci/run --contention` builds a fresh one first). The loops are
# killed on exit, however pytest ends. Prints the wall time; exits with pytest's status.
set -euo pipefail
cd "$(dirname "$0")/../.."

loops=()
stop_loops() {
  if [ "${#loops[@]}" -gt 0 ]; then
    kill "${loops[@]}" 2>/dev/null || true
    wait "${loops[@]}" 2>/dev/null || true
  fi
}
trap stop_loops EXIT
trap 'exit 130' INT TERM

cores=$(nproc)
for _ in $(seq "$cores"); do
  bash -c 'while :; do :; done' &
  loops+=("$!")
done
echo "== contention: ${#loops[@]} busy loops on $cores cores (pids ${loops[*]})"

start=$SECONDS
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
echo "== pytest under contention: exit $rc in $((SECONDS - start)) s wall"
exit "$rc"
