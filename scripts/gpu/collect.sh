#!/usr/bin/env bash
# On the GPU machine, from the repo root: copy a run's results into DEST (default $OUT, the
# folder whose files the device tool brings back: at most 8 files of at most 16 MiB each).
#
#   bash scripts/gpu/collect.sh [DEST]
#
# Writes at most 7 files:
#   run.log             the run's log (its last 15 MiB if longer)
#   status.txt          profile, start, state, exit code, elapsed time, notebooks and sizes
#   manifest.json       the profile's artifacts/<profile>/manifest.json, if any
#   notebooks.tar.gz    artifacts/<profile>/notebooks/: the executed notebooks, and the
#                       partial copy (.NN_name.partial.ipynb) of one that failed; split into
#                       notebooks.tar.gz.part-aa, -ab, ... (at most 4) when over 15 MiB:
#                       `cat notebooks.tar.gz.part-* | tar -xzf -` joins them
# Unpack here with: tar -xzf notebooks.tar.gz  (-> notebooks/*.ipynb)
# Fails (exit 1) when there is nothing to collect or it cannot fit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DEST=${1:-${OUT:-}}
[[ -n $DEST ]] || { echo "collect.sh: no DEST and no \$OUT" >&2; exit 1; }
RUN=${DMTNN_RUN_DIR:-/tmp/dmtnn-run}
PART=${COLLECT_PART_BYTES:-$((15 * 1048576))}  # below the 16 MiB a file may have
profile=$(cat "$RUN/profile" 2>/dev/null || echo "${DMTNN_PROFILE:-book}")
nb=${DMTNN_ARTIFACTS:-artifacts}/$profile/notebooks
mkdir -p "$DEST"

alive() { [[ -f $RUN/pid ]] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }
{
  echo "profile: $profile"
  echo "started: $(cat "$RUN/started" 2>/dev/null || echo '-')"
  if alive; then echo "state: in flight"
  elif [[ -f $RUN/rc ]]; then echo "state: finished, rc $(cat "$RUN/rc")"
  else echo "state: no run in flight"; fi
  [[ -f $RUN/started_s ]] && echo "elapsed_s: $(( $(date +%s) - $(cat "$RUN/started_s") ))"
  echo "collected: $(date -u +%FT%TZ)"
  echo "notebooks ($nb):"
  (cd "$nb" 2>/dev/null && ls -la --time-style=+%FT%T | grep -E 'ipynb$') || echo "  none"
} >"$DEST/status.txt"

if [[ -f $RUN/run.log ]]; then tail -c "$PART" "$RUN/run.log" >"$DEST/run.log"; fi
if [[ -f ${DMTNN_ARTIFACTS:-artifacts}/$profile/manifest.json ]]; then
  cp "${DMTNN_ARTIFACTS:-artifacts}/$profile/manifest.json" "$DEST/manifest.json"
fi

shopt -s nullglob dotglob
files=("$nb"/*.ipynb)
if ((${#files[@]} == 0)); then
  echo "collect.sh: no notebooks yet in $nb; status.txt and run.log copied to $DEST"
  [[ -f $DEST/run.log ]] || exit 1
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/notebooks"
cp -p "${files[@]}" "$tmp/notebooks/"
tar -C "$tmp" -czf "$tmp/notebooks.tar.gz" notebooks
size=$(stat -c %s "$tmp/notebooks.tar.gz")
rm -f "$DEST"/notebooks.tar.gz "$DEST"/notebooks.tar.gz.part-*
if ((size <= PART)); then
  mv "$tmp/notebooks.tar.gz" "$DEST/"
else
  ((size <= 4 * PART)) || { echo "collect.sh: notebooks.tar.gz is $size bytes, over 4 parts of $PART" >&2; exit 1; }
  split -b "$PART" "$tmp/notebooks.tar.gz" "$DEST/notebooks.tar.gz.part-"
fi
echo "collect.sh: ${#files[@]} notebooks ($((size / 1024)) KiB gzipped), status.txt, run.log -> $DEST:"
ls -la "$DEST"
