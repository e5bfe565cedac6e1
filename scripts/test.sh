#!/usr/bin/env bash
# The one test command (README): installs what the tests need (Debian packages, npm packages, Node 24),
# then runs type checks, lint and every test, unit and integration, against real registries and tools.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/test-deps.sh
npx tsc --noEmit -p tsconfig.test.json
npx eslint .
npx vitest run
