#!/usr/bin/env bash
# Per-label intensity statistics on a demo CT + segmentation pair: time and
# peak RSS of `medimg labels SEG --image CT --json` against the nibabel+numpy
# reference (reference_intensity.py) doing the same statistics, and a check
# that both give the same numbers (compare_intensity.py). See bench/README.md.
#
#   bench/intensity.sh [--medimg BIN] [--size 512x512x400] [--runs 3] [--scratch DIR]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
medimg="$here/../build-bench/cli/medimg"
size=512x512x400
runs=3
scratch="${TMPDIR:-/tmp}/medimg-bench"
py=/usr/bin/python3

while [[ $# -gt 0 ]]; do
  case "$1" in
    --medimg) medimg="$2"; shift 2 ;;
    --size) size="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --scratch) scratch="$2"; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "intensity.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

data="$scratch/data-$size"
if [[ ! -e "$data/.complete" ]]; then
  rm -rf "$data"
  "$medimg" demo "$data" --size "$size" --quiet
  touch "$data/.complete"
fi
seg="$(ls "$data"/*/scans/*.nii.gz | head -1)"
ct="$(ls "$data"/*/nifti/*.nii.gz | head -1)"
results="$scratch/intensity-$size-$(date -u +%Y%m%dT%H%M%S).jsonl"

"$py" "$here/measure.py" --out "$results" --name "medimg labels --image" --runs "$runs" \
  --meta size="$size" -- "$medimg" labels "$seg" --image "$ct" --json
"$py" "$here/measure.py" --out "$results" --name "medimg labels" --runs "$runs" \
  --meta size="$size" -- "$medimg" labels "$seg" --json
"$py" "$here/measure.py" --out "$results" --name "nibabel+numpy reference" --runs "$runs" \
  --meta size="$size" -- "$py" "$here/reference_intensity.py" "$seg" "$ct"

"$medimg" labels "$seg" --image "$ct" --json > "$scratch/intensity-ours.json"
"$py" "$here/reference_intensity.py" "$seg" "$ct" > "$scratch/intensity-ref.json"
"$py" "$here/compare_intensity.py" "$scratch/intensity-ours.json" "$scratch/intensity-ref.json"
echo "results: $results" >&2
