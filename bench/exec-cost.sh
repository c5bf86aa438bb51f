#!/usr/bin/env bash
# Where an agent's process time goes, and what linking changes: anchorip's monitor (address
# present) built three ways — as it shipped before (built in one cargo call with floatip, so with
# floatip's TLS stack, dynamically linked), alone and dynamic, and as it ships now (alone,
# static: `make build`) — against /bin/true (the floor of any process here) and IPaddr2; with
# each binary's size, whether rustls is in it, and the system calls one monitor makes (strace).
# Writes bench/results-exec-cost.md. Run as root on Debian 12.
#   bash bench/exec-cost.sh [RUNS]       (RUNS: hyperfine runs per command, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-300}
out=bench/results-exec-cost.md
ipaddr2=/usr/lib/ocf/resource.d/heartbeat/IPaddr2

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes a network namespace"
bench_tools "resource-agents:$ipaddr2" strace

work=$(mktemp -d)
ns=cloudha-bench-exec-$$
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    umount "$work/state" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The three builds, each in a target directory of its own (no build overwrites another).
base=${CARGO_TARGET_DIR:-target}/exec-cost
CARGO_TARGET_DIR=$base/together cargo build --release --locked -q -p anchorip -p floatip
CARGO_TARGET_DIR=$base/alone cargo build --release --locked -q -p anchorip
CARGO_TARGET_DIR=$base/shipped make -s build >/dev/null
cp "$base/together/release/anchorip" "$work/together"
cp "$base/alone/release/anchorip" "$work/alone"
cp "$base/shipped/release/anchorip" "$work/shipped"

mkdir "$work/state"
mount -t tmpfs -o size=4m,mode=0750 cloudha-bench "$work/state"
ip netns add "$ns"
ip -n "$ns" link set lo up
vars=(OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESOURCE_TYPE=bench
      HA_RSCTMP="$work/state" OCF_RESKEY_CRM_meta_timeout=20000 OCF_RESKEY_CRM_meta_interval=10000
      OCF_RESKEY_ip=192.0.2.18 OCF_RESKEY_nic=lo OCF_RESKEY_cidr_netmask=32 PATH="$PATH")
in_ns() { ip netns exec "$ns" env -i "${vars[@]}" "$@"; }

# One start (all builds share the record format and the instance), then only monitors.
in_ns "$work/shipped" start >/dev/null 2>&1
for b in together alone shipped; do
    in_ns "$work/$b" monitor >/dev/null 2>&1 || { echo "$b: monitor failed" >&2; exit 1; }
done
in_ns "$ipaddr2" start >/dev/null 2>&1 || true

load_before=$(cut -d' ' -f1 /proc/loadavg)
in_ns hyperfine -N --warmup 20 --runs "$runs" --export-json "$work/h.json" \
    /bin/true \
    "$work/together monitor" "$work/alone monitor" "$work/shipped monitor" \
    "$ipaddr2 monitor" >/dev/null 2>&1
median() { jq -r ".results[$1].median * 1000 | . * 100 | round / 100" "$work/h.json"; }
syscalls() { # total system calls of one run (strace -f -c)
    in_ns strace -f -c -o "$work/strace.txt" "$@" >/dev/null 2>&1 || true
    awk '$NF == "total" {print $4; exit}' "$work/strace.txt"
}
in_ns "$work/shipped" stop >/dev/null 2>&1
in_ns "$ipaddr2" stop >/dev/null 2>&1 || true

size() { stat -c %s "$1"; }
# grep the binary itself: `strings | grep -q` under pipefail reads as "no" when grep stops early.
tls() { if grep -qa rustls "$1"; then echo yes; else echo no; fi; }
# A dynamically linked executable names its loader (PT_INTERP); ldd says "statically linked"
# for a static-pie one but exits 0.
linked() { if readelf -l "$1" 2>/dev/null | grep -q 'program interpreter'; then echo dynamic; else echo static; fi; }

{
    echo "## Process cost: where the time of an action goes"
    echo
    echo "$(date -u +%Y-%m-%d). anchorip's monitor (address present, record read, one netlink"
    echo "dump) as a whole process inside one network namespace; median of $runs runs (hyperfine"
    echo "-N, 20 warm-up). Load average $load_before before, $(cut -d' ' -f1 /proc/loadavg) after."
    echo "Command: \`bash bench/exec-cost.sh\`."
    echo
    echo "| program | linked | size (bytes) | rustls in it | system calls | monitor, median |"
    echo "| --- | --- | --- | --- | --- | --- |"
    echo "| /bin/true (the floor) | $(linked /bin/true) | $(size /bin/true) | no | $(syscalls /bin/true) | $(median 0) ms |"
    echo "| anchorip as shipped before (built with floatip) | $(linked "$work/together") | $(size "$work/together") | $(tls "$work/together") | $(syscalls "$work/together" monitor) | $(median 1) ms |"
    echo "| anchorip built alone, dynamic | $(linked "$work/alone") | $(size "$work/alone") | $(tls "$work/alone") | $(syscalls "$work/alone" monitor) | $(median 2) ms |"
    echo "| anchorip as shipped now (alone, static) | $(linked "$work/shipped") | $(size "$work/shipped") | $(tls "$work/shipped") | $(syscalls "$work/shipped" monitor) | $(median 3) ms |"
    echo "| IPaddr2 | shell | $(size "$ipaddr2") | no | $(syscalls "$ipaddr2" monitor) | $(median 4) ms |"
    echo
    echo "The dynamic builds spend their extra time before \`main\`: the loader maps libc and"
    echo "libgcc_s and resolves symbols. The static build has no loader at all. All three builds run the same"
    echo "code. System calls counted for one run (IPaddr2: all its processes)."
    echo
    echo "Shipped binaries (\`make build\`):"
    echo
    echo "| agent | linked | size (bytes) | rustls in it |"
    echo "| --- | --- | --- | --- |"
    for a in anchorip floatip haproxy; do
        f=$base/shipped/release/$a
        echo "| $a | $(linked "$f") | $(size "$f") | $(tls "$f") |"
    done
} >"$out"
cat "$out"
