#!/usr/bin/env bash
# Builds the committed bundle: dist/index.js (main), dist/pre/index.js (pre), and the native xattr
# binding for both runner architectures in dist/native/ (the bundle cannot resolve it from npm).
set -euo pipefail
cd "$(dirname "$0")/.."
XATTR_VERSION=$(node -p "require('./node_modules/@napi-rs/xattr/package.json').version")

rm -rf dist
npx ncc build src/index.ts -o dist --license licenses.txt --target es2022 --quiet
npx ncc build src/pre.ts -o dist/pre --target es2022 --quiet
# ncc copies the x64 binding it found through the package's own loader; ours loads from dist/native.
rm -f dist/*.node dist/pre/*.node

mkdir -p dist/native
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in x64 arm64; do
  (cd "$tmp" && npm pack --silent "@napi-rs/xattr-linux-$arch-gnu@$XATTR_VERSION" >/dev/null)
  tar -xzf "$tmp"/napi-rs-xattr-linux-$arch-gnu-*.tgz -C "$tmp" package/xattr.linux-$arch-gnu.node
  install -m 0644 "$tmp/package/xattr.linux-$arch-gnu.node" dist/native/
done
