#!/usr/bin/env bash
# Vendor the ALTCHA Argon2id Web Worker from npm into app/static/widget/vendor/, with its
# licence and a record (package, version, SHA-256) that tests/app/routes check the file
# against. Nothing is ever loaded from a third party at run time.
#   usage: scripts/vendor-altcha.sh [version]
set -euo pipefail
version="${1:-3.2.2}"
here="$(cd "$(dirname "$0")/.." && pwd)"
out="$here/app/static/widget/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

(cd "$work" && npm pack --silent "altcha@$version" >/dev/null)
tar -xzf "$work/altcha-$version.tgz" -C "$work"
mkdir -p "$out"
cp "$work/package/dist/workers/argon2id.js" "$out/altcha-argon2id.js"
cp "$work/package/LICENSE.txt" "$out/ALTCHA-LICENSE.txt"
sha="$(sha256sum "$out/altcha-argon2id.js" | cut -d' ' -f1)"
cat >"$out/VENDORED.json" <<JSON
{
  "package": "altcha",
  "registry": "https://registry.npmjs.org/",
  "version": "$version",
  "source": "dist/workers/argon2id.js",
  "file": "altcha-argon2id.js",
  "sha256": "$sha",
  "license": "MIT",
  "license_file": "ALTCHA-LICENSE.txt"
}
JSON
echo "vendored altcha@$version argon2id worker ($sha)"
