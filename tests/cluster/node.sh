#!/usr/bin/env bash
# One cluster node on this machine: run as
#   setsid ip netns exec NS unshare -m -u -p --fork --mount-proc --propagation private \
#       node.sh NODE_DIR NAME
# (it is the init of the node's pid namespace: when it dies, every process of the node dies).
# It gives the node its own hostname, its own /etc, /var, /usr/lib/ocf and /usr/sbin (the
# fence agents' directory) (overlays whose upper
# layers live in NODE_DIR, so the host's files are never written), fresh tmpfs on /run and
# /dev/shm, copies NODE_DIR/root/ over that view (corosync.conf, the seeded CIB, haproxy.cfg, the
# token, the agents), then runs corosync and pacemakerd and waits on them. TERM stops Pacemaker
# (which stops the resources), then corosync. Everything it mounted dies with its mount namespace.
set -euo pipefail
dir=$1
name=$2
exec >> "$dir/node.log" 2>&1
echo "node $name: starting (pid $$)"

hostname "$name"
for top in etc var usr/lib/ocf usr/sbin; do
    key=${top//\//_}
    mkdir -p "$dir/overlay/$key/upper" "$dir/overlay/$key/work"
    mount -t overlay "overlay-$name-$key" \
        -o "lowerdir=/$top,upperdir=$dir/overlay/$key/upper,workdir=$dir/overlay/$key/work" "/$top"
done
mount -t tmpfs -o mode=0755 "run-$name" /run
mount -t tmpfs -o mode=1777 "shm-$name" /dev/shm
# A boot after the first (a power-on after fencing) is a reboot: the node keeps its own CIB, as
# a real machine does, instead of the seed.
kept=
if [ -e "$dir/booted" ] && [ -s /var/lib/pacemaker/cib/cib.xml ]; then
    kept=$dir/cib-kept
    rm -rf "$kept"
    cp -a /var/lib/pacemaker/cib "$kept"
fi
# The host's Pacemaker and corosync state must not leak in (the lower layer is normally empty).
rm -rf /var/lib/pacemaker/cib/* /var/lib/pacemaker/pengine/* /var/lib/corosync/*
# The node's own files, copied only inside the overlays: nothing above them (/, /usr, /usr/lib)
# belongs to this node, and copying over them would change the host's directories.
for top in etc var usr/lib/ocf usr/sbin; do
    if [ -d "$dir/root/$top" ]; then
        cp -a "$dir/root/$top/." "/$top/"
    fi
done
if [ -n "$kept" ]; then
    rm -rf /var/lib/pacemaker/cib/*
    cp -a "$kept/." /var/lib/pacemaker/cib/
    echo "node $name: a reboot, with its own CIB"
fi
touch "$dir/booted"
chown -R hacluster:haclient /var/lib/pacemaker
mkdir -p /run/resource-agents /var/log/pacemaker /var/log/corosync

stop_node() {
    echo "node $name: stopping"
    if [ -n "${pm:-}" ] && kill -0 "$pm" 2>/dev/null; then
        kill -TERM "$pm"
        wait "$pm" || true
    fi
    if [ -n "${cs:-}" ] && kill -0 "$cs" 2>/dev/null; then
        kill -TERM "$cs"
        wait "$cs" || true
    fi
    echo "node $name: stopped"
    exit 0
}
trap stop_node TERM INT

corosync -f > "$dir/corosync.out" 2>&1 &
cs=$!
echo "$cs" > "$dir/corosync.pid"
for _ in $(seq 1 200); do
    corosync-cfgtool -s > /dev/null 2>&1 && break
    kill -0 "$cs" 2>/dev/null || { echo "node $name: corosync exited"; exit 1; }
    sleep 0.05
done
PCMK_logfile="$dir/pacemaker.log" pacemakerd > "$dir/pacemakerd.out" 2>&1 &
pm=$!
echo "$pm" > "$dir/pacemakerd.pid"
echo "node $name: corosync $cs, pacemakerd $pm"
touch "$dir/ready"
# Wait on the daemons (bash reaps them; a crash of either ends the node).
while kill -0 "$cs" 2>/dev/null && kill -0 "$pm" 2>/dev/null; do
    wait -n "$cs" "$pm" 2>/dev/null || true
done
echo "node $name: a daemon exited"
stop_node
