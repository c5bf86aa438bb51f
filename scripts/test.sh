#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, checks style and lints, runs every
# test (unit, agents in network namespaces, ocf-tester, real HAProxy, real Pacemaker clusters),
# then checks `make install` and the Debian package (built, linted, installed, exercised, purged). Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

bash scripts/deps.sh

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
echo "== make install"
bash scripts/check-install.sh
echo "== Debian package"
bash scripts/package-test.sh
