#!/usr/bin/env bash
# Download, here (a machine with PyPI), the wheels that `python -m dmtnn.pipeline` needs on
# the GPU machine and that its image lacks (scripts/gpu/device-packages.txt, from
# KINDS.md): papermill, nbformat, nbclient, ipykernel, IPython and their closure.
#
#   bash scripts/gpu/wheels.sh          # -> .whl/*.whl and .whl/fallback/*.whl
#
# .whl/           what run_book.sh always installs (none of it is on the image)
# .whl/fallback/  newer copies of packages the image has (psutil, pygments, ...), installed
#                 by run_book.sh only where the image's version is too old for a requirement
#
# Idempotent: wheels already there are kept, other versions of these packages removed.
# Fails loudly: a download that fails, a requirement that neither a wheel nor the image
# meets, two versions of one package, or too much to carry all stop it with exit 1.
# Settings (environment): PYVER (3.12, the GPU machine's Python), DEST (.whl),
# PYTHON (python3: any Python with pip, used only to download).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYVER=${PYVER:-3.12}
DEST=${DEST:-$ROOT/.whl}
PY=${PYTHON:-python3}
LIMIT_MIB=${LIMIT_MIB:-56}  # wheels + working tree; the device tool carries 64 MiB at most

# Pinned: the versions of the project's .venv (Python 3.11 here), all with Python 3.12 wheels.
WHEELS=(
  papermill==2.7.0
  nbformat==5.11.1
  nbclient==0.11.0
  ipykernel==7.4.0
  jupyter-client==8.10.0
  jupyter-core==5.9.1
  traitlets==5.16.1
  ipython==9.18.1
  ipython-pygments-lexers==1.1.1
  comm==0.2.3
  debugpy==1.8.22
  nest-asyncio2==1.7.4
  pyzmq==27.3.0
  tornado==6.6.1
  matplotlib-inline==0.2.2
  fastjsonschema==2.22.3
  jsonschema==4.26.0
  jsonschema-specifications==2025.9.1
  referencing==0.37.0
  rpds-py==2026.9.1
  entrypoints==0.4.2
  tenacity==9.2.1
  platformdirs==4.14.8
  prompt-toolkit==3.0.53
  wcwidth==0.9.4
  jedi==0.20.1
  parso==0.8.7
  stack-data==0.6.3
  executing==2.3.0
  asttokens==3.0.2
  pure-eval==0.2.4
  pexpect==4.9.0
  ptyprocess==0.7.0
)
# On the image already; carried for the case its version is below a requirement above
# (ipython: psutil>=7, pygments>=2.14; jupyter-client: typing-extensions>=4.13,
# python-dateutil>=2.8.2; ipykernel: packaging>=22; jsonschema: attrs>=22.2).
# python-dateutil stays at 2.9 (.venv has 4.0): 4.0 needs tzdata, which the image lacks.
FALLBACK=(
  psutil==7.2.2
  pygments==2.21.0
  typing-extensions==4.16.0
  python-dateutil==2.9.0.post0
  packaging==26.4
  attrs==26.1.0
)

die() { echo "wheels.sh: $*" >&2; exit 1; }
command -v "$PY" >/dev/null || die "no $PY"
"$PY" -m pip --version >/dev/null || die "$PY has no pip"

PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 \
         manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done

canon() { tr 'A-Z_.' 'a-z--' <<<"$1"; }

# download SUBDIR SPEC...: fetch into DEST/SUBDIR, then drop other versions of those names
download() {
  local dir=$1; shift
  mkdir -p "$dir"
  local out
  if ! out=$("$PY" -m pip download -q --disable-pip-version-check --no-deps \
      --only-binary=:all: --python-version "$PYVER" --implementation cp "${PLATFORMS[@]}" \
      -d "$dir" "$@" 2>&1); then
    echo "$out" >&2
    die "pip download failed (above) for $dir"
  fi
  declare -A want=()
  local spec f base name version
  for spec in "$@"; do want[$(canon "${spec%%==*}")]=${spec##*==}; done
  declare -A seen=()
  for f in "$dir"/*.whl; do
    base=$(basename "$f")
    name=$(canon "${base%%-*}")
    version=${base#*-}; version=${version%%-*}
    if [[ -z ${want[$name]+x} ]]; then
      echo "wheels.sh: note: $base is not one of this script's wheels; kept (run_book.sh installs it too)" >&2
    elif [[ $version != "${want[$name]}" ]]; then
      echo "wheels.sh: removing $base (pinned: ${want[$name]})"
      rm -f -- "$f"
    else
      seen[$name]=1
    fi
  done
  for name in "${!want[@]}"; do
    [[ -n ${seen[$name]+x} ]] || die "no wheel of $name==${want[$name]} in $dir"
  done
}

echo "wheels for CPython $PYVER on x86-64 Linux into $DEST"
download "$DEST" "${WHEELS[@]}"
download "$DEST/fallback" "${FALLBACK[@]}"

echo
"$PY" "$HERE/deps.py" closure "$DEST" "$HERE/device-packages.txt" --python "$PYVER" \
  --fallback "$DEST/fallback" || die "the wheels' requirements are not closed (PROBLEM lines above)"

echo
printf '%-36s %-12s %8s\n' package version KiB
for f in "$DEST"/*.whl "$DEST"/fallback/*.whl; do
  base=$(basename "$f"); v=${base#*-}
  tag=""; [[ $f == */fallback/* ]] && tag=" (fallback)"
  printf '%-36s %-12s %8d\n' "${base%%-*}$tag" "${v%%-*}" $(( $(stat -c %s "$f") / 1024 ))
done
wheels=$(cat "$DEST"/*.whl "$DEST"/fallback/*.whl | wc -c)
tree=0
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
  tree=$(cd "$ROOT" && git ls-files -z -co --exclude-standard \
         | xargs -0 -r stat -c %s -- 2>/dev/null | awk '{s+=$1} END {print s+0}')
fi
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b/1048576}'; }
all=("$DEST"/*.whl "$DEST"/fallback/*.whl)
echo "total: ${#all[@]} wheels, $(mib "$wheels")" \
     "(working tree $(mib "$tree"), together $(mib $((wheels + tree))); the device tool carries 64 MiB)"
(( wheels + tree <= LIMIT_MIB * 1048576 )) || die "more than $LIMIT_MIB MiB to carry"
