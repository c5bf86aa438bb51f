#!/usr/bin/env bash
# The haproxy agent with the real HAProxy, whole process, inside a network namespace of its own:
# median wall time (hyperfine) of monitor at depths 0, 10 and 20, of start until the first
# successful request, and of reload until the new worker serves; peak RSS of each action
# (GNU time). Writes bench/results-haproxy.md. Run as root on Debian 12.
#   bash bench/haproxy.sh [RUNS]        (RUNS: hyperfine runs per monitor, default 300)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-300}
cycles=$(( runs / 10 > 10 ? runs / 10 : 10 ))
out=bench/results-haproxy.md

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes a network namespace"
bench_tools curl socat haproxy:/usr/sbin/haproxy

bench_build
agent=$built/haproxy

ns=cloudha-bench-haproxy-$$
dir=$(mktemp -d)
json=$(mktemp -d)
vars=(OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=bench OCF_RESOURCE_TYPE=haproxy
      HA_RSCTMP="$dir/run" OCF_RESKEY_CRM_meta_timeout=20000 OCF_RESKEY_config="$dir/haproxy.cfg"
      OCF_RESKEY_drain_time=5 PATH="$PATH")
in_ns() { ip netns exec "$ns" env -i "${vars[@]}" "$@"; }
cleanup() {
    in_ns "$agent" stop >/dev/null 2>&1 || true
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$dir" "$json"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

# A self-contained load balancer: frontend :8080 to backend be, whose one server is a second
# frontend of the same HAProxy answering 200 itself. Ports are private to the namespace.
cat >"$dir/haproxy.cfg" <<'EOF'
global
    maxconn 1000
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:8080
    default_backend be
backend be
    server origin 127.0.0.1:8081 check inter 1s
frontend origin
    bind 127.0.0.1:8081
    http-request return status 200 content-type text/plain string ok
EOF
chmod 755 "$dir"

bench() { # name hyperfine-args...
    local name=$1; shift
    in_ns hyperfine -N --style none --export-json "$json/$name.json" "$@" >/dev/null
}
# A monitor at one depth: the variables are hyperfine's own environment, so that no `env`
# process is timed with the agent.
bench_monitor() { # depth round
    in_ns env OCF_CHECK_LEVEL="$1" OCF_RESKEY_CRM_meta_interval=10000 \
        hyperfine -N --style none --export-json "$json/monitor$1-$2.json" --warmup 20 \
        --runs $(( (runs + 2) / 3 )) "$agent monitor" >/dev/null
}
# The median of every run of one depth over the three rounds.
monitor_median_ms() { # depth
    jq -s '[.[].results[0].times[]] | sort | (if length % 2 == 1 then .[length / 2 | floor]
        else (.[length / 2 - 1] + .[length / 2]) / 2 end) * 1000' "$json"/monitor"$1"-*.json
}
median_ms() { jq -r '.results[0].median * 1000' "$json/$1.json"; }
runs_of() { jq -r '.results[0].times | length' "$json/$1.json"; }
rss_kib() { # peak RSS over 5 runs of one action
    local max=0 r
    for _ in 1 2 3 4 5; do
        r=$(in_ns /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1)
        [ "$r" -gt "$max" ] && max=$r
    done
    echo "$max"
}
get='curl -sf -o /dev/null http://127.0.0.1:8080/'

in_ns "$agent" start >/dev/null
# Depth 20 must see the backend's server up (0, not 190) before it is timed.
for _ in $(seq 50); do
    in_ns env OCF_CHECK_LEVEL=20 OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor >/dev/null 2>&1 && break
    sleep 0.1
done
# The floor on this machine: a process that does nothing, and the agent's meta-data.
bench true --warmup 20 --runs "$runs" /bin/true
bench metadata --warmup 20 --runs "$runs" "$agent meta-data"
for d in 0 10 20; do
    in_ns env OCF_CHECK_LEVEL=$d OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor >/dev/null ||
        { echo "haproxy.sh: monitor depth $d failed before the benchmark" >&2; exit 1; }
done
# Three interleaved rounds, so that a burst of load on this shared machine hits every depth alike.
for round in 1 2 3; do
    for d in 0 10 20; do
        bench_monitor $d $round
    done
done
rss_m0=$(rss_kib env OCF_CHECK_LEVEL=0 OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor)
rss_m10=$(rss_kib env OCF_CHECK_LEVEL=10 OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor)
rss_m20=$(rss_kib env OCF_CHECK_LEVEL=20 OCF_RESKEY_CRM_meta_interval=10000 "$agent" monitor)

# reload returns once the new worker answers; the request proves it serves.
bench reload --warmup 3 --runs "$cycles" "sh -c '$agent reload >/dev/null 2>&1 && $get'"
rss_reload=$(rss_kib "$agent" reload)
workers=$(in_ns sh -c "echo 'show proc' | socat - UNIX-CONNECT:$dir/run/cloudha/haproxy-bench.sock" |
    awk '$2 == "worker"' | wc -l)

# start until the first successful request; each run begins stopped.
bench start --warmup 2 --runs "$cycles" --prepare "$agent stop" "sh -c '$agent start >/dev/null 2>&1 && $get'"
in_ns "$agent" stop >/dev/null 2>&1
rss_start=$(in_ns /usr/bin/time -f %M "$agent" start 2>&1 >/dev/null | tail -1)
rss_stop=$(in_ns /usr/bin/time -f %M "$agent" stop 2>&1 >/dev/null | tail -1)
in_ns "$agent" start >/dev/null 2>&1
master=$(cat "$dir/run/cloudha/haproxy-bench.pid")
hap_rss=0
for p in $master $(pgrep -P "$master"); do
    r=$(awk '/^VmHWM:/ {print $2}' "/proc/$p/status")
    [ "$r" -gt "$hap_rss" ] && hap_rss=$r
done
in_ns "$agent" stop >/dev/null
if in_ns "$agent" monitor >/dev/null 2>&1; then
    echo "haproxy.sh: still running after the benchmark" >&2
    exit 1
fi

ms() { awk -v v="$(median_ms "$1")" 'BEGIN { printf "%.2f ms", v }'; }
mon_ms() { awk -v v="$(monitor_median_ms "$1")" 'BEGIN { printf "%.2f ms", v }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
{
    echo "## haproxy"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), haproxy" \
        "$(dpkg-query -W -f='${Version}' haproxy 2>/dev/null || echo '?')." \
        "Release build; whole process, inside one network namespace; HAProxy in master-worker mode" \
        "with a frontend, a backend and one server (a second frontend answering 200)." \
        "Medians (hyperfine -N): monitors $runs runs each, in three interleaved rounds after 20 warm-up runs; start and reload" \
        "$cycles runs each. Peak RSS: GNU time %M (the largest of 5 runs for monitor and reload)." \
        "Command: \`bash bench/haproxy.sh\`."
    echo
    echo "| action | median | target | peak RSS |"
    echo "| --- | --- | --- | --- |"
    echo "| \`/bin/true\` (the cost of any process here) | $(ms true) | | |"
    echo "| meta-data | $(ms metadata) | | |"
    echo "| monitor depth 0 (pid file, /proc) | $(mon_ms 0) | ≤ 1.5 ms | $(mib "$rss_m0") |"
    echo "| monitor depth 10 (+ master CLI \`show proc\`) | $(mon_ms 10) | ≤ 3 ms | $(mib "$rss_m10") |"
    echo "| monitor depth 20 (+ \`show stat\` of the worker) | $(mon_ms 20) | | $(mib "$rss_m20") |"
    echo "| start, until the first request succeeds | $(ms start) | | $(mib "$rss_start") |"
    echo "| reload, until the new worker serves a request | $(ms reload) | | $(mib "$rss_reload") |"
    echo "| stop (no open connection) | | | $(mib "$rss_stop") |"
    echo
    echo "Load average while it ran: $(cut -d' ' -f1-3 /proc/loadavg) (other builds shared the machine)."
    echo
    echo "start and reload include \`haproxy -c\` and HAProxy's own start-up; their RSS is the" \
        "largest of the agent and the HAProxy processes it waited for. HAProxy itself (largest" \
        "VmHWM of master and worker): $(mib "$hap_rss"). Workers listed after the reload runs:" \
        "$workers (old ones exit as soon as their connections are done)."
} >"$out"
cat "$out"
