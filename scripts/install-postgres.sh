#!/bin/sh
# Installs Debian's PostgreSQL server binaries (initdb, pg_ctl, postgres) when they are
# missing. Called by the PostgreSQL test harness (crates/store-pg/src/testing.rs), which
# then runs its own throwaway cluster in a temp dir, so a fresh machine needs nothing
# installed by hand. Set TIDEPOOL_TEST_DATABASE_URL to use an existing server instead.
set -eu
for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        exit 0
    fi
done
if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: PostgreSQL (initdb, pg_ctl) is not installed and this is not root." >&2
    echo "Install it (Debian: sudo apt-get install -y postgresql), or point" >&2
    echo "TIDEPOOL_TEST_DATABASE_URL at a server where the role may CREATE DATABASE," >&2
    echo "e.g. postgres://postgres@127.0.0.1:5432/postgres" >&2
    exit 1
fi
# The tests run their own cluster: keep the package from creating and starting a
# system-wide "main" cluster on port 5432 (only when nobody configured this already).
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
echo "installing postgresql (Debian package) ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    postgresql >&2
for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
        exit 0
    fi
done
echo "error: postgresql installed but initdb/pg_ctl not found under /usr/lib/postgresql/*/bin" >&2
exit 1
