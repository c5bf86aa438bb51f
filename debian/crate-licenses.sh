#!/bin/sh
# crate-licenses.sh OUT AGENT...: the Rust crates statically linked into the agents (from
# Cargo.lock, proc-macros and build-only crates excluded), each with its license and the license
# files it ships, for /usr/share/doc/cloudha-agents/rust-crates.txt. Runs offline.
set -eu
out=$1
shift
registry=${CARGO_HOME:-$HOME/.cargo}/registry/src

# The agents become cargo's arguments `-p AGENT...`, in the positional parameters.
for a in "$@"; do set -- "$@" -p "$a"; shift; done
crates=$(cargo tree --locked --offline -e normal,no-proc-macro "$@" --prefix none -f '{p}|{l}' \
    | sed -e 's/ (\*)$//' -e 's/ ([^)]*)|/|/' -e '/^$/d' | sort -u | grep -v '^cloudha-[a-z]* \|^anchorip \|^floatip \|^haproxy \|^bgpip ')

{
    echo "Rust crates statically linked into the cloudha agents"
    echo "====================================================="
    echo
    echo "The agents are GPL-2.0-or-later (see copyright). They contain these crates, under the"
    echo "licenses given (an OR lets the user choose), with the license files each crate ships."
    echo
    echo "$crates" | while IFS='|' read -r nv lic; do printf '  %-40s %s\n' "$nv" "$lic"; done
    echo "$crates" | while IFS='|' read -r nv lic; do
        name=${nv% v*}
        version=${nv##* v}
        dir=""
        for d in "$registry"/*/"$name-$version"; do
            [ -d "$d" ] && dir=$d && break
        done
        echo
        echo "-------------------------------------------------------------------------------"
        echo "$name $version: $lic"
        if [ -z "$dir" ]; then
            echo "crate-licenses: $name $version is not in $registry" >&2
            exit 1
        fi
        found=0
        for f in "$dir"/LICENSE* "$dir"/LICENCE* "$dir"/COPYING* "$dir"/NOTICE* "$dir"/UNLICENSE*; do
            [ -f "$f" ] || continue
            found=1
            echo
            echo "--- $(basename "$f")"
            cat "$f"
        done
        [ $found = 1 ] || echo "(the crate ships no license file; its license is $lic)"
    done
} > "$out"
