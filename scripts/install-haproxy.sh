#!/bin/sh
# Installs Debian's haproxy when it is missing (used by scripts/bench-pg.sh and the
# docs/SCALE-OUT.md recipe, which run their own haproxy with their own configuration).
# The package's system service is kept from starting and disabled: nothing is left
# listening.
set -eu
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: haproxy is not installed and this is not root (Debian: sudo apt-get install -y haproxy)" >&2
    exit 1
fi
policy=/usr/sbin/policy-rc.d
own_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 755 "$policy"
    own_policy=1
fi
cleanup() {
    if [ "$own_policy" -eq 1 ]; then
        rm -f "$policy"
    fi
}
trap cleanup EXIT INT TERM
echo "installing haproxy (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold haproxy >&2
if command -v systemctl >/dev/null 2>&1; then
    systemctl disable haproxy >/dev/null 2>&1 || true
fi
if [ -x /etc/init.d/haproxy ]; then
    /etc/init.d/haproxy stop >/dev/null 2>&1 || true
fi
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]
