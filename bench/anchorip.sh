#!/usr/bin/env bash
# anchorip against resource-agents' IPaddr2, whole process, same address, same namespace:
# median wall time (hyperfine) of meta-data, monitor (address present) and start+stop, and the
# peak RSS of each action (GNU time). Writes bench/results-anchorip.md. Run as root on Debian 12.
#   bash bench/anchorip.sh [RUNS]        (RUNS: hyperfine runs per command, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-300}
out=bench/results-anchorip.md
ipaddr2=/usr/lib/ocf/resource.d/heartbeat/IPaddr2

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes a network namespace"
bench_tools "resource-agents:$ipaddr2"

bench_build
agent=$built/anchorip

ns=cloudha-bench-anchorip-$$
state=$(mktemp -d)
json=$(mktemp -d)
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    umount "$state" 2>/dev/null || true
    rm -rf "$state" "$json"
}
trap cleanup EXIT
# HA_RSCTMP is /run/resource-agents, a tmpfs on a real node: the same here, whatever /tmp is.
mount -t tmpfs -o size=4m,mode=0750 cloudha-bench "$state"
ip netns add "$ns"
ip -n "$ns" link set lo up

# The same variables serve both agents: IPaddr2 and anchorip name their parameters alike.
vars=(OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESOURCE_TYPE=bench
      HA_RSCTMP="$state" OCF_RESKEY_CRM_meta_timeout=20000 OCF_RESKEY_CRM_meta_interval=10000
      OCF_RESKEY_ip=10.17.1.18 OCF_RESKEY_nic=lo OCF_RESKEY_cidr_netmask=32 PATH="$PATH")
in_ns() { ip netns exec "$ns" env -i "${vars[@]}" "$@"; }

# hyperfine runs inside the namespace, so that no `ip netns exec` is timed.
bench() { # name command...
    local name=$1; shift
    in_ns hyperfine -N --warmup 20 --runs "$runs" --export-json "$json/$name.json" "$@" >/dev/null 2>&1
}
median_ms() { jq -r '.results[0].median * 1000' "$json/$1.json"; }
rss_kib() { # peak RSS over 5 runs of one action
    local max=0 r
    for _ in 1 2 3 4 5; do
        r=$(in_ns /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
        [ "$r" -gt "$max" ] && max=$r
    done
    echo "$max"
}

declare -A rss=() # label -> "meta monitor start stop" peak RSS in KiB
measure() { # label agent
    local label=$1 a=$2
    bench "$label-meta" "$a meta-data"
    in_ns "$a" start >/dev/null 2>&1
    in_ns "$a" monitor >/dev/null 2>&1 || { echo "$label: monitor after start failed" >&2; exit 1; }
    bench "$label-monitor" "$a monitor"
    rss_monitor=$(rss_kib "$a" monitor)
    in_ns "$a" stop >/dev/null 2>&1
    bench "$label-startstop" "sh -c '$a start >/dev/null 2>&1 && $a stop >/dev/null 2>&1'"
    rss_meta=$(rss_kib "$a" meta-data)
    rss_start=$(rss_kib "$a" start)
    rss_stop=$(rss_kib "$a" stop)
    if in_ns "$a" monitor >/dev/null 2>&1; then
        echo "$label: still running after the benchmark" >&2
        exit 1
    fi
    rss[$label]="$rss_meta $rss_monitor $rss_start $rss_stop"
}

load_before=$(cut -d' ' -f1 /proc/loadavg)
measure anchorip "$agent"
measure ipaddr2 "$ipaddr2"

read -r a_meta a_mon a_start a_stop <<<"${rss[anchorip]}"
read -r i_meta i_mon i_start i_stop <<<"${rss[ipaddr2]}"
row() { # what anchorip-key ipaddr2-key
    local a i
    a=$(median_ms "anchorip-$2")
    i=$(median_ms "ipaddr2-$2")
    awk -v w="$1" -v a="$a" -v i="$i" 'BEGIN { printf "| %s | %.2f ms | %.2f ms | %.0f× |\n", w, a, i, i / a }'
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

{
    echo "## anchorip vs IPaddr2"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), resource-agents" \
        "$(dpkg-query -W -f='${Version}' resource-agents 2>/dev/null || echo '?')." \
        "Release build; whole process, inside one network namespace, address 10.17.1.18/32 on lo," \
        "HA_RSCTMP on a tmpfs;" \
        "median of $runs runs (hyperfine -N, 20 warm-up runs); peak RSS: the largest of 5 runs" \
        "(GNU time %M). Load average (1 min) $load_before before, $(cut -d' ' -f1 /proc/loadavg) after:" \
        "other work on the machine inflates the numbers. Command: \`bash bench/anchorip.sh\`."
    echo
    echo "| action | anchorip | IPaddr2 | speed-up |"
    echo "| --- | --- | --- | --- |"
    row "meta-data" meta
    row "monitor (address present)" monitor
    row "start + stop" startstop
    echo
    echo "| peak RSS | anchorip | IPaddr2 |"
    echo "| --- | --- | --- |"
    echo "| meta-data | $(mib "$a_meta") | $(mib "$i_meta") |"
    echo "| monitor | $(mib "$a_mon") | $(mib "$i_mon") |"
    echo "| start | $(mib "$a_start") | $(mib "$i_start") |"
    echo "| stop | $(mib "$a_stop") | $(mib "$i_stop") |"
    echo
    echo "IPaddr2's peak RSS is that of its largest process (a shell, \`ip\`, …), as GNU time reports it."
} >"$out"
cat "$out"
