#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, checks style and lints (rustfmt,
# clippy, shellcheck, unused dependencies, licenses and crate sources), runs every
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
echo "== shellcheck"
# Every tracked shell script: *.sh, and any other file whose first line is a sh, dash or bash
# shebang (.ci/run, debian/*.preinst, ...). -x follows the files they source.
shell_scripts=()
while IFS= read -r -d '' f; do
    case $f in
        *.sh) shell_scripts+=("$f") ;;
        *) if [ -f "$f" ] && awk 'NR == 1 { sh = /^#! *\/(usr\/)?bin\/(env +)?(ba|da)?sh( |$)/; exit }
                                END { exit !sh }' "$f"; then
               shell_scripts+=("$f")
           fi ;;
    esac
done < <(git ls-files -z)
if [ ${#shell_scripts[@]} -eq 0 ]; then
    echo "test.sh: git lists no shell script (not a git checkout?)" >&2
    exit 1
fi
shellcheck -x "${shell_scripts[@]}"
echo "shellcheck: ${#shell_scripts[@]} scripts clean"
echo "== cargo machete"
cargo machete --skip-target-dir
echo "== cargo deny"
# deny.toml; advisories are not checked (no network for their database: docs/package.md).
cargo deny --locked check --hide-inclusion-graph licenses bans sources
echo "== cargo test"
# Every agent's binary first: the tests install them all (make install-files), also the ones
# whose crate has no integration test of its own for cargo to build the binary for.
cargo build --workspace --locked --bins
cargo test --workspace --locked
echo "== make install"
bash scripts/check-install.sh
echo "== Debian package"
bash scripts/package-test.sh
