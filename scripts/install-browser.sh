#!/bin/sh
# Installs Debian's headless-capable Chromium and its WebDriver when they are missing.
# Called by the browser tests (crates/server/tests/browser.rs) and by
# scripts/screenshots.sh, so a fresh machine needs nothing installed by hand.
set -eu
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "installing chromium and chromium-driver (Debian packages) ..." >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium chromium-driver fonts-dejavu-core >&2
command -v chromium >/dev/null && command -v chromedriver >/dev/null
