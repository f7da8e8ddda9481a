#!/usr/bin/env bash
# On the GPU machine, from the repo root: wait for the run that run_book.sh started, then
# report and (where $OUT is set, as in the device tool) collect the results so far.
#
#   bash scripts/gpu/poll.sh [SECONDS]    # wait at most SECONDS (default 540), less if it ends
#
# Prints the run's state, the GPU's load, the executed notebooks so far and the log's end.
# Exit code: 0 while the run is in flight or after it succeeded, 3 when no run was started
# on this machine, else the run's own exit code (the pipeline's 1 names the failed cell).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
WAIT=${1:-540}
RUN=${DMTNN_RUN_DIR:-/tmp/dmtnn-run}
alive() { [[ -f $RUN/pid ]] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

if [[ ! -f $RUN/started_s ]]; then
  echo "poll.sh: no run was started on this machine ($RUN); a fresh machine keeps nothing:" \
       "start one with scripts/gpu/run_book.sh" >&2
  exit 3
fi
t_end=$(( $(date +%s) + WAIT ))
last=""
while alive && (( $(date +%s) < t_end )); do
  # one line whenever a notebook starts or ends, so a long wait still shows progress
  line=$(grep -E '^\[[0-9]+/[0-9]+\]|done in|pipeline stopped|dataset ready' "$RUN/run.log" | tail -1)
  if [[ $line != "$last" ]]; then echo "$(date -u +%T) $line"; last=$line; fi
  sleep 5
done

profile=$(cat "$RUN/profile")
elapsed=$(( $(date +%s) - $(cat "$RUN/started_s") ))
if alive; then state="in flight"; rc=0
elif [[ -f $RUN/rc ]]; then rc=$(cat "$RUN/rc"); state="finished, rc $rc"
else state="gone without an exit code (killed?)"; rc=4
fi
echo "== run: profile $profile, started $(cat "$RUN/started"), $((elapsed / 60)) min $((elapsed % 60)) s: $state"
nvidia-smi --query-gpu=utilization.gpu,memory.used,memory.total --format=csv,noheader 2>/dev/null \
  | sed 's/^/== GPU: /' || true
nb=${DMTNN_ARTIFACTS:-artifacts}/$profile/notebooks
echo "== executed notebooks in $nb:"
ls -la "$nb" 2>/dev/null | grep -E 'ipynb$' || echo "   (none yet)"
echo "== log ($RUN/run.log), last 25 lines:"
tr '\r' '\n' <"$RUN/run.log" | tail -25
if [[ -n ${OUT:-} ]]; then
  bash scripts/gpu/collect.sh "$OUT" || echo "poll.sh: collect.sh failed (above)" >&2
fi
exit "$rc"
