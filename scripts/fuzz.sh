#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) into build-fuzz/ and
# runs each for SECONDS (default 30) on its seed corpus and its kept
# reproducers (tests/data/fuzz/TARGET/). Any crash, leak, timeout or
# sanitizer report fails the run; the input is left in build-fuzz/findings/
# and copied into tests/data/fuzz/TARGET/, where the regression test
# (fuzz_regression_test) fails until the input has its line in that folder's
# expected.txt (tests/data/fuzz/README.md).
#   scripts/fuzz.sh [SECONDS] [target...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-30}"; shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(header gzip filter label_set path router)
build="${MEDIMG_FUZZ_BUILD_DIR:-$here/build-fuzz}"
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$here" -B "$build" "${generator[@]}" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEDIMG_FUZZ=ON -DBUILD_TESTING=OFF
fi
cmake --build "$build" -j "$(nproc)" --target "${targets[@]/%/_fuzzer}"
rm -rf "$build/seeds"
/usr/bin/python3 "$here/tests/fuzz/make_seeds.py" "$build/seeds"
mkdir -p "$build/findings"
status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  echo "== $t: ${secs}s"
  kept="$here/tests/data/fuzz/$t"
  mkdir -p "$kept"
  if ! "$build/tests/fuzz/${t}_fuzzer" "$corpus" "$build/seeds/$t" "$kept" \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=20 -max_len=65536 \
        -artifact_prefix="$build/findings/${t}-" -print_final_stats=1 2>"$build/$t.log"; then
    status=1
    echo "!! $t found a problem; see $build/$t.log and $build/findings/"
    tail -40 "$build/$t.log"
    for f in "$build/findings/${t}-"*; do
      [ -f "$f" ] || continue
      name="${f##*/${t}-}"
      if [ ! -e "$kept/$name" ]; then
        cp "$f" "$kept/$name"
        echo "!! kept as tests/data/fuzz/$t/$name: fix the defect, then add its line to tests/data/fuzz/$t/expected.txt"
      fi
    done
  fi
  grep -E "^stat::(number_of_executed_units|peak_rss_mb)|cov: " "$build/$t.log" | tail -3 || true
done
exit $status
