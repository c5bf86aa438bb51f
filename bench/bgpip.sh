#!/usr/bin/env bash
# bgpip with real FRR in network namespaces (the shape of tests/src/bgp.rs: a route server
# AS 65000 preferring 65000:1, two balancers AS 65001, a client behind the route server):
#  - promote -> the route server's kernel route to the shared IP switches to the promoted node;
#  - the promoted node stops answering (its FRR frozen: only the hold timer notices) or dies
#    (SIGKILL: the kernel closes the session) -> the client's requests land on the other node,
#    with hold_time 9 (keepalive 3) and 3 (keepalive 1);
#  - monitor at depth 0 and 10 (hyperfine), and the share of that which is vtysh itself.
# Writes bench/results-bgpip.md. Run as root on Debian 12 with frr installed.
#   bash bench/bgpip.sh [RUNS] [FAILOVERS]   (hyperfine runs, default 100; failovers each, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
runs=${1:-100}
failovers=${2:-3}
out=bench/results-bgpip.md

# shellcheck source=bench/lib.sh
. bench/lib.sh
bench_require_root "it makes network namespaces and runs FRR"
bench_tools curl frr:/usr/lib/frr/bgpd haproxy:/usr/sbin/haproxy
# bgpip alone, as the Makefile builds it.
cargo build --release --locked -p bgpip >/dev/null 2>&1
agent=$(realpath "${CARGO_TARGET_DIR:-target}/release")/bgpip

tag=cloudha-bench-bgp-$$
rs=$tag-rs
cl=$tag-cl
b=("$tag-b1" "$tag-b2")
rs_addr=(2001:db8:34::1 2001:db8:35::1)
b_addr=(2001:db8:34::11 2001:db8:35::12)
ip_=203.0.113.77
work=$(mktemp -d)
json=$work/json
mkdir -p "$json"
cleanup() {
    for ns in "${b[@]}" "$rs" "$cl"; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$p" 2>/dev/null || true; kill -KILL "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/frr/$ns" "/var/run/frr/$ns"
    done
    umount "$work/rsc" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

for ns in "$rs" "$cl" "${b[@]}"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$rs" link add cl type veth peer name eth0 netns "$cl"
ip -n "$rs" addr add 198.51.100.1/24 dev cl; ip -n "$rs" link set cl up
ip -n "$cl" addr add 198.51.100.2/24 dev eth0; ip -n "$cl" link set eth0 up
ip -n "$cl" route add default via 198.51.100.1
ip netns exec "$rs" sysctl -qw net.ipv4.ip_forward=1
for i in 0 1; do
    ip -n "$rs" link add "b$((i + 1))" type veth peer name rs0 netns "${b[$i]}"
    ip netns exec "$rs" sysctl -qw "net.ipv6.conf.b$((i + 1)).accept_ra=0"
    ip netns exec "${b[$i]}" sysctl -qw net.ipv6.conf.rs0.accept_ra=0 net.ipv6.conf.rs0.autoconf=0
    ip -n "$rs" addr add "${rs_addr[$i]}/64" dev "b$((i + 1))" nodad; ip -n "$rs" link set "b$((i + 1))" up
    ip -n "${b[$i]}" addr add "${b_addr[$i]}/64" dev rs0 nodad; ip -n "${b[$i]}" link set rs0 up
    ip -n "${b[$i]}" route add 198.51.100.0/24 via inet6 "${rs_addr[$i]}" dev rs0
    ip -n "${b[$i]}" addr add "$ip_/32" dev lo
    sed -e "s/@ANCHOR@/$ip_/" -e "s/@NODE@/b$((i + 1))/" tests/cluster/haproxy.cfg.in > "$work/haproxy-$i.cfg"
    ip netns exec "${b[$i]}" haproxy -D -f "$work/haproxy-$i.cfg"
done

frr_start() { # ns config
    install -d -o frr -g frr -m 755 "/etc/frr/$1" "/var/run/frr/$1"
    printf '%s\n' "$2" | install -o frr -g frr -m 640 /dev/stdin "/etc/frr/$1/frr.conf"
    install -o frr -g frr -m 640 /dev/null "/etc/frr/$1/vtysh.conf"
    for d in zebra bgpd; do
        ip netns exec "$1" "/usr/lib/frr/$d" -d -A 127.0.0.1 -N "$1" -f "/etc/frr/$1/frr.conf" >/dev/null 2>&1
    done
    for _ in $(seq 1 100); do ip netns exec "$1" vtysh -N "$1" -c 'show bgp summary json' >/dev/null 2>&1 && return; sleep 0.1; done
    echo "FRR in $1 does not answer" >&2; exit 1
}
frr_signal() { # ns signal daemon...
    local ns=$1 sig=$2; shift 2
    for d in "$@"; do kill "-$sig" "$(cat "/var/run/frr/$ns/$d.pid")"; done
}
frr_start "$rs" "frr defaults traditional
ip forwarding
router bgp 65000
 bgp router-id 192.0.2.1
 no bgp ebgp-requires-policy
 neighbor ${b_addr[0]} remote-as 65001
 neighbor ${b_addr[0]} capability extended-nexthop
 neighbor ${b_addr[0]} timers connect 1
 neighbor ${b_addr[1]} remote-as 65001
 neighbor ${b_addr[1]} capability extended-nexthop
 neighbor ${b_addr[1]} timers connect 1
 address-family ipv4 unicast
  neighbor ${b_addr[0]} route-map prefer-primary in
  neighbor ${b_addr[1]} route-map prefer-primary in
 exit-address-family
exit
bgp community-list standard primary permit 65000:1
bgp community-list standard secondary permit 65000:2
route-map prefer-primary permit 10
 match community primary
 set local-preference 200
exit
route-map prefer-primary permit 20
 match community secondary
 set local-preference 100
exit
route-map prefer-primary permit 30
exit"
for i in 0 1; do
    frr_start "${b[$i]}" "frr defaults traditional
router bgp 65001
 bgp router-id 192.0.2.$((11 + i))
exit"
done

mkdir -p "$work/rsc"
mount -t tmpfs -o size=4m,mode=0750 cloudha-bench "$work/rsc"
hold=9
keepalive=3
vars() { # i
    echo OCF_ROOT=/usr/lib/ocf OCF_RESOURCE_INSTANCE=vip HA_RSCTMP="$work/rsc/$1" \
        OCF_RESKEY_CRM_meta_timeout=30000 OCF_RESKEY_CRM_meta_interval=10000 \
        OCF_RESKEY_ip=$ip_ OCF_RESKEY_peers="${rs_addr[$1]}" OCF_RESKEY_frr_instance="${b[$1]}" \
        OCF_RESKEY_hold_time="$hold" OCF_RESKEY_keepalive="$keepalive" PATH="$PATH"
}
mkdir -p "$work/rsc/0" "$work/rsc/1"
agent_do() { # i action [VAR=value...]
    local i=$1 a=$2; shift 2
    # shellcheck disable=SC2046 # vars prints words, one per variable
    ip netns exec "${b[$i]}" env -i $(vars "$i") "$@" "$agent" "$a" >/dev/null 2>&1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# Which balancer the route server's kernel route to the shared IP leads to (b1, b2 or none).
rs_route() { ip -n "$rs" route show "$ip_/32" | grep -o 'dev b[12]' | cut -c5- || true; }
client() { ip netns exec "$cl" curl -s -m 0.5 "http://$ip_/" 2>/dev/null || true; }
wait_for() { # seconds command...: poll every 5 ms until the command's output is non-empty
    local end=$(($(now_ms) + $1 * 1000)); shift
    while [ "$(now_ms)" -lt "$end" ]; do [ -n "$("$@")" ] && return 0; sleep 0.005; done
    return 1
}
route_is() { [ "$(rs_route)" = "$1" ] && echo yes; }
client_is() { [ "$(client)" = "$1" ] && echo yes; }
two_paths() {
    ip netns exec "$rs" vtysh -N "$rs" -c "show bgp ipv4 unicast $ip_/32 json" | jq -e '.paths | length == 2' >/dev/null && echo yes
}
median() { sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR + 1) / 2]; else print int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'; }

agent_do 0 start; agent_do 1 start
wait_for 30 two_paths || { echo "sessions did not come up" >&2; exit 1; }

# 1. promote -> the route server's route switches. Each round promotes the balancer the route
# does not lead to, then demotes it again.
promote_ms=()
switch_ms=()
for _ in $(seq 1 10); do
    cur=$(rs_route)
    if [ "$cur" = b1 ]; then n=1; else n=0; fi
    t0=$(now_ms)
    agent_do "$n" promote &
    wait_for 10 route_is "b$((n + 1))" || { echo "route did not switch" >&2; exit 1; }
    switch_ms+=($(($(now_ms) - t0)))
    wait $!
    promote_ms+=($(($(now_ms) - t0)))
    agent_do "$n" demote
    sleep 0.5
done
promote_med=$(printf '%s\n' "${promote_ms[@]}" | median)
switch_med=$(printf '%s\n' "${switch_ms[@]}" | median)

# 2. failover: b1 promoted; it freezes (FRR stopped) or dies (bgpd and zebra killed); time until
# the client's requests land on b2, which only announces the secondary community (no Pacemaker
# here to promote it: the route servers fall back by themselves).
failover() { # mode: freeze | kill
    local mode=$1 t0 ms
    agent_do 0 promote
    wait_for 20 client_is b1 || { echo "client does not reach b1" >&2; exit 1; }
    t0=$(now_ms)
    if [ "$mode" = freeze ]; then frr_signal "${b[0]}" STOP bgpd zebra; else frr_signal "${b[0]}" KILL bgpd zebra; fi
    wait_for 60 client_is b2 || { echo "client never reached b2" >&2; exit 1; }
    ms=$(($(now_ms) - t0))
    if [ "$mode" = freeze ]; then
        frr_signal "${b[0]}" CONT bgpd zebra
    else
        frr_start "${b[0]}" "frr defaults traditional
router bgp 65001
 bgp router-id 192.0.2.11
exit"
        agent_do 0 stop
        agent_do 0 start
    fi
    wait_for 60 two_paths >/dev/null || { echo "b1's session did not come back" >&2; exit 1; }
    echo "$ms"
}
declare -A fo=()
for h in "9 3" "3 1"; do
    read -r hold keepalive <<<"$h"
    agent_do 0 stop; agent_do 1 stop
    agent_do 0 start; agent_do 1 start
    wait_for 30 two_paths || { echo "sessions did not come up (hold $hold)" >&2; exit 1; }
    for mode in freeze kill; do
        r=()
        for _ in $(seq 1 "$failovers"); do r+=("$(failover "$mode")"); done
        fo[$hold-$mode]="$(printf '%s\n' "${r[@]}" | median) ms (runs: ${r[*]})"
    done
done
hold=9
keepalive=3

# 3. monitor cost, promoted instance at depth 0 and 10, and vtysh alone doing the same reads.
# A promoted monitor exits 8 (hyperfine -i accepts it): checked first, at both depths.
agent_do 0 promote
for depth in 0 10; do
    rc=0
    agent_do 0 monitor OCF_CHECK_LEVEL=$depth || rc=$?
    [ "$rc" = 8 ] || { echo "monitor at depth $depth: $rc, not 8" >&2; exit 1; }
done
bench() { # name command (run inside b1's namespace, environment of the agent)
    local name=$1; shift
    # shellcheck disable=SC2046
    ip netns exec "${b[0]}" env -i $(vars 0) "$@" hyperfine -N -i --warmup 10 --runs "$runs" \
        --export-json "$json/$name.json" "$cmd" >/dev/null 2>&1
}
median_ms() { jq -r '.results[0].median * 1000' "$json/$1.json"; }
cmd="$agent monitor"; bench mon0 OCF_CHECK_LEVEL=0
cmd="$agent monitor"; bench mon10 OCF_CHECK_LEVEL=10
cmd="vtysh -N ${b[0]} -c 'show bgp ipv4 unicast $ip_/32 json'"; bench vty0
cmd="vtysh -N ${b[0]} -c 'show bgp ipv4 unicast $ip_/32 json' -c 'show bgp peer-group CLOUDHA json'"; bench vty10
rss() { # peak RSS (KiB) of the agent's monitor at a depth, largest of 5
    local max=0 r
    for _ in 1 2 3 4 5; do
        # shellcheck disable=SC2046
        r=$(ip netns exec "${b[0]}" env -i $(vars 0) OCF_CHECK_LEVEL="$1" /usr/bin/time -f %M "$agent" monitor 2>&1 >/dev/null | tail -1)
        [ "$r" -gt "$max" ] && max=$r
    done
    echo "$max"
}
rss0=$(rss 0)
rss10=$(rss 10)
agent_do 0 stop; agent_do 1 stop

m0=$(median_ms mon0); m10=$(median_ms mon10); v0=$(median_ms vty0); v10=$(median_ms vty10)
share() { awk -v v="$1" -v m="$2" 'BEGIN { printf "%.0f %%", 100 * v / m }'; }
ms2() { awk -v v="$1" 'BEGIN { printf "%.2f ms", v }'; }
{
    echo "## bgpip (FRR)"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), FRR $(dpkg-query -W -f='${Version}' frr)." \
        "Release build; real FRR (zebra + bgpd) in network namespaces: a route server (AS 65000," \
        "local-preference 200 for 65000:1, 100 for 65000:2), two balancers (AS 65001) on veth links," \
        "a client behind the route server asking HAProxy on the shared IP who it is (curl)." \
        "Load average (1 min) at the end $(cut -d' ' -f1 /proc/loadavg). Command: \`bash bench/bgpip.sh\`."
    echo
    echo "| promote (median of 10) | ms |"
    echo "| --- | --- |"
    echo "| promote issued -> the route server's kernel route leads to the promoted node | $switch_med |"
    echo "| the promote action, whole (it also waits for a route server to have the announcement) | $promote_med |"
    echo
    echo "Failover without Pacemaker: the promoted node stops (its FRR frozen with SIGSTOP, as a hung"
    echo "machine: only the hold timer notices) or its bgpd and zebra are killed (the kernel closes"
    echo "the session at once); time until the client's requests land on the other node, which"
    echo "announces the secondary community. Median of $failovers (every run in brackets)."
    echo
    echo "| hold / keepalive | node frozen | bgpd killed |"
    echo "| --- | --- | --- |"
    echo "| 9 s / 3 s | ${fo[9-freeze]} | ${fo[9-kill]} |"
    echo "| 3 s / 1 s | ${fo[3-freeze]} | ${fo[3-kill]} |"
    echo
    echo "| monitor, promoted (median of $runs, hyperfine -N) | agent | vtysh alone, same reads | vtysh's share | agent peak RSS |"
    echo "| --- | --- | --- | --- | --- |"
    echo "| depth 0 (one vtysh, 1 command) | $(ms2 "$m0") | $(ms2 "$v0") | $(share "$v0" "$m0") | $(awk -v k="$rss0" 'BEGIN { printf "%.1f MiB", k / 1024 }') |"
    echo "| depth 10 (one vtysh, 2 commands) | $(ms2 "$m10") | $(ms2 "$v10") | $(share "$v10" "$m10") | $(awk -v k="$rss10" 'BEGIN { printf "%.1f MiB", k / 1024 }') |"
    echo
    echo "Peak RSS: GNU time's %M, the largest of the agent and the vtysh it ran and reaped (the"
    echo "getrusage maximum covers waited-for children): vtysh's, mostly. The agent's time beyond vtysh's"
    echo "is its own start and the parsing: it reads vtysh's output until it ends (common/src/child.rs),"
    echo "no polling of the child (before that change, waits backing off to 20 ms cost 20-27 ms)."
} >"$out"
cat "$out"
