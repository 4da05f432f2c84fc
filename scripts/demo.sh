#!/usr/bin/env bash
# Installs dependencies, builds, and serves the demo on http://localhost:8888:
# lighttpd + a medimg-fcgi worker pool + a generated demo patient.
# Extra arguments go to `medimg serve` (e.g. --port 9000, --data-root DIR).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$here/scripts/install-deps.sh"
"$here/scripts/build.sh"
build="${MEDIMG_BUILD_DIR:-$here/build}"
exec "$build/cli/medimg" serve "$@"
