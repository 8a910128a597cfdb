#!/usr/bin/env bash
# Installs the real components the test suite runs against, only when missing:
# redis-server (rate-limit store), nginx (reverse proxy of the reference topology),
# chromium (browser tests), softhsm2 (a software PKCS#11 token for the key backend),
# prometheus (scrapes the metrics test's workers; promtool checks the alert rules).
# Debian packages; needs root, as on CI.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx-light)
command -v openssl >/dev/null || missing+=(openssl)  # the topology test's throw-away TLS certificate
command -v chromium >/dev/null || missing+=(chromium)
[ -e /usr/lib/softhsm/libsofthsm2.so ] && command -v softhsm2-util >/dev/null || missing+=(softhsm2)  # the pkcs11 key backend's tests
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-system-packages: need root to install: ${missing[*]}" >&2
    exit 1
fi
echo "ensure-system-packages: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq
timeout 900 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts the packaged services; the tests start their own on free loopback ports.
for service in redis-server nginx prometheus; do
    if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
        systemctl stop "$service" || true
    fi
done
