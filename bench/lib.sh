# shellcheck shell=bash
# What every benchmark under bench/ starts with. Source it after `cd` to the repository's root:
#   . bench/lib.sh
#   bench_require_root "it makes a network namespace"
#   bench_tools curl socat haproxy:/usr/sbin/haproxy

# Exit 4 unless root; the reason says why this benchmark needs it.
bench_require_root() { # reason
    if [ "$(id -u)" -ne 0 ]; then
        echo "${0##*/}: run as root ($1)" >&2
        exit 4
    fi
}

# Install, from Debian, what is missing of hyperfine, GNU time (/usr/bin/time), jq and the
# packages named: PACKAGE (missing when no command PACKAGE is on the PATH) or PACKAGE:PATH
# (missing when PATH is not executable).
bench_tools() { # [PACKAGE | PACKAGE:PATH]...
    local need=() p
    command -v hyperfine >/dev/null || need+=(hyperfine)
    [ -x /usr/bin/time ] || need+=(time)
    command -v jq >/dev/null || need+=(jq)
    for p in "$@"; do
        case $p in
            *:*) [ -x "${p#*:}" ] || need+=("${p%%:*}") ;;
            *) command -v "$p" >/dev/null || need+=("$p") ;;
        esac
    done
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
    fi
}

# Build the agents exactly as they ship (`make build`: each agent alone, anchorip static) and
# set $built to the directory holding them. Benchmarks measure those binaries, never a build of
# their own.
bench_build() {
    make -s build >/dev/null
    # shellcheck disable=SC2034 # read by the scripts that source this file
    built=$(realpath "${CARGO_TARGET_DIR:-target}/release")
}
