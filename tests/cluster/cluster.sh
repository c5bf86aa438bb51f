# shellcheck shell=bash
# A two-node cloudha cluster on this machine, for scripts (the demo, the failover benchmark).
# Source it; it is the bash twin of tests/src/cluster.rs and uses the same node script and
# templates: two network namespaces joined by a veth named eth0 (192.168.77.1/.2), each node in
# its own pid, mount and UTS namespace with overlays over /etc, /var and /usr/lib/ocf, and the
# `fakecloud` program serving each node its metadata at 169.254.169.254 and the API on its
# loopback (127.0.0.1:8080). cluster_down (also run on EXIT) leaves nothing behind.
#
#   cluster_up TAG FAKECLOUD [ACTION_TIME] [OCF_TREE]   start it (OCF_TREE: a resource.d to use
#                                                        instead of the installed agents)
#   cluster_configure FILE                              crm configure load update, API -> fake
#   on NODE CMD...                                      run CMD on node1 / node2
#   fake GET|POST PATH [JSON]                           the fake's admin interface
#   holder                                              droplet id holding $CLUSTER_IP
#   fip_node                                            node running fip ("" if none)
#   crash NODE                                          SIGKILL every process of that node
#   cluster_traffic CLOUDNET                            the fake cloud's network carrying
#                                                        $CLUSTER_IP to its holder, two app
#                                                        servers and a client whose answers print
#                                                        on stdout (tests/src/bin/cloudnet.rs)
#   traffic CMD                                         a command to it: mark NAME, report,
#                                                        power-loss N
#   cluster_down
# CLUSTER_HAPROXY_CFG (before cluster_up): the nodes' haproxy.cfg template (default
# haproxy.cfg.in, which answers itself; haproxy-apps.cfg.in balances over the app servers).

CLUSTER_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER_IP=203.0.113.10
CLUSTER_TOKEN=demo-token-not-secret
# shellcheck disable=SC2034 # read by the scripts that source this file (demo, failover bench)
CLUSTER_DROPLETS=(101 102)
CLUSTER_ANCHORS=(10.17.0.5 10.17.0.6)
CLUSTER_API_PORT=8080
CLUSTER_DIR=
CLUSTER_TAG=
CLUSTER_FAKE_PID=
CLUSTER_FAKE_URL=
CLUSTER_TRAFFIC_PID=
declare -A CLUSTER_INIT=()

cluster_log() { printf '%s\n' "$*" >&2; }

cluster_ns() { echo "cloudha-$CLUSTER_TAG-$$-$1"; }

# Namespaces of earlier runs of these scripts whose process is gone.
cluster_remove_stale() {
    local ns pid
    for ns in /run/netns/*; do
        [ -e "$ns" ] || continue
        ns=${ns#/run/netns/}
        case $ns in cloudha-demo-*|cloudha-failover-*) ;; *) continue ;; esac
        pid=$(echo "$ns" | awk -F- '{print $(NF-1)}')
        [ -d "/proc/$pid" ] && continue
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
}

cluster_up() {
    CLUSTER_TAG=$1
    local fakecloud=$2 action_time=${3:-0} ocf_tree=${4:-}
    # The lock the Rust tests take too: one cluster at a time. Children must not inherit it.
    exec 9>/tmp/cloudha-test-cluster.lock
    flock 9
    trap cluster_down EXIT
    trap 'exit 130' INT TERM HUP
    cluster_remove_stale
    CLUSTER_DIR=$(mktemp -d "/tmp/cloudha-$CLUSTER_TAG-XXXXXX")
    chmod 755 "$CLUSTER_DIR"

    local n1 n2
    n1=$(cluster_ns node1)
    n2=$(cluster_ns node2)
    ip netns add "$n1"
    ip netns add "$n2"
    ip -n "$n1" link add eth0 type veth peer name eth0 netns "$n2"
    local i ns
    for i in 1 2; do
        ns=$(cluster_ns node$i)
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add 169.254.169.254/32 dev lo
        ip -n "$ns" addr add 192.168.77.$i/24 dev eth0
        ip -n "$ns" link set eth0 up
    done

    cibadmin --empty > "$CLUSTER_DIR/seed.xml"
    CIB_file=$CLUSTER_DIR/seed.xml crm_attribute -t crm_config -n stonith-enabled -v false
    CIB_file=$CLUSTER_DIR/seed.xml crm_attribute -t crm_config -n dc-deadtime -v 2s
    printf '%s\n' "$CLUSTER_TOKEN" > "$CLUSTER_DIR/token"
    chmod 600 "$CLUSTER_DIR/token"

    local d
    for i in 1 2; do
        d=$CLUSTER_DIR/node$i
        mkdir -p "$d/root/etc/corosync" "$d/root/etc/haproxy" "$d/root/etc/cloudha" \
            "$d/root/var/lib/pacemaker/cib"
        chmod 755 "$d"
        sed -e "s|@RING1@|192.168.77.1|; s|@RING2@|192.168.77.2|; s|@NODE_DIR@|$d|" \
            "$CLUSTER_LIB_DIR/corosync.conf.in" > "$d/root/etc/corosync/corosync.conf"
        sed -e "s|@ANCHOR@|${CLUSTER_ANCHORS[$((i - 1))]}|; s|@BIND@|${CLUSTER_ANCHORS[$((i - 1))]}|" \
            -e "s|@NODE@|node$i|" "${CLUSTER_HAPROXY_CFG:-$CLUSTER_LIB_DIR/haproxy.cfg.in}" \
            > "$d/root/etc/haproxy/haproxy.cfg"
        install -m 600 "$CLUSTER_DIR/token" "$d/root/etc/cloudha/do-token"
        install -m 600 "$CLUSTER_DIR/seed.xml" "$d/root/var/lib/pacemaker/cib/cib.xml"
        if [ -n "$ocf_tree" ]; then
            mkdir -p "$d/root/usr/lib/ocf"
            cp -a "$ocf_tree" "$d/root/usr/lib/ocf/resource.d"
        fi
    done

    # One fake for both nodes: each node's metadata at 169.254.169.254, the API on each node's
    # loopback, and a main listener here for the admin interface.
    "$fakecloud" --listen 127.0.0.1:0 --token-file "$CLUSTER_DIR/token" --ip "$CLUSTER_IP" \
        --droplet "101@169.254.169.254:80@$n1" --droplet "102@169.254.169.254:80@$n2" \
        --listen "127.0.0.1:$CLUSTER_API_PORT@$n1" --listen "127.0.0.1:$CLUSTER_API_PORT@$n2" \
        --anchor "101=${CLUSTER_ANCHORS[0]}/255.255.0.0" --anchor "102=${CLUSTER_ANCHORS[1]}/255.255.0.0" \
        --action-time "$action_time" --ready-file "$CLUSTER_DIR/fake.ready" \
        > "$CLUSTER_DIR/fake.out" 2>&1 9>&- &
    CLUSTER_FAKE_PID=$!
    for _ in $(seq 1 100); do
        [ -s "$CLUSTER_DIR/fake.ready" ] && break
        kill -0 "$CLUSTER_FAKE_PID" 2>/dev/null || { cat "$CLUSTER_DIR/fake.out" >&2; return 1; }
        sleep 0.1
    done
    CLUSTER_FAKE_URL=$(grep -o '"admin":"[^"]*"' "$CLUSTER_DIR/fake.ready" | cut -d'"' -f4)
    [ -n "$CLUSTER_FAKE_URL" ] || { cluster_log "fakecloud did not start"; return 1; }

    local pid init
    for i in 1 2; do
        setsid ip netns exec "$(cluster_ns node$i)" \
            unshare -m -u -p --fork --mount-proc --propagation private \
            env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            bash "$CLUSTER_LIB_DIR/node.sh" "$CLUSTER_DIR/node$i" "node$i" \
            < /dev/null > /dev/null 2>&1 9>&- &
        pid=$!
        # Not this shell's job any more: its death at a crash is not reported ("Killed ...").
        disown "$pid"
        init=
        for _ in $(seq 1 100); do
            init=$(awk '{print $1}' "/proc/$pid/task/$pid/children" 2>/dev/null)
            [ -n "$init" ] && break
            sleep 0.05
        done
        [ -n "$init" ] || { cluster_log "node$i did not start"; return 1; }
        CLUSTER_INIT[node$i]=$init
    done
    local deadline=$((SECONDS + 60))
    until on node1 crm_mon -1 2>/dev/null | grep -q 'Online: \[ node1 node2 \]'; do
        [ $SECONDS -lt $deadline ] || { cluster_log "the nodes did not come online"; return 1; }
        sleep 0.25
    done
}

on() {
    local node=$1
    shift
    nsenter -t "${CLUSTER_INIT[$node]}" -n -m -u -p -- "$@"
}

# The README's block with the API pointed at the fake (the one change).
cluster_configure() {
    sed "s|api_url=https://api.digitalocean.com|api_url=http://127.0.0.1:$CLUSTER_API_PORT|" \
        "$1" > "$CLUSTER_DIR/configure.crm"
    on "$(cluster_live_node)" crm -w configure load update "$CLUSTER_DIR/configure.crm"
}

cluster_live_node() {
    local n
    for n in node1 node2; do
        if [ -n "${CLUSTER_INIT[$n]:-}" ] && kill -0 "${CLUSTER_INIT[$n]}" 2>/dev/null; then
            echo "$n"
            return
        fi
    done
    return 1
}

fake() {
    if [ "$1" = GET ]; then
        curl -sf "$CLUSTER_FAKE_URL$2"
    else
        curl -sf -X "$1" -d "${3:-}" "$CLUSTER_FAKE_URL$2"
    fi
}

holder() {
    fake GET /_fake/state | grep -o "\"holder\":[0-9a-z]*,\"ip\":\"$CLUSTER_IP\"" \
        | sed 's/"holder":\([0-9a-z]*\),.*/\1/'
}

fip_node() {
    on "$(cluster_live_node)" crm_mon -1 --output-as=xml 2>/dev/null \
        | grep -A1 '<resource id="fip" .*role="Started" active="true".*failed="false"' \
        | grep -o '<node name="[^"]*"' | cut -d'"' -f2 | head -1
}

crash() {
    local init=${CLUSTER_INIT[$1]}
    kill -KILL "$init" 2>/dev/null || true
    ip netns pids "$(cluster_ns "$1")" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
    CLUSTER_INIT[$1]=
}

cluster_traffic() {
    local cloudnet=$1
    mkfifo "$CLUSTER_DIR/traffic.in"
    # It ignores Ctrl-C and stops at the end of its input, which comes when this shell ends
    # however it ends: it always removes its namespaces.
    (trap '' INT TERM HUP; exec "$cloudnet" --node "$(cluster_ns node1)=${CLUSTER_DROPLETS[0]}" \
        --node "$(cluster_ns node2)=${CLUSTER_DROPLETS[1]}" --ip "$CLUSTER_IP" \
        --admin "$CLUSTER_FAKE_URL" --anchor "${CLUSTER_ANCHORS[0]}" --anchor "${CLUSTER_ANCHORS[1]}" \
        < "$CLUSTER_DIR/traffic.in" 9>&-) &
    CLUSTER_TRAFFIC_PID=$!
    exec 8> "$CLUSTER_DIR/traffic.in"
}
traffic() { printf '%s\n' "$*" >&8; }

cluster_down() {
    set +e
    local n init deadline ns
    if [ -n "$CLUSTER_TRAFFIC_PID" ]; then
        exec 8>&-
        wait "$CLUSTER_TRAFFIC_PID" 2>/dev/null
        CLUSTER_TRAFFIC_PID=
    fi
    for n in node1 node2; do
        init=${CLUSTER_INIT[$n]:-}
        [ -n "$init" ] && kill -TERM "$init" 2>/dev/null
    done
    for n in node1 node2; do
        init=${CLUSTER_INIT[$n]:-}
        if [ -n "$init" ]; then
            deadline=$((SECONDS + 30))
            while kill -0 "$init" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
            kill -KILL "$init" 2>/dev/null || true
        fi
        CLUSTER_INIT[$n]=
        if [ -n "$CLUSTER_TAG" ]; then
            ns=$(cluster_ns "$n")
            ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    if [ -n "$CLUSTER_FAKE_PID" ]; then
        kill -TERM "$CLUSTER_FAKE_PID" 2>/dev/null || true
        wait "$CLUSTER_FAKE_PID" 2>/dev/null || true
        CLUSTER_FAKE_PID=
    fi
    if [ -n "$CLUSTER_DIR" ] && [ -z "${CLUSTER_KEEP_LOGS:-}" ]; then
        rm -rf "$CLUSTER_DIR"
    fi
    CLUSTER_DIR=
    exec 9>&-
}
