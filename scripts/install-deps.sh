#!/usr/bin/env bash
# Installs the Debian (and npm) packages medimg needs. Safe to run again.
#   scripts/install-deps.sh [--runtime] [--build] [--test] [--no-npm]
# Profiles (any combination; none given means --test):
#   --runtime  run medimg: lighttpd, Apache, spawn-fcgi, multiwatch, the shared
#              libraries, curl. No compiler, no npm (the .deb carries the viewer).
#   --build    compile and package: compiler, cmake, the -dev packages, dpkg-dev,
#              file, fakeroot, and npm for NiiVue only (npm ci --omit=dev).
#   --test     everything the test suite needs (what scripts/test.sh uses):
#              build + runtime + nibabel, pytest, clang (sanitizers, fuzzing),
#              Chromium, curl, wrk, and the npm dev packages (playwright-core).
# --no-npm skips npm entirely (the sanitizer run needs no npm package).
# scripts/demo.sh uses --build --runtime; docs/DEPLOYMENT.md says which profile
# each machine of a deployment needs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

runtime=0 build=0 testing=0 npm=1
for arg in "$@"; do
  case "$arg" in
    --runtime) runtime=1 ;;
    --build) build=1 ;;
    --test) testing=1 ;;
    --no-npm) npm=0 ;;
    -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-deps.sh: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done
[ $((runtime + build + testing)) -gt 0 ] || testing=1
if [ $testing = 1 ]; then runtime=1 build=1; fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi

packages=()
if [ $runtime = 1 ]; then
  packages+=(
    lighttpd lighttpd-modules-lua spawn-fcgi multiwatch
    apache2 libapache2-mod-fcgid libapache2-mod-xsendfile
    libfcgi0ldbl libinih1 libisal2 zlib1g libssl3
    # the documented health checks (curl -s http://localhost/health)
    curl
  )
fi
if [ $build = 1 ]; then
  packages+=(
    build-essential cmake pkg-config ninja-build ccache
    zlib1g-dev libisal-dev nlohmann-json3-dev libinih-dev libfcgi-dev libssl-dev
    dpkg-dev file fakeroot
  )
fi
if [ $testing = 1 ]; then
  packages+=(
    # unit tests; independent readers, sanitizers, fuzzing, HTTP tools
    catch2 isal python3-nibabel python3-numpy python3-pytest nifti-bin wrk hyperfine time
    clang libclang-rt-14-dev
    # metrics tests: a real Prometheus scraping /metrics, and promtool
    prometheus
    # browser tests (Debian's Chromium, driven by playwright-core)
    chromium
  )
fi

export DEBIAN_FRONTEND=noninteractive
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Debian enables the lighttpd/apache2/prometheus system services on install;
# medimg's tests run their own instances on free loopback ports, so the
# packaged ones are left alone.

[ $npm = 1 ] && [ $build = 1 ] && [ -f "$here/www/package.json" ] || exit 0
# Node.js and npm: the machine's own when present, else Debian's (Node 18 on
# Debian 12: www/package.json pins packages that support it).
if ! command -v npm >/dev/null 2>&1; then
  "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends nodejs npm
fi
cd "$here/www"
if [ $testing = 1 ]; then
  npm ci --no-audit --no-fund --loglevel=error
elif ! [ -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # Build only: NiiVue, which the viewer and the package ship; an existing
  # complete install (with the test packages) is kept.
  npm ci --omit=dev --no-audit --no-fund --loglevel=error
fi
