#!/usr/bin/env bash
# Batch benchmark of `medimg filter` (docs/PERFORMANCE.md,
# "Batch"): 20 clinical-size label maps (medimg demo, 256x256x128 int16 by
# default) filtered with --outdir --keep-tree --files-from -, at -j 1 and
# -j 2, against a shell loop of bench/reference_nibabel.py (the old server's
# float64 path, one python process per file as a script would run it).
# Every medimg output is read back with nibabel and compared voxel by voxel.
# Usage: bench/batch.sh [RESULTS.jsonl]   (MEDIMG_BUILD_DIR: the build to use,
# BATCH_FILES, BATCH_SIZE, BATCH_REPEAT override 20, 256x256x128, 3)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${MEDIMG_BUILD_DIR:-$here/../build}"
medimg="$build/cli/medimg"
files="${BATCH_FILES:-20}"
size="${BATCH_SIZE:-256x256x128}"
repeat="${BATCH_REPEAT:-3}"
labels="1,6,28"
results="${1:-}"
py=/usr/bin/python3
work="$(mktemp -d "${TMPDIR:-/tmp}/medimg-batch-XXXXXX")"
trap 'rm -rf "$work"' EXIT

for i in $(seq 1 "$files"); do
  "$medimg" demo "$work/data" --patient "$(printf 'PA%08d' "$i")" --size "$size" --seed "$i" --quiet
done
find "$work/data" -path '*/scans/*.nii.gz' | sort > "$work/list"
[ "$(wc -l < "$work/list")" -eq "$files" ] || { echo "expected $files inputs" >&2; exit 1; }

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A best
for jobs in 1 2; do
  for r in $(seq 1 "$repeat"); do
    t0=$(now)
    "$medimg" filter --labels "$labels" --outdir "$work/out$jobs" --keep-tree --force --quiet \
      -j "$jobs" --files-from - < "$work/list"
    t1=$(now)
    echo "$t1 - $t0" | bc -l
  done > "$work/times$jobs"
  best[$jobs]=$(median < "$work/times$jobs")
done

t0=$(now)
while read -r f; do
  "$py" "$here/reference_nibabel.py" "$f" "$work/nib.nii.gz" --labels "$labels" --variant old >/dev/null
done < "$work/list"
t1=$(now)
nib_s=$(echo "$t1 - $t0" | bc -l)

# Voxel-exact against nibabel's own reading of each input.
"$py" - "$work" "$labels" <<'PY'
import pathlib, sys
import nibabel as nib, numpy as np
work, ids = pathlib.Path(sys.argv[1]), [int(x) for x in sys.argv[2].split(",")]
for line in (work / "list").read_text().split():
    src = pathlib.Path(line)
    want = np.asanyarray(nib.load(src).dataobj)
    want = np.where(np.isin(want, ids), want, 0)
    rel = src.relative_to("/") if src.is_absolute() else src
    for jobs in (1, 2):
        out = work / f"out{jobs}" / rel.parent / f"filtered_{src.name}"
        got = np.asanyarray(nib.load(out).dataobj)
        assert got.dtype == want.dtype and np.array_equal(got, want), out
print("outputs voxel-identical to nibabel's filter of the inputs", file=sys.stderr)
PY

j1=${best[1]}; j2=${best[2]}
line=$(printf '{"bench":"batch","commit":"%s","files":%d,"size":"%s","labels":"%s","j1_s":%.3f,"j2_s":%.3f,"speedup_j2":%.2f,"nibabel_loop_s":%.2f,"vs_nibabel_j2":%.1f,"cores":%d,"repeat":%d,"date":"%s"}' \
  "$(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)" "$files" "$size" "$labels" \
  "$j1" "$j2" "$(echo "$j1 / $j2" | bc -l)" "$nib_s" "$(echo "$nib_s / $j2" | bc -l)" "$(nproc)" "$repeat" \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)")
echo "$line"
[ -n "$results" ] && echo "$line" >> "$results"
exit 0
