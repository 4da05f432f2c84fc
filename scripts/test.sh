#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole suite: unit tests,
# FastCGI route tests, integration tests on real lighttpd/Apache, browser tests.
#   scripts/test.sh              everything
#   scripts/test.sh --sanitize   unit + route tests under ASan+UBSan (build-asan/)
#   scripts/test.sh -L unit      any ctest arguments select a subset
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "${1:-}" = "--sanitize" ]; then
  shift
  # The unit and route tests need neither npm packages nor the CLI, worker,
  # bench or package: only the two test binaries are built.
  "$here/scripts/install-deps.sh" --test --no-npm
  export MEDIMG_BUILD_DIR="${MEDIMG_BUILD_DIR:-$here/build-asan}"
  MEDIMG_BUILD_TARGETS="unit_tests fcgi_tests" "$here/scripts/build.sh" -DMEDIMG_SANITIZE=ON
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  set -- -L unit "$@"
else
  "$here/scripts/install-deps.sh" --test
  # The test tree is on even where scripts/demo.sh configured build/ without it.
  "$here/scripts/build.sh" -DBUILD_TESTING=ON
fi
build="${MEDIMG_BUILD_DIR:-$here/build}"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
