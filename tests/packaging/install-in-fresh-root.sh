#!/usr/bin/env bash
# The package's way from a source tree to a served /health on a throwaway
# Debian 12 machine (a new container or root: it installs packages and
# starts services), with the steps of docs/DEPLOYMENT.md and no systemd:
#   1. --build packages only, a build of only what ships (BUILD_TESTING=OFF),
#      cpack -G DEB;
#   2. apt-get install ./medimg_*.deb with Apache and mod_xsendfile;
#   3. a2enmod/a2enconf, medimg-fcgi-pool start, service apache2 start;
#   4. /health, a listing and a filtered file through Apache; pool stop;
#   5. lighttpd as §2 and the Containerfile set it up (lighty-enable-mod,
#      lighttpd spawning the workers), kept on loopback with §2's command,
#      started with `service`; /health; stop, no worker left.
# Run as root from the source tree: tests/packaging/install-in-fresh-root.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root on a throwaway machine" >&2; exit 2; }
step() { printf '\n== %s (%s s)\n' "$*" "$SECONDS"; }

step "build dependencies only"
scripts/install-deps.sh --build
for p in catch2 clang chromium python3-pytest apache2 lighttpd; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    echo "unexpected: --build installed $p" >&2; exit 1
  fi
done

step "build of only what ships, package"
rm -rf build-pkg
cmake -S . -B build-pkg -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF
cmake --build build-pkg -j "$(nproc)"
[ ! -e build-pkg/tests ] || { echo "BUILD_TESTING=OFF still configured tests/" >&2; exit 1; }
(cd build-pkg && cpack -G DEB)
deb=$(ls build-pkg/medimg_*.deb)

step "apt-get install $deb"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "./$deb" apache2 libapache2-mod-xsendfile \
  spawn-fcgi multiwatch curl

step "data, Apache, pool (no systemd)"
[ ! -d /run/systemd/system ] || echo "note: systemd is running here"
# The package started nothing; Debian's apache2 may have started on :80. Other
# roots on this network may hold :80 too: Apache is moved to a free port.
service apache2 stop >/dev/null 2>&1 || true
port=$((20000 + RANDOM % 20000))
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
echo "Listen 127.0.0.1:$port" > /etc/apache2/ports.conf
sed -i "s/\*:80>/*:$port>/" /etc/apache2/sites-available/000-default.conf
url=http://127.0.0.1:$port
medimg demo /srv/medimg/output --size 32x32x20 --quiet
a2enmod -q proxy_fcgi headers setenvif env alias autoindex mime xsendfile
a2enconf -q medimg
medimg-fcgi-pool start
medimg-fcgi-pool status
pool_pid=$(cat /run/medimg/pool.pid)
[ -S /run/medimg/fcgi.sock ]
# The workers write their start-up line into the log once they run.
for i in $(seq 50); do [ -s /var/log/medimg/fcgi-pool.log ] && break; sleep 0.1; done
[ -s /var/log/medimg/fcgi-pool.log ] || { echo "the pool's log stays empty" >&2; exit 1; }
apache2ctl -t
service apache2 start

step "requests"
curl -fsS $url/health; echo
patient=$(ls /srv/medimg/output | head -1)
seg=$(cd "/srv/medimg/output/$patient/scans" && ls *.nii.gz | head -1)
curl -fsS -o /dev/null -w 'listing %{http_code}\n' "$url/output/$patient/"
curl -fsS -o /tmp/f.nii.gz -w 'filtered %{http_code} %{content_type}\n' \
  "$url/filtered-scans/$patient/$seg?label_ids=1"
[ "$(head -c2 /tmp/f.nii.gz | od -An -tx1 | tr -d ' ')" = 1f8b ]
hidden=$(curl -s -o /dev/null -w '%{http_code}' $url/output/.env)
[ "$hidden" = 403 ] || { echo "/output/.env: $hidden" >&2; exit 1; }

step "stop"
workers=$(awk -v p="$pool_pid" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null)
echo "pool $pool_pid, workers" $workers
[ -n "$workers" ]
service apache2 stop
medimg-fcgi-pool stop
sleep 1
for p in $pool_pid $workers; do
  if [ -e "/proc/$p" ] && ! grep -q ') Z' "/proc/$p/stat"; then echo "process $p left running" >&2; exit 1; fi
done
[ ! -e /run/medimg/pool.pid ] && [ ! -e /run/medimg/fcgi.sock ]
step "lighttpd: the Containerfile's steps, loopback, service"
apt-get install -y -q --no-install-recommends lighttpd lighttpd-modules-lua
service lighttpd stop >/dev/null 2>&1 || true
lighty-enable-mod medimg
chown -R www-data:www-data /var/cache/medimg
# An upgrade (a reinstall here) keeps the owner this setup gave the cache.
apt-get install -y -q --reinstall "./$deb"
[ "$(stat -c %U:%G /var/cache/medimg)" = www-data:www-data ] \
  || { echo "the package took /var/cache/medimg back" >&2; exit 1; }
# docs/DEPLOYMENT.md, "Keeping Debian's lighttpd on loopback", taken from the page:
loopback=$(sed -n '/^sed -i -e .s|^server.port/,/\/etc\/lighttpd\/lighttpd.conf$/p' docs/DEPLOYMENT.md)
[ -n "$loopback" ] || { echo "loopback command not found in DEPLOYMENT.md" >&2; exit 1; }
sh -c "$loopback"
grep -q '^server.bind *= "127.0.0.1"' /etc/lighttpd/lighttpd.conf
port=$((port + 1))
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
sed -i -e "s/^server.port .*/server.port = $port/" -e "s/\[::1\]:80/[::1]:$port/" /etc/lighttpd/lighttpd.conf
lighttpd -tt -f /etc/lighttpd/lighttpd.conf
service lighttpd start
url=http://127.0.0.1:$port
for i in $(seq 100); do curl -fs "$url/health" >/dev/null && break; sleep 0.2; done
curl -fsS "$url/health"; echo
curl -fsS -o /dev/null -w 'lighttpd filtered %{http_code}\n' "$url/filtered-scans/$patient/$seg?label_ids=1"
if (echo >"/dev/tcp/127.0.0.2/$port") 2>/dev/null; then echo "lighttpd answers on 127.0.0.2" >&2; exit 1; fi
lpid=$(cat /run/lighttpd.pid)
lworkers=$(awk -v p="$lpid" '$2 == "(medimg-fcgi)" && $4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null)
echo "lighttpd $lpid, workers" $lworkers
[ -n "$lworkers" ]
service lighttpd stop
sleep 2
for p in $lpid $lworkers; do
  if [ -e "/proc/$p" ] && ! grep -q ') Z' "/proc/$p/stat"; then echo "process $p left running" >&2; exit 1; fi
done

step "done"
