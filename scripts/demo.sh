#!/usr/bin/env bash
# The README's first command: on a fresh Debian 12 machine, as root, in a clone of this
# repository. It installs what is needed (scripts/deps.sh), builds and installs the agents
# (`make install`), starts the fake DigitalOcean cloud and a two-node Pacemaker cluster on this
# machine with the README's `crm configure` blocks (docs/crm-configure.txt, then the fencing
# block docs/crm-configure-fencing.txt: fence_cloudha powers a failed node off through the fake's
# API, which kills that node, then on, which boots it again), shows crm_mon, then the tutorial's
# own test: a client asking the floating IP every 50 ms through the fake cloud's network, its
# answers coming from two app servers behind the active balancer; it crashes the node that holds
# the floating IP, shows the gap the client saw, the first answers through the survivor, the
# fencing, where the IP went and how long it took, then stops everything (`DESTDIR=/some/dir bash scripts/demo.sh` installs the agents there
# instead of under /usr, and the nodes use that copy). Nothing is left running: namespaces, processes and mounts go with it,
# also on Ctrl-C or an error. It reaches nothing outside this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:/usr/sbin:/usr/bin:/sbin:/bin"

if [ "$(id -u)" -ne 0 ]; then
    echo "demo.sh: run as root (it installs packages and makes network namespaces)" >&2
    exit 4
fi

step() { printf '\n== %s\n' "$*"; }

step "Debian packages (scripts/deps.sh)"
bash scripts/deps.sh

# DESTDIR=/some/dir installs there instead of the system, and the nodes use that copy.
destdir=${DESTDIR:-}
step "Build and install the agents (make install${destdir:+ DESTDIR=$destdir})"
target=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
make -s install DESTDIR="$destdir" BUILT="$target/release"
ls -l "$destdir/usr/lib/ocf/resource.d/cloudha/"
ocf_tree=
[ -n "$destdir" ] && ocf_tree=$(cd "$destdir/usr/lib/ocf/resource.d" && pwd)

step "Build the fake cloud"
cargo build -q --release --locked -p cloudha-tests --bin fakecloud --bin cloudnet
fakecloud=$target/release/fakecloud

# shellcheck source=tests/cluster/cluster.sh
. tests/cluster/cluster.sh

step "A two-node cluster on this machine (node1, node2), and the fake cloud"
# The tutorial's balancers: each HAProxy forwards to two app servers (app-1, app-2).
CLUSTER_HAPROXY_CFG=$PWD/tests/cluster/haproxy-apps.cfg.in
# The installed fence agent goes into each node's /usr/sbin; the fake's power acts on the nodes.
# shellcheck disable=SC2034 # read by tests/cluster/cluster.sh
CLUSTER_FENCE_AGENT=$destdir/usr/sbin/fence_cloudha
cluster_up demo "$fakecloud" 0 "$ocf_tree"
echo "the fake holds $CLUSTER_IP for droplets 101 (node1) and 102 (node2): admin at $CLUSTER_FAKE_URL/_fake/state"

step "The README's configuration and its fencing block, loaded together (docs/crm-configure.txt, docs/crm-configure-fencing.txt; the API pointed at the fake)"
cat docs/crm-configure.txt docs/crm-configure-fencing.txt | tee "$CLUSTER_DIR/readme.crm"
cluster_configure "$CLUSTER_DIR/readme.crm"
deadline=$((SECONDS + 90))
until [ -n "$(fip_node)" ] && [ -n "$(holder)" ] && [ "$(holder)" != null ]; do
    [ $SECONDS -lt $deadline ] || { echo "fip did not start" >&2; on node1 crm_mon -1 >&2; exit 1; }
    sleep 0.5
done
on "$(cluster_live_node)" crm_resource --wait --timeout=60s
step "crm_mon"
on node1 crm_mon -1
active=$(fip_node)
echo "$CLUSTER_IP is on $active: the fake says droplet $(holder) holds it"

if [ "$active" = node1 ]; then survivor=node2; else survivor=node1; fi
survivor_id=${CLUSTER_DROPLETS[$((${survivor#node} - 1))]}

step "A client asks http://$CLUSTER_IP/ every 50 ms, a new connection each time (the tutorial's curl loop)"
echo "(the fake cloud's network delivers $CLUSTER_IP to the droplet the fake API says holds it;"
echo " each line: how many answers in a row, through which balancer, from which app servers)"
cluster_traffic "$target/release/cloudnet"
sleep 3

step "Crash $active (power loss: SIGKILL of corosync, pacemakerd and everything else on it)"
traffic mark "crash of $active"
traffic power-loss "${active#node}"
t0=$(date +%s%N)
crash "$active"
deadline=$((SECONDS + 60))
until [ "$(holder)" = "$survivor_id" ] && [ "$(fip_node)" = "$survivor" ]; do
    [ $SECONDS -lt $deadline ] || { echo "no failover" >&2; on "$survivor" crm_mon -1 >&2; exit 1; }
    sleep 0.05
done
t1=$(date +%s%N)
# The client prints about 1.5 s late (each line once every earlier request has ended).
sleep 3.5
traffic report
sleep 0.2
step "crm_mon on $survivor"
on "$survivor" crm_mon -1
ms=$(((t1 - t0) / 1000000))
echo
echo "$CLUSTER_IP moved from $active to $survivor (droplet $survivor_id) in ${ms} ms after the crash"
echo "(seen by polling crm_mon and the fake; bench/failover.sh and bench/traffic.sh measure it)"
step "Fencing history: $active was powered off (and on) through the API before the IP moved"
on "$survivor" stonith_admin --history "$active"
step "$active, powered on again, rejoins as the passive node"
deadline=$((SECONDS + 90))
until on "$survivor" crm_mon -1 2>/dev/null | grep -q 'Online: \[ node1 node2 \]'; do
    [ $SECONDS -lt $deadline ] || { echo "$active did not rejoin" >&2; break; }
    sleep 0.5
done
on "$survivor" crm_mon -1

step "Stop the cluster and the fake"
cluster_down
trap - EXIT
echo "done: nothing is left running (bash scripts/test.sh runs the whole test suite)"
