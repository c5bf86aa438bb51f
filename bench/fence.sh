#!/usr/bin/env bash
# Fencing benchmark, in two parts, with release builds (as they ship).
#  1. The agent alone: `fence_cloudha` off (as pacemaker-fenced runs it, parameters on stdin)
#     against the `fakecloud` program on loopback, with the fake's power action time at 0 s and
#     1 s. The agent's own share = its whole run (process start to exit) - the action time.
#  2. The real two-node cluster (tests/cluster/cluster.sh) with the README's blocks, fencing
#     included (power time 1 s; a power-off kills the node, a power-on boots it). Each run:
#     crash the node holding the IP, then from the survivor's Pacemaker log (ms stamps)
#       detection = crash -> the controller requests the fencing
#       delay     = the fencer's delay (priority-fencing-delay 5 s + pcmk_delay_max's random 0-2 s)
#       fencing   = the agent's reboot (off then on, each a 1 s power action at the fake)
#       floatip   = fencing done -> the survivor's floatip start done
# Writes bench/results-fence.md. Usage: bash bench/fence.sh [AGENT_RUNS] [CLUSTER_RUNS]
# (default 20 and 3). Run as root on Debian 12 with the packages of scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin"
agent_runs=${1:-20}
cluster_runs=${2:-3}
out=bench/results-fence.md

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes network namespaces and a cluster"
bench_build
cargo build -q --release --locked -p cloudha-tests --bin fakecloud
target=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
fakecloud=$target/release/fakecloud
work=$(mktemp -d /tmp/cloudha-fence-bench-XXXXXX)
chmod 755 "$work"
make -s install-files DESTDIR="$work/root" BUILT="$built"
agent=$work/root/usr/sbin/fence_cloudha
tree=$work/root/usr/lib/ocf/resource.d
printf 'bench-token\n' > "$work/token"
chmod 600 "$work/token"

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
minmax() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END{print lo "–" hi}'; }

# --- 1. the agent alone -------------------------------------------------------------------------
# agent_alone POWER_MS: prints one line per run, the off's whole run in ms.
agent_alone() {
    local power_ms=$1 pid ready api md input t0 t1
    "$fakecloud" --listen 127.0.0.1:0 --token-file "$work/token" \
        --droplet 101 --droplet 102 --name 101=node1 --name 102=node2 \
        --power-time "${power_ms}ms" --rate-limit 100000/1000000 \
        --ready-file "$work/fake.ready" > "$work/fake.out" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do [ -s "$work/fake.ready" ] && break; sleep 0.05; done
    ready=$(cat "$work/fake.ready")
    api=$(jq -r '.admin' <<<"$ready")
    md=$(jq -r '.metadata["101"][0]' <<<"$ready")
    input="api_url=$api
metadata_url=$md
api_token_file=$work/token
plug=node2"
    for _ in $(seq 1 "$agent_runs"); do
        t0=$(date +%s%N)
        printf '%s\naction=off\n' "$input" | "$agent" > /dev/null 2>&1
        t1=$(date +%s%N)
        echo $(((t1 - t0) / 1000000))
        printf '%s\naction=on\n' "$input" | "$agent" > /dev/null 2>&1
    done
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$work/fake.ready"
}

{
    echo "## Fencing (bench/fence.sh)"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, pacemaker $(pacemakerd --version | head -1 | awk '{print $2}'), release builds, in ms (median, min–max)."
    echo
    echo "The agent alone: \`fence_cloudha\` off through the fake on loopback, $agent_runs runs per row, whole"
    echo "process (start to exit): find the droplet, the race check (metadata, own droplet, its actions),"
    echo "power_off, poll until off. The fake's rate limit is lifted here (each off and on is about"
    echo "25 requests; 20 of each in a minute would exceed DigitalOcean's 250 a minute: a first run"
    echo "without this had one off wait 50 s for its retry-after)."
    echo
    echo "| fake power action time | off, whole run | agent's own share (run − action time) |"
    echo "| --- | --- | --- |"
} > "$work/table.md"
for p in 0 1000; do
    agent_alone "$p" > "$work/agent-$p"
    echo "| $p ms | $(median < "$work/agent-$p") ($(minmax < "$work/agent-$p")) | $(awk -v p="$p" '{print $1 - p}' "$work/agent-$p" | median) ($(awk -v p="$p" '{print $1 - p}' "$work/agent-$p" | minmax)) |" >> "$work/table.md"
done

# --- 2. the cluster ---------------------------------------------------------------------------
# shellcheck source=tests/cluster/cluster.sh
. tests/cluster/cluster.sh
# shellcheck disable=SC2034 # read by tests/cluster/cluster.sh
CLUSTER_FENCE_AGENT=$agent

stamp_ms() { date -d "$(awk '{print $1, $2, $3}' <<<"$1")" +%s%3N; }

# One run; prints "detection delay fencing floatip total" in ms.
one_run() {
    local deadline active survivor survivor_id t0 log req dly ret fip delay_s
    cluster_up fencebench "$fakecloud" 0 "$tree" >&2
    cat docs/crm-configure.txt docs/crm-configure-fencing.txt > "$CLUSTER_DIR/readme.crm"
    cluster_configure "$CLUSTER_DIR/readme.crm" >/dev/null 2>&1
    deadline=$((SECONDS + 90))
    until [ -n "$(fip_node)" ] && [ -n "$(holder)" ] && [ "$(holder)" != null ]; do
        [ $SECONDS -lt $deadline ] || { echo "fip did not start" >&2; return 1; }
        sleep 0.2
    done
    on node1 crm_resource --wait --timeout=60s >&2
    active=$(fip_node)
    if [ "$active" = node1 ]; then survivor=node2; else survivor=node1; fi
    survivor_id=${CLUSTER_DROPLETS[$((${survivor#node} - 1))]}
    t0=$(date +%s%3N)
    crash "$active"
    deadline=$((SECONDS + 90))
    until [ "$(holder)" = "$survivor_id" ] && [ "$(fip_node)" = "$survivor" ]; do
        [ $SECONDS -lt $deadline ] || { echo "no failover" >&2; return 1; }
        sleep 0.1
    done
    log=$CLUSTER_DIR/$survivor/pacemaker.log
    req=$(stamp_ms "$(grep "Requesting fencing (reboot) of node $active" "$log" | tail -1)")
    dly=$(grep "Delaying 'reboot' action targeting $active using fence for" "$log" | tail -1)
    delay_s=$(sed -n 's/.* for \([0-9]*\)s .*/\1/p' <<<"$dly")
    ret=$(stamp_ms "$(grep "Operation 'reboot' \[[0-9]*\] targeting $active using fence returned 0" "$log" | tail -1)")
    fip=$(stamp_ms "$(grep "Result of start operation for fip on $survivor: ok" "$log" | tail -1)")
    cluster_down
    trap - EXIT
    echo "$((req - t0)) $((delay_s * 1000)) $((ret - req - delay_s * 1000)) $((fip - ret)) $((fip - t0))"
}

: > "$work/cluster"
for r in $(seq 1 "$cluster_runs"); do
    res=$(one_run)
    echo "cluster run $r: detection delay fencing floatip total = $res" >&2
    echo "$res" >> "$work/cluster"
done
col() { awk "{print \$$1}" "$work/cluster"; }
cell() { echo "$(col "$1" | median) ($(col "$1" | minmax))"; }
{
    cat "$work/table.md"
    echo
    echo "The cluster: crash of the node holding the IP → fenced → IP held by the survivor, $cluster_runs runs,"
    echo "the README's blocks, fake power action time 1 s (a reboot: off, then on)."
    echo
    echo "| detection | fencer's delay | fencing (agent's reboot) | fenced → floatip started | crash → IP on the survivor |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| $(cell 1) | $(cell 2) | $(cell 3) | $(cell 4) | $(cell 5) |"
    echo
    echo "The delay is the price of race safety: priority-fencing-delay (5 s) applies because the crashed"
    echo "node held the IP, plus pcmk_delay_max's random 0–2 s. The fencing column holds the fake's two"
    echo "1 s power actions and what the harness adds to them: the fake runs its power hook (kill the"
    echo "node, or boot it: tests/cluster/power-hook.sh, a bash script) before it answers. The agent's"
    echo "own share is the table above. Log stamps: 1 ms resolution; the delay is the whole seconds the"
    echo "fencer logs."
} > "$out"
cat "$out"
rm -rf "$work"
