#!/usr/bin/env bash
# Builds the committed bundle: dist/index.js (main), dist/pre/index.js (pre), and in dist/native/ for
# both runner architectures the native xattr binding (the bundle cannot resolve it from npm) and the
# directory scanner compiled from native/scan.c (gcc and Debian's gcc-aarch64-linux-gnu).
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

# The scanner: Node-API only (node-api-headers), so one build serves Node 20 and 24; syscalls through
# syscall(2), so it loads on any glibc from 2.17. -ffile-prefix-map and no debug info keep the bytes
# independent of where the repository is, so a rebuild gives the committed file.
napi_include=$(node -p "require('node-api-headers').include_dir")
declare -A cc=([x64]=gcc [arm64]=aarch64-linux-gnu-gcc)
for arch in x64 arm64; do
  command -v "${cc[$arch]}" >/dev/null || {
    echo "build: ${cc[$arch]} not found (Debian: apt-get install ${cc[$arch]/%gcc/gcc} ; scripts/test-deps.sh installs it)" >&2
    exit 1
  }
  "${cc[$arch]}" -std=gnu11 -O2 -fPIC -shared -fvisibility=hidden -Wall -Wextra -Werror -s \
    -ffile-prefix-map="$PWD"=. -DNODE_GYP_MODULE_NAME=scan -I"$napi_include" \
    -o "dist/native/scan.linux-$arch.node" native/scan.c
  chmod 0644 "dist/native/scan.linux-$arch.node"
done

# The bundle must find what it ships wherever dist/ is run from, with nothing installed: run both entry
# points from a copy of action.yml + dist/ outside the repository (no node_modules in reach, as in the
# runner's _actions/ checkout) on a tree with a user.* xattr, on more entries than the xattr worker
# thread's batch so that it is the worker that reads it. Any "no xattr support" or unresolved module,
# or the xattr missing from the baseline or the layer, fails the build.
check="$tmp/shipped"
mkdir -p "$check/root/etc" "$check/root/many"
cp -r action.yml dist "$check/"
dir="$check"
while :; do
  if [ -e "$dir/node_modules" ]; then
    echo "build: cannot check the bundle: $dir/node_modules is in reach of $check (set TMPDIR elsewhere)" >&2
    exit 1
  fi
  [ "$dir" = / ] && break
  dir=$(dirname "$dir")
done
(cd "$check/root/many" && touch f{1..2100})
echo data >"$check/root/etc/with-xattr"
# Set with the shipped binding itself: no dependency on setfattr (package attr).
node -e 'require(process.argv[1]).setAttributeSync(process.argv[2], "user.build-check", "1")' \
  "$check/dist/native/xattr.linux-$(node -p process.arch)-gnu.node" "$check/root/etc/with-xattr"
run_shipped() {
  # A clean environment: not the Actions protocol of a CI job building this, no NODE_PATH.
  if ! (cd "$check" && env -i PATH="$PATH" HOME="$check/home" RUNNER_DEBUG=1 node "$@") >>"$check/log" 2>&1; then
    cat "$check/log" >&2
    echo "build: node $* failed, run from a copy of dist/ (above)" >&2
    exit 1
  fi
}
run_shipped dist/pre/index.js --root "$check/root" --baseline "$check/baseline" --base-image example.com/build/check:1
run_shipped dist/index.js --root "$check/root" --dry-run --output "$check/layout"
if ! grep -q 'directories listed by the native scanner' "$check/log"; then
  cat "$check/log" >&2
  echo "build: the bundle, run from a copy of dist/, did not use the native scanner" >&2
  exit 1
fi
if grep -E 'no xattr support|Cannot find module|webpackMissingModule|ERR_MODULE_NOT_FOUND' "$check/log" >&2; then
  echo "build: the bundle, run from a copy of dist/, cannot load what it needs (above)" >&2
  exit 1
fi
xattr_digest=$(zcat "$check/baseline" | awk -v p="$(printf etc/with-xattr | base64)" '$1 == p { print $NF }')
if [ -z "$xattr_digest" ] || [ "$xattr_digest" = - ]; then
  echo "build: the pre step's baseline has no xattr digest for etc/with-xattr" >&2
  exit 1
fi
xattr_in_layer=false
for blob in "$check/layout/blobs/sha256/"*; do
  if (zcat "$blob" 2>/dev/null || true) | grep -aq 'SCHILY.xattr.user.build-check=1'; then xattr_in_layer=true; fi
done
if [ "$xattr_in_layer" != true ]; then
  echo "build: no layer of the main step carries the user.build-check xattr of etc/with-xattr" >&2
  exit 1
fi
echo "build: both entry points, run from a copy of dist/, read xattrs"
