#!/usr/bin/env bash
# The fake cloud's power hook for the shell cluster (tests/cluster/cluster.sh):
#   power-hook.sh DROPLET off|on
# off: every process of that droplet's node is killed, as a power loss (and `crash`) does;
# on: the node is booted again, fresh (its own CIB kept, as node.sh does on a reboot).
# The fake runs it and waits for it before any answer says the droplet is off or on.
set -euo pipefail
droplet=$1
state=$2
case $droplet in
    101) n=1 ns=$CLUSTER_HOOK_NS1 ;;
    102) n=2 ns=$CLUSTER_HOOK_NS2 ;;
    *) echo "power-hook: droplet $droplet is no node" >&2; exit 0 ;;
esac
dir=$CLUSTER_HOOK_DIR/node$n
case $state in
    off)
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ;;
    on)
        if [ -z "$(ip netns pids "$ns" 2>/dev/null)" ]; then
            setsid ip netns exec "$ns" \
                unshare -m -u -p --fork --mount-proc --propagation private \
                env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
                bash "$(dirname "$0")/node.sh" "$dir" "node$n" \
                < /dev/null > /dev/null 2>&1 9>&- &
        fi
        ;;
    *) echo "power-hook: off or on, not $state" >&2; exit 2 ;;
esac
