#!/usr/bin/env bash
# One command for every measurement of docs/PERFORMANCE.md; see bench/README.md.
#
#   bench/run.sh [--size 512x512x400] [--runs 3] [--scratch DIR] [--skip-build]
#                [--no-cli] [--no-nibabel] [--no-server] [--port 18888] [--viewer]
#
# Builds Release into build-bench, generates the demo tree with `medimg demo`
# into the scratch directory (reused when present), makes a uint8 copy of the
# label map, then times `medimg filter` (1/3/10 labels, int16 and uint8), the
# codec floor, the shell gzip round trips, the nibabel+numpy reference and the
# server, and prints Markdown tables with a verdict per target. Raw results
# are kept as JSON lines in DIR/results-*.jsonl (re-render with
# bench/report.py FILE). --viewer also runs the browser benchmark
# (viewer_bench.mjs: headless Chromium, several minutes at 512x512x400).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$here/.." && pwd)"
build="${MEDIMG_BENCH_BUILD:-$src/build-bench}"
size=512x512x400
runs=3
scratch="${TMPDIR:-/tmp}/medimg-bench"
do_build=1 do_cli=1 do_nibabel=1 do_server=1 do_viewer=0
port=18888
py=/usr/bin/python3

while [[ $# -gt 0 ]]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --scratch) scratch="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --skip-build) do_build=0; shift ;;
    --no-cli) do_cli=0; shift ;;
    --no-nibabel) do_nibabel=0; shift ;;
    --no-server) do_server=0; shift ;;
    --viewer) do_viewer=1; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

log() { printf '== %s\n' "$*" >&2; }

if [[ $do_build == 1 ]]; then
  log "building Release into $build"
  cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DMEDIMG_BUILD_BENCH=ON >/dev/null
  cmake --build "$build" -j2 --target medimg_cli medimg-fcgi medimg_codec_floor >/dev/null
fi
medimg="$build/cli/medimg"
floor="$build/bench/medimg_codec_floor"
for b in "$medimg" "$floor"; do
  [[ -x $b ]] || { echo "run.sh: $b is missing (build first)" >&2; exit 1; }
done

# ---------------------------------------------------------------- data
data="$scratch/data-$size"
if [[ ! -f $data/.complete ]]; then
  log "generating demo data ($size) in $data"
  rm -rf "$data"
  mkdir -p "$data"
  "$medimg" demo "$data" --size "$size" >&2
  touch "$data/.complete"
fi
int16="$(find "$data" -path '*/voxels/*/original/all.nii.gz' | sort | head -n1)"
[[ -n $int16 ]] || { echo "run.sh: no voxels/*/original/all.nii.gz under $data" >&2; exit 1; }
uint8="$scratch/uint8-$size/all_uint8.nii.gz"
if [[ ! -f $uint8 ]]; then
  log "writing the uint8 copy $uint8"
  mkdir -p "$(dirname "$uint8")"
  "$py" "$here/make_uint8.py" "$int16" "$uint8.tmp.nii.gz"
  mv "$uint8.tmp.nii.gz" "$uint8"
fi

# The ids present, ascending, from `medimg labels --json` (nibabel if that fails).
ids="$("$medimg" labels "$int16" --json 2>/dev/null |
        "$py" -c 'import json,sys; print(" ".join(str(l["id"]) for l in json.load(sys.stdin)["labels"]))' 2>/dev/null ||
       "$py" -c 'import sys,nibabel as nib,numpy as np
u=np.unique(np.asanyarray(nib.load(sys.argv[1]).dataobj)); print(" ".join(str(int(v)) for v in u if v != 0))' "$int16")"
read -r -a all_ids <<<"$ids"
(( ${#all_ids[@]} >= 10 )) || { echo "run.sh: only ${#all_ids[@]} labels in $int16" >&2; exit 1; }
# k ids spread evenly over the ids present (so 3 labels are not 3 neighbours).
pick() {
  local k=$1 n=${#all_ids[@]} out=() i
  for ((i = 0; i < k; i++)); do out+=("${all_ids[$(( i * n / k ))]}"); done
  local IFS=,; echo "${out[*]}"
}

stamp="$(date +%Y%m%d-%H%M%S)"
results="$scratch/results-$size-$stamp.jsonl"
out="$scratch/out"
mkdir -p "$out"
: >"$results"
measure() { "$py" "$here/measure.py" --out "$results" --runs "$runs" "$@" >&2; }

{
  echo "{\"kind\":\"machine\",\"nproc\":$(nproc),\"cpu\":\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//;s/"/\\"/g')\","
  echo "\"loadavg_start\":\"$(cut -d' ' -f1-3 /proc/loadavg)\",\"size\":\"$size\",\"runs\":$runs,"
  echo "\"int16\":\"$int16\",\"int16_bytes\":$(stat -c %s "$int16"),\"uint8\":\"$uint8\",\"uint8_bytes\":$(stat -c %s "$uint8"),"
  echo "\"date\":\"$(date -u +%FT%TZ)\",\"commit\":\"$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)\"}"
} | tr -d '\n' >>"$results"
echo >>"$results"
log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------------- CLI and floors
if [[ $do_cli == 1 ]]; then
  for dtype in int16 uint8; do
    in="${!dtype}"
    cat "$in" >/dev/null   # page cache warm for everyone
    for variant in lib lib-stream isal zlib; do
      measure --name "floor $dtype $variant" --meta kind=floor --meta dtype=$dtype --meta variant=$variant \
        -- "$floor" "$in" --variant "$variant" --level 1
    done
    measure --name "igzip $dtype" --meta kind=shell --meta dtype=$dtype --meta variant=igzip \
      -- bash -c "igzip -d -c '$in' | igzip -1 -c > /dev/null"
    measure --name "zcat $dtype" --meta kind=shell --meta dtype=$dtype --meta variant=zcat \
      -- bash -c "zcat '$in' | gzip -1 > /dev/null"
    for k in 1 3 10; do
      labels="$(pick $k)"
      o="$out/filtered_${dtype}_k$k.nii.gz"
      measure --name "medimg filter $dtype k=$k" --meta kind=cli --meta dtype=$dtype --meta k=$k \
        --meta labels="$labels" --size-of "$o" \
        -- "$medimg" filter "$in" "$o" --labels "$labels"
    done
  done
fi

# ---------------------------------------------------------------- nibabel + numpy
if [[ $do_nibabel == 1 ]]; then
  labels="$(pick 3)"
  for dtype in int16 uint8; do
    in="${!dtype}"
    for variant in old int; do
      o="$out/nibabel_${variant}_${dtype}_k3.nii.gz"
      measure --name "nibabel $variant $dtype k=3" --meta kind=nibabel --meta dtype=$dtype --meta k=3 \
        --meta variant=$variant --meta labels="$labels" --size-of "$o" \
        -- "$py" "$here/reference_nibabel.py" "$in" "$o" --labels "$labels" --variant "$variant"
    done
  done
fi

# ---------------------------------------------------------------- server
if [[ $do_server == 1 ]]; then
  "$py" "$here/server_bench.py" --build "$build" --data-root "$data" --input "$int16" \
    --labels "$(pick 3)" --port "$port" --runs "$runs" --out "$results" --scratch "$scratch" >&2
fi

# ---------------------------------------------------------------- viewer
if [[ $do_viewer == 1 ]]; then
  log "browser benchmark of the viewer"
  node "$here/viewer_bench.mjs" --size "$size" --scratch "$scratch" --build "$build" \
    --out "$scratch/viewer-$size-$stamp.jsonl"
fi

echo "{\"kind\":\"end\",\"loadavg_end\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}" >>"$results"
log "results: $results"
"$py" "$here/report.py" "$results"
