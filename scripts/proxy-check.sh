#!/usr/bin/env bash
# scripts/proxy-check.sh nginx|caddy [TIDEPOOL_BINARY]
#
# Runs tidepool behind a real reverse proxy with the configuration of docs/DEPLOY.md and
# checks, with curl, what the proxy must not break: sign-up and log-in forms through the
# proxy (cookie jar, CSRF token, Origin), refusal of foreign Origins and of the wrong
# scheme, rate limits per client rather than per proxy (clients bound to 127.0.0.2 and
# 127.0.0.3, spoofed X-Forwarded-For and Forwarded included), and nosniff.
#
# Needs the proxy installed (Debian: apt-get install nginx | caddy), curl and openssl.
# Everything runs on loopback high ports from a temporary directory, and is stopped at
# the end. Not part of CI: nothing there installs a proxy.
set -euo pipefail
PROXY=${1:?usage: scripts/proxy-check.sh nginx|caddy [TIDEPOOL_BINARY]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-$ROOT/target/debug/tidepool}
[ -x "$BIN" ] || cargo build --manifest-path "$ROOT/Cargo.toml" -q -p tidepool
WORK=$(mktemp -d)
PUBLIC_PORT=18443
UPSTREAM_PORT=18090
BASE=https://localhost:$PUBLIC_PORT
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cat > "$WORK/tidepool.toml" <<EOF
data_dir = "$WORK/data"
listen = "127.0.0.1:$UPSTREAM_PORT"
public_url = "$BASE"
trusted_proxies = ["127.0.0.1"]

[limits]
# One registration per address, so the check sees whose address is counted.
registrations_per_ip = { max = 1, window_secs = 3600 }
EOF
"$BIN" serve --config "$WORK/tidepool.toml" > "$WORK/tidepool.log" 2>&1 &
PIDS+=($!)

case $PROXY in
nginx)
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
        -days 1 -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
    mkdir -p "$WORK/nginx"
    cat > "$WORK/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;

    # From docs/DEPLOY.md, with test ports and a self-signed certificate.
    upstream tidepool {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$PUBLIC_PORT ssl;
        server_name localhost;
        ssl_certificate     $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        client_max_body_size 1m;
        location / {
            proxy_pass http://tidepool;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
        }
    }
}
EOF
    nginx -v
    nginx -c "$WORK/nginx.conf" -p "$WORK/nginx/" &
    PIDS+=($!)
    ;;
caddy)
    mkdir -p "$WORK/caddy"
    cat > "$WORK/Caddyfile" <<EOF
{
	admin off
	skip_install_trust
	storage file_system $WORK/caddy/storage
}

# From docs/DEPLOY.md, with test ports and Caddy's internal CA.
localhost:$PUBLIC_PORT {
	tls internal
	reverse_proxy 127.0.0.1:$UPSTREAM_PORT {
		transport http {
			keepalive 60s
		}
	}
}
EOF
    caddy version
    HOME=$WORK/caddy XDG_DATA_HOME=$WORK/caddy XDG_CONFIG_HOME=$WORK/caddy \
        caddy run --config "$WORK/Caddyfile" --adapter caddyfile > "$WORK/caddy.log" 2>&1 &
    PIDS+=($!)
    ;;
*)
    echo "unknown proxy $PROXY (nginx or caddy)" >&2
    exit 2
    ;;
esac

for _ in $(seq 1 100); do
    curl -skf "$BASE/api/v1/health" > /dev/null 2>&1 && break
    sleep 0.1
done

pass=0
fail=0
expect() {
    if [ "$2" = "$3" ]; then
        echo "PASS $1 ($2)"
        pass=$((pass + 1))
    else
        echo "FAIL $1: expected $3, got $2"
        fail=$((fail + 1))
    fi
}
csrf() { # jar interface path
    curl -sk --interface "$2" -c "$1" -b "$1" -H 'accept: text/html' "$BASE$3" |
        grep -o 'name="csrf" value="[0-9a-f]*"' | head -1 | sed 's/.*value="//;s/"//'
}
credentials() { # jar interface path email origin
    local token
    token=$(csrf "$1" "$2" "$3")
    curl -sk --interface "$2" -c "$1" -b "$1" -o /dev/null -w '%{http_code}' \
        -H 'accept: text/html' -H "origin: $5" \
        --data-urlencode "csrf=$token" --data-urlencode "email=$4" \
        --data-urlencode "password=password-long-enough" "$BASE$3"
}
register() { # interface name [curl args]
    local from=$1 name=$2
    shift 2
    curl -sk --interface "$from" -o /dev/null -w '%{http_code}' \
        -H 'content-type: application/json' "$@" \
        -d "{\"name\":\"$name\",\"description\":\"via a proxy\"}" "$BASE/api/v1/agents/register"
}

J=$WORK/jars
mkdir -p "$J"
expect "sign-up, Origin = public URL" "$(credentials "$J/a" 127.0.0.2 /signup a@example.com "$BASE")" 303
expect "Origin of another site refused" "$(credentials "$J/b" 127.0.0.2 /signup b@example.com https://evil.example)" 403
expect "Origin with the wrong scheme refused" "$(credentials "$J/c" 127.0.0.2 /signup c@example.com "${BASE/https:/http:}")" 403
expect "Origin null refused" "$(credentials "$J/d" 127.0.0.2 /signup d@example.com null)" 403
expect "log in" "$(credentials "$J/a" 127.0.0.2 /login a@example.com "$BASE")" 303
expect "dashboard with the session cookie" \
    "$(curl -sk --interface 127.0.0.2 -b "$J/a" -o /dev/null -w '%{http_code}' -H 'accept: text/html' "$BASE/dashboard")" 200
expect "session cookie marked Secure" "$(awk '$6 == "tp_session" { print $4 }' "$J/a")" TRUE
expect "client 127.0.0.2 registers" "$(register 127.0.0.2 ViaProxyOne)" 201
expect "client 127.0.0.2 again: limited" "$(register 127.0.0.2 ViaProxyTwo)" 429
expect "client 127.0.0.2 spoofing X-Forwarded-For: still limited" \
    "$(register 127.0.0.2 ViaProxyThree -H 'x-forwarded-for: 198.51.100.7')" 429
expect "client 127.0.0.2 spoofing Forwarded: still limited" \
    "$(register 127.0.0.2 ViaProxyFour -H 'forwarded: for=198.51.100.8')" 429
expect "client 127.0.0.3 has a limit of its own" "$(register 127.0.0.3 ViaProxyFive)" 201
expect "nosniff through the proxy" \
    "$(curl -sk -D - -o /dev/null "$BASE/api/v1/health" | tr -d '\r' | grep -ci '^x-content-type-options: nosniff')" 1
echo "$PROXY: passed $pass, failed $fail"
[ "$fail" -eq 0 ]
