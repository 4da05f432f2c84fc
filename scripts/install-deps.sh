#!/usr/bin/env bash
# Installs every Debian and npm package medimg needs to build, run, test and
# benchmark. Safe to run again. Usage: scripts/install-deps.sh [--no-npm]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

packages=(
  # build
  build-essential cmake pkg-config ninja-build ccache
  zlib1g-dev libisal-dev isal nlohmann-json3-dev libinih-dev catch2 libfcgi-dev libssl-dev
  # serve
  lighttpd lighttpd-modules-lua spawn-fcgi multiwatch
  apache2 libapache2-mod-fcgid libapache2-mod-xsendfile
  # test: independent readers, sanitizers, fuzzing, HTTP tools
  python3-nibabel python3-numpy python3-pytest nifti-bin curl wrk hyperfine
  clang libclang-rt-14-dev
  # metrics tests: a real Prometheus scraping /metrics, and promtool
  prometheus
  # browser tests
  chromium
  # packaging
  dpkg-dev fakeroot
)

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Node.js and npm: the machine's own when present, else Debian's.
if ! command -v npm >/dev/null 2>&1; then
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends nodejs npm
fi

# Debian enables the lighttpd/apache2/prometheus system services on install;
# medimg's tests run their own instances on free loopback ports, so the
# packaged ones are left alone.

if [ "${1:-}" != "--no-npm" ] && [ -f "$here/www/package.json" ]; then
  (cd "$here/www" && npm ci --no-audit --no-fund --loglevel=error)
fi
