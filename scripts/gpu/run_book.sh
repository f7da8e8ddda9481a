#!/usr/bin/env bash
# On the GPU machine, from the repo root, with .whl carried (see scripts/gpu/README.md):
#
#   bash scripts/gpu/run_book.sh                     # set up, then start data + notebooks (book)
#   bash scripts/gpu/run_book.sh --from 05 --restart # resume at notebook 05 on the same machine
#   bash scripts/gpu/run_book.sh --setup-only        # only install and check (no run)
#   bash scripts/gpu/run_book.sh --profile ci        # another profile (a smoke test)
#
# 1. installs .whl/*.whl into $SITE (/tmp/site), and a .whl/fallback wheel for each package
#    whose version on the machine is too old for a requirement (scripts/gpu/deps.py);
# 2. PYTHONPATH=$SITE:<repo>/src (absolute: the kernels start in notebooks/);
# 3. registers the kernel `python3` (the one dmtnn.pipeline asks papermill for) under
#    $KERN/share/jupyter and puts that first on JUPYTER_PATH, so no other python3 kernel
#    on the machine can be picked; checks that jupyter_client resolves it to this python3;
# 4. starts `python3 -m dmtnn.data` and then `python3 -m dmtnn.pipeline` for the profile in
#    the background, in a session of their own (setsid), so they outlive this call; the log
#    is $RUN/run.log, the exit code goes to $RUN/rc. poll.sh waits and reports; collect.sh
#    copies the results to $OUT.
# Idempotent: while a run is alive it only reports it; --restart ends it (and a finished run's
# record) and starts anew. Exits non-zero on any failed step.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD

PROFILE=book FROM="" RESTART=0 SETUP_ONLY=0
while (($#)); do
  case $1 in
    --profile) PROFILE=${2:?--profile needs a name}; shift 2 ;;
    --from) FROM=${2:?--from needs a notebook number}; shift 2 ;;
    --restart) RESTART=1; shift ;;
    --setup-only) SETUP_ONLY=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run_book.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY=${PYTHON:-python3}
WHL=${DMTNN_WHL:-$ROOT/.whl}
SITE=${DMTNN_SITE:-/tmp/site}
KERN=${DMTNN_KERNEL_PREFIX:-/tmp/kern}
RUN=${DMTNN_RUN_DIR:-/tmp/dmtnn-run}
die() { echo "run_book.sh: $*" >&2; exit 1; }
say() { echo "== $*"; }

# --- a run already there? ---------------------------------------------------------------
mkdir -p "$RUN"
if [[ -f $RUN/pid ]] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; then
  if ((RESTART)); then
    pgid=$(cat "$RUN/pid")
    say "ending the run in flight (process group $pgid)"
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pgid" 2>/dev/null || break; sleep 1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  else
    say "a run is in flight (profile $(cat "$RUN/profile" 2>/dev/null), since $(cat "$RUN/started" 2>/dev/null)); nothing started"
    echo "   poll: bash scripts/gpu/poll.sh 540   restart: bash scripts/gpu/run_book.sh --restart"
    exit 0
  fi
elif [[ -f $RUN/rc ]] && ((!RESTART)) && ((!SETUP_ONLY)); then
  die "a finished run is recorded in $RUN (rc $(cat "$RUN/rc")): collect it (collect.sh), then start again with --restart"
fi

# --- 1. wheels --------------------------------------------------------------------------
shopt -s nullglob
wheels=("$WHL"/*.whl)
((${#wheels[@]})) || die "no wheels in $WHL: run scripts/gpu/wheels.sh here first and carry .whl"
stamp=$(stat -c '%n %s' "${wheels[@]}" "$WHL"/fallback/*.whl | md5sum | cut -d' ' -f1)
if [[ $(cat "$SITE/.dmtnn-wheels" 2>/dev/null) != "$stamp" ]]; then
  say "installing ${#wheels[@]} wheels into $SITE"
  rm -rf "${SITE:?}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${wheels[@]}" || die "pip install of $WHL/*.whl failed"
else
  say "wheels already installed in $SITE"
fi
export PYTHONPATH="$SITE:$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"

# the machine's own packages meet the wheels' requirements? else a fallback wheel
if ! "$PY" scripts/gpu/deps.py installed "$SITE" --missing "$RUN/missing.txt"; then
  fb=()
  while read -r name; do
    [[ -n $name ]] || continue
    f=("$WHL"/fallback/"${name//-/_}"-*.whl "$WHL"/fallback/"$name"-*.whl)
    ((${#f[@]})) || die "$name: too old or missing on this machine, and no fallback wheel"
    fb+=("${f[0]}")
  done <"$RUN/missing.txt"
  ((${#fb[@]})) || die "requirements not met (above), and none a fallback wheel could fix"
  say "installing fallback wheels: ${fb[*]##*/}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "${fb[@]}" || die "pip install of the fallback wheels failed"
  "$PY" scripts/gpu/deps.py installed "$SITE" || die "requirements still not met (above)"
fi
echo "$stamp" >"$SITE/.dmtnn-wheels"

"$PY" - "$ROOT" <<'EOF' || die "imports failed"
import sys
from pathlib import Path
import IPython, ipykernel, jupyter_client, nbclient, nbformat, papermill, tornado, zmq
import dmtnn
root = Path(sys.argv[1])
assert Path(dmtnn.__file__).resolve().is_relative_to(root / "src"), dmtnn.__file__
print(f"python {sys.version.split()[0]} ({sys.executable}); papermill {papermill.__version__}, "
      f"nbformat {nbformat.__version__}, nbclient {nbclient.__version__}, "
      f"ipykernel {ipykernel.__version__}, IPython {IPython.__version__}, "
      f"jupyter_client {jupyter_client.__version__}, pyzmq {zmq.__version__}, "
      f"tornado {tornado.version}; dmtnn from {Path(dmtnn.__file__).parent}")
EOF

# --- 3. the python3 kernel --------------------------------------------------------------
export JUPYTER_PATH="$KERN/share/jupyter${JUPYTER_PATH:+:$JUPYTER_PATH}"
export JUPYTER_PLATFORM_DIRS=1  # jupyter_core's own default from 6 on; silences its warning
"$PY" -m ipykernel install --prefix "$KERN" --name python3 --display-name "Python 3 (dmtnn)" \
  >/dev/null || die "ipykernel install failed"
"$PY" - "$KERN" <<'EOF' || die "the python3 kernel does not resolve to this Python"
import sys
from pathlib import Path
from jupyter_client.kernelspec import KernelSpecManager
spec = KernelSpecManager().get_kernel_spec("python3")
where = Path(spec.resource_dir).resolve()
assert where.is_relative_to(Path(sys.argv[1]).resolve()), f"python3 kernel found in {where}"
assert Path(spec.argv[0]).resolve() == Path(sys.executable).resolve(), spec.argv
print(f"kernel python3: {where}: {' '.join(spec.argv)}")
EOF

# --- the device -------------------------------------------------------------------------
"$PY" - "$PROFILE" <<'EOF' || die "no CUDA device for profile $PROFILE"
import sys
import torch
if torch.cuda.is_available():
    print(f"torch {torch.__version__}: {torch.cuda.get_device_name(0)}")
elif sys.argv[1] in ("book", "paper"):
    sys.exit(f"torch {torch.__version__} sees no CUDA device")
else:
    print(f"torch {torch.__version__}: no CUDA device; profile {sys.argv[1]} runs on the CPU")
EOF
commit=$(git -C "$ROOT" describe --always --dirty --abbrev=10 2>/dev/null || echo "${DMTNN_COMMIT:-unknown (no git here; set DMTNN_COMMIT)}")
say "commit in the run stamps: $commit"

if ((SETUP_ONLY)); then say "set up; nothing started (--setup-only)"; exit 0; fi

# --- 4. start -----------------------------------------------------------------------------
# ipykernel makes figures inline only where MPLBACKEND is unset: the notebooks need that
if [[ -n ${MPLBACKEND:-} ]]; then say "unsetting MPLBACKEND=$MPLBACKEND (figures go inline)"; fi
unset MPLBACKEND
rm -f "$RUN/rc" "$RUN/pid"
echo "$PROFILE" >"$RUN/profile"
date -u +%FT%TZ >"$RUN/started"
date +%s >"$RUN/started_s"
cat >"$RUN/job.sh" <<EOF
#!/usr/bin/env bash
# written by scripts/gpu/run_book.sh; runs in its own session (setsid)
echo \$\$ >"$RUN/pid"
cd "$ROOT"
export PYTHONPATH="$PYTHONPATH" JUPYTER_PATH="$JUPYTER_PATH" JUPYTER_PLATFORM_DIRS=1
export PYTHONUNBUFFERED=1 DMTNN_PROGRESS=0
echo "start \$(date -u +%FT%TZ): profile $PROFILE${FROM:+, from notebook $FROM}; commit $commit"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
t0=\$(date +%s); rc=0
echo "--- python3 -m dmtnn.data --profile $PROFILE"
"$PY" -m dmtnn.data --profile "$PROFILE" || rc=\$?
echo "--- data: rc \$rc after \$(( \$(date +%s) - t0 )) s"
if [ "\$rc" = 0 ]; then
  echo "--- python3 -m dmtnn.pipeline --profile $PROFILE${FROM:+ --from $FROM}"
  "$PY" -m dmtnn.pipeline --profile "$PROFILE"${FROM:+ --from "$FROM"} || rc=\$?
fi
echo "end \$(date -u +%FT%TZ): rc \$rc after \$(( \$(date +%s) - t0 )) s"
echo "\$rc" >"$RUN/rc"
EOF
# setsid: a session of its own, which the device tool leaves running after this call
setsid bash "$RUN/job.sh" >"$RUN/run.log" 2>&1 </dev/null &
for _ in $(seq 50); do [[ -s $RUN/pid ]] && break; sleep 0.1; done
[[ -s $RUN/pid ]] || die "the job did not start (see $RUN/run.log)"
say "started: pid $(cat "$RUN/pid"), log $RUN/run.log; poll with: bash scripts/gpu/poll.sh 540"
