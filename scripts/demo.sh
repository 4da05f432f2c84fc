#!/usr/bin/env bash
# Installs dependencies, builds, and serves the demo on http://localhost:8888:
# lighttpd + a medimg-fcgi worker pool + a generated demo patient.
# Extra arguments go to `medimg serve` (e.g. --port 9000, --data-root DIR).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Build and run packages only: no test toolchain (scripts/install-deps.sh).
"$here/scripts/install-deps.sh" --build --runtime
build="${MEDIMG_BUILD_DIR:-$here/build}"
# Only the two programs; a new build tree is configured without the tests
# (Catch2 is a test package), an existing one is kept as it is.
configure=()
[ -f "$build/CMakeCache.txt" ] || configure=(-DBUILD_TESTING=OFF)
MEDIMG_BUILD_TARGETS="medimg_cli medimg-fcgi" "$here/scripts/build.sh" "${configure[@]}"
exec "$build/cli/medimg" serve "$@"
