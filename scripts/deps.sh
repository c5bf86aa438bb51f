#!/usr/bin/env bash
# Install what cloudha's build, tests and demo need on Debian 12 (run as root). Idempotent and
# quick when everything is there. While packages install, a policy-rc.d guard keeps their
# scripts from starting corosync, pacemaker or haproxy with default configurations.
set -euo pipefail

PACKAGES=(pacemaker pacemaker-cli-utils corosync crmsh pcs resource-agents haproxy libxml2-utils
          iproute2 nftables time socat arping procps psmisc make gcc curl ca-certificates man-db keepalived
          dpkg-dev debhelper fakeroot build-essential docbook-xsl xsltproc lintian shellcheck
          frr)

if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: run as root (it installs Debian packages)" >&2
    exit 4
fi

missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "deps.sh: installing ${missing[*]}"
    guard=/usr/sbin/policy-rc.d
    placed=0
    if [ ! -e "$guard" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$guard" && chmod 755 "$guard" && placed=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    # Leave the machine as we found it (a CI machine keeps the guard it brought).
    [ "$placed" = 1 ] && rm -f "$guard"
fi

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
    echo "deps.sh: cargo is missing: install a Rust toolchain (1.89 or newer) with rustup" >&2
    exit 5
fi

# The Cargo tools of scripts/test.sh's checks, pinned, built from crates.io when missing or of
# another version (on 2 cores: cargo-machete about 1 min, cargo-deny about 3 min, once).
cargo_tool() { # crate version
    local have
    have=$("$1" --version 2>/dev/null || true)
    case $have in
        "$2" | *" $2") return 0 ;;
    esac
    echo "deps.sh: installing $1 $2 (cargo install --locked)"
    cargo install --locked --quiet "$1" --version "$2"
}
cargo_tool cargo-machete 0.9.2
cargo_tool cargo-deny 0.20.2
