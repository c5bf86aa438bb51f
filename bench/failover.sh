#!/usr/bin/env bash
# Failover benchmark: a real two-node Pacemaker cluster on this machine (tests/cluster/cluster.sh)
# with the README's configuration and release builds of the agents, against the fake cloud with
# its action time at 0 s and at 2 s. Each run: start the cluster, wait until the IP is held,
# SIGKILL every process of the active node, and measure
#   failover  = crash -> the survivor's floatip start completed (Pacemaker's own log, ms stamps)
#   start     = that start's duration as Pacemaker measured it (exec-time)
#   agent     = start - the fake's action time: what floatip itself adds (its HTTP calls to the
#               fake on loopback included, polling overshoot included)
#   detection = failover - start: corosync noticing the loss, Pacemaker deciding (not ours)
# and writes bench/results-failover.md. Usage: bash bench/failover.sh [RUNS] (default 5).
# Run as root on Debian 12 with the packages of scripts/deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin"
runs=${1:-5}
out=bench/results-failover.md

make -s build >/dev/null # the agents as they ship: each alone, anchorip static
cargo build -q --release --locked -p cloudha-tests --bin fakecloud
target=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
work=$(mktemp -d /tmp/cloudha-failover-bench-XXXXXX)
chmod 755 "$work"
make -s install-files DESTDIR="$work/root" BUILT="$target/release"
tree=$work/root/usr/lib/ocf/resource.d

# shellcheck source=tests/cluster/cluster.sh
. tests/cluster/cluster.sh

median() { sort -n | awk '{a[NR]=$1} END {if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
minmax() { sort -n | awk 'NR==1{lo=$1} {hi=$1} END{print lo "–" hi}'; }

# One run; prints "failover start" in ms.
one_run() {
    local action_time=$1 deadline active survivor survivor_id t0 line stamp t1 exec
    cluster_up failover "$target/release/fakecloud" "${action_time}s" "$tree" >&2
    cluster_configure docs/crm-configure.txt >/dev/null 2>&1
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
    deadline=$((SECONDS + 60))
    until [ "$(holder)" = "$survivor_id" ] && [ "$(fip_node)" = "$survivor" ]; do
        [ $SECONDS -lt $deadline ] || { echo "no failover" >&2; return 1; }
        sleep 0.1
    done
    line=$(grep "Result of start operation for fip on $survivor: ok" \
        "$CLUSTER_DIR/$survivor/pacemaker.log" | tail -1)
    stamp=$(echo "$line" | awk '{print $1, $2, $3}')
    t1=$(date -d "$stamp" +%s%3N)
    exec=$(on "$survivor" crm_mon -1 --output-as=xml \
        | awk -v n="<node name=\"$survivor\">" 'index($0, n){s=1} s && /<resource_history id="fip"/{f=1}
               f && /task="start"/{print; exit}' \
        | grep -o 'exec-time="[0-9]*' | cut -d'"' -f2)
    cluster_down
    trap - EXIT
    echo "$((t1 - t0)) $exec"
}

{
    echo "## Failover (bench/failover.sh)"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, pacemaker $(pacemakerd --version | head -1 | awk '{print $2}'),"
    echo "corosync token 1000 ms, release builds, $runs runs per row (median, min–max), in ms."
    echo "Crash = SIGKILL of every process of the node holding the IP (corosync, pacemakerd, HAProxy…)."
    echo
    echo "| fake action time | crash → survivor's floatip start done | floatip start (exec-time) | agent's own share (start − action time) | detection + scheduling |"
    echo "| --- | --- | --- | --- | --- |"
} > "$work/table.md"

for at in 0 2; do
    : > "$work/runs-$at"
    for r in $(seq 1 "$runs"); do
        res=$(one_run "$at")
        echo "action time ${at}s, run $r: failover/start ms = $res" >&2
        echo "$res" >> "$work/runs-$at"
    done
    action_ms=$((at * 1000))
    col() { awk "{print $1}" "$work/runs-$at"; }
    fo_med=$(col "\$1" | median); fo_mm=$(col "\$1" | minmax)
    st_med=$(col "\$2" | median); st_mm=$(col "\$2" | minmax)
    ag_med=$(col "\$2 - $action_ms" | median); ag_mm=$(col "\$2 - $action_ms" | minmax)
    de_med=$(col "\$1 - \$2" | median); de_mm=$(col "\$1 - \$2" | minmax)
    echo "| ${at} s | $fo_med ($fo_mm) | $st_med ($st_mm) | $ag_med ($ag_mm) | $de_med ($de_mm) |" \
        >> "$work/table.md"
done

{
    cat "$work/table.md"
    echo
    echo "Target: the agents add ≤ 50 ms. On a crash only floatip acts on the survivor (anchorip and"
    echo "HAProxy already run there, as clones). Pacemaker's log and exec-time have 1 ms resolution;"
    echo "the crash time is taken just before the SIGKILL."
} > "$out"
cat "$out"
rm -rf "$work"
