#!/bin/sh
# Installs Debian's pgbouncer when it is missing. Called by the PostgreSQL test harness
# (crates/store-pg/src/testing.rs, `TestDb::through_pgbouncer`), which then runs its own
# pgbouncer (own ini, own temp dir, a free port, transaction mode), so a fresh machine
# needs nothing installed by hand.
#
# The Debian package installs and starts a system-wide pgbouncer on 127.0.0.1:6432. The
# tests never use it, so this script keeps it from starting during the install, then
# stops and disables it: nothing is left listening or running.
set -eu
find_pgbouncer() {
    for p in /usr/sbin/pgbouncer /usr/bin/pgbouncer; do
        if [ -x "$p" ]; then
            return 0
        fi
    done
    command -v pgbouncer >/dev/null 2>&1
}
if find_pgbouncer; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: pgbouncer is not installed and this is not root." >&2
    echo "Install it (Debian: sudo apt-get install -y pgbouncer), or run the" >&2
    echo "pgbouncer tests on a machine that has it." >&2
    exit 1
fi

# Keep invoke-rc.d from starting the service during the install (exit 101 = "action
# forbidden"). Only when no policy is in place already; ours is removed again on exit.
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

echo "installing pgbouncer (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    pgbouncer >&2

# Belt and braces: should the service have started anyway (a policy allowing it, or a
# running systemd), stop it and keep it from starting at boot.
if command -v systemctl >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now pgbouncer >/dev/null 2>&1 || true
    else
        # No running systemd (a container): still drop the boot-time symlink.
        systemctl disable pgbouncer >/dev/null 2>&1 || true
    fi
fi
if [ -x /etc/init.d/pgbouncer ]; then
    /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
    if command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d pgbouncer disable >/dev/null 2>&1 || true
    fi
fi
# The system instance's pid file (Debian: /run/postgresql/pgbouncer.pid); only that
# process, never anything matched by name.
for pidfile in /run/postgresql/pgbouncer.pid /var/run/postgresql/pgbouncer.pid; do
    if [ -f "$pidfile" ]; then
        pid=$(cat "$pidfile" 2>/dev/null || true)
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    fi
done

if find_pgbouncer; then
    exit 0
fi
echo "error: pgbouncer installed but not found in /usr/sbin, /usr/bin or on PATH" >&2
exit 1
