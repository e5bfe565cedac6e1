#!/usr/bin/env bash
# Installs what the integration tests need on a fresh Debian machine (run as root). Idempotent:
# apt is only touched when a command is missing, npm install only when node_modules is missing or older
# than package-lock.json.
set -euo pipefail

die() {
  echo "test-deps: $*" >&2
  exit 1
}

# Commands the tests run, and the Debian packages that provide them.
# gcc and the arm64 cross compiler build the native scanner (scripts/build.sh), which CI rebuilds.
commands=(docker-registry skopeo umoci htpasswd getfattr setcap debootstrap openssl pigz zstd sudo git dockerd podman runc gcc aarch64-linux-gnu-gcc)
packages=(docker-registry skopeo umoci apache2-utils attr libcap2-bin debootstrap openssl pigz zstd sudo git docker.io podman runc gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross)

# setcap and debootstrap live in /usr/sbin, which a non-login root shell may lack in PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for c in "${commands[@]}"; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done

if ((${#missing[@]} > 0)); then
  echo "test-deps: missing commands: ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || die "must run as root to install: ${packages[*]}"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found (Debian/Ubuntu only)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update || die "apt-get update failed"
  apt-get install -y --no-install-recommends "${packages[@]}" || die "apt-get install failed: ${packages[*]}"
  for c in "${commands[@]}"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' still missing after installing ${packages[*]}"
  done
else
  echo "test-deps: all test commands present"
fi

# Node dependencies, from the repository root (this script lives in scripts/).
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -f package-lock.json ]] || die "no package-lock.json in $(pwd)"
if [[ ! -d node_modules || node_modules -ot package-lock.json ]]; then
  command -v npm >/dev/null 2>&1 || die "npm not found (install Node.js >= 20 first)"
  # npm install, not npm ci: this npm (11.19) writes lock files without other platforms' optional
  # packages and then refuses them in `npm ci`; install still follows the lock's versions.
  echo "test-deps: npm install"
  npm install --no-audit --no-fund || die "npm install failed"
  touch node_modules # npm ci may keep an old directory mtime; mark it fresh for the next run
else
  echo "test-deps: node_modules up to date"
fi

# Node 24, the action's runtime (and the one with zstd), to run the bundle on both Node 20 and 24.
node24="node_modules/node-linux-$(node -p process.arch)/bin/node"
if [[ ! -x "$node24" ]]; then
  echo "test-deps: npm install --no-save node-linux-$(node -p process.arch)@24"
  npm install --no-save --no-audit --no-fund "node-linux-$(node -p process.arch)@24" || die "installing Node 24 failed"
fi
