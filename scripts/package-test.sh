#!/usr/bin/env bash
# The Debian package, built and used as a user would: installs the build and test dependencies,
# builds cloudha-agents with dpkg-buildpackage (from a copy of this tree), runs lintian, installs
# it with apt-get, runs ocf-tester, crm_resource, crm, pcs and man on the installed files, then
# removes and purges it and checks that nothing is left. Run as root on Debian 12.
# Ends with `package: N passed, M failed`; exits non-zero on any failure. Everything it makes
# (network namespace, processes, files, the installed package) is undone on exit, also on failure.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
export PATH="$PATH:$HOME/.cargo/bin"
export DEBIAN_FRONTEND=noninteractive

AGENTS=(anchorip floatip haproxy bgpip)
PKG=cloudha-agents
OCF=/usr/lib/ocf/resource.d
COMPAT=$OCF/digitalocean/floatip
# Where the built .deb, .changes and build log are kept (gitignored).
OUT=${PACKAGE_OUT:-$repo/target/debian}

BUILD_DEPS=(dpkg-dev debhelper fakeroot build-essential docbook-xsl xsltproc lintian)
TEST_DEPS=(pacemaker pacemaker-cli-utils crmsh pcs resource-agents haproxy libxml2-utils
           iproute2 man-db procps)

if [ "$(id -u)" -ne 0 ]; then
    echo "package-test.sh: run as root (it installs packages and makes network namespaces)" >&2
    exit 4
fi

passed=0
failed=0
failures=()
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() {
    failed=$((failed + 1))
    failures+=("$1")
    echo "FAIL $1"
    [ -n "${2:-}" ] && [ -s "$2" ] && sed 's/^/     | /' "$2" | tail -n 40
    return 0
}
# check NAME COMMAND...: run it, output to a log shown on failure.
check() {
    local name=$1 log
    shift
    log=$(mktemp -p "$work" log.XXXXXX)
    if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name" "$log"; fi
}
finish() {
    echo
    [ "$failed" -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
    echo "package: $passed passed, $failed failed"
}

# --- cleanup of everything this script makes, on any exit -------------------------------------
work=$(mktemp -d /tmp/cloudha-package-test.XXXXXX)
chmod 755 "$work"
# The package is built in a copy of the tree kept beside cargo's output: a fixed path keeps
# cargo's and the C compiler's caches valid from one run to the next (dpkg's CFLAGS carry the
# build path); the lock below keeps two runs apart.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$repo/target}
build=$CARGO_TARGET_DIR/debian-build
netns=""
guard_placed=0
fake_compat=0
pids=()
cleanup() {
    local rc=$?
    set +e
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    # haproxy started by the agent under test leaves its process group: find it by its config.
    [ -f "$work/haproxy/haproxy.pid" ] && kill "$(cat "$work/haproxy/haproxy.pid")" 2>/dev/null
    for p in $(pgrep -a -x haproxy | grep -F "$work/haproxy/haproxy.cfg" | cut -d' ' -f1); do
        kill "$p" 2>/dev/null
    done
    [ -n "$netns" ] && ip netns del "$netns" 2>/dev/null
    if dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'installed'; then
        apt-get purge -y -q "$PKG" >/dev/null 2>&1 || dpkg --purge "$PKG" >/dev/null 2>&1
    fi
    if [ "$fake_compat" = 1 ]; then
        rm -f "$COMPAT" /var/backups/cloudha-agents/digitalocean-floatip
        rmdir "$OCF/digitalocean" /var/backups/cloudha-agents 2>/dev/null
    fi
    [ "$guard_placed" = 1 ] && rm -f /usr/sbin/policy-rc.d
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"; finish; exit 130' INT TERM

# Keep package scripts from starting corosync, pacemaker or haproxy (as scripts/deps.sh does).
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    guard_placed=1
fi

# One run at a time: this installs and purges a system package.
exec 9>/tmp/cloudha-package-test.lock
flock 9

# --- dependencies ----------------------------------------------------------------------------
missing=()
for p in "${BUILD_DEPS[@]}" "${TEST_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } \
            > "$work/apt-deps.log" 2>&1; then
        fail "install dependencies" "$work/apt-deps.log"
        finish
        exit 1
    fi
fi
command -v cargo >/dev/null || { fail "cargo on PATH or in ~/.cargo/bin (install Rust with rustup)"; finish; exit 1; }

# --- build -----------------------------------------------------------------------------------
# From a copy of the tree (what git would commit: tracked and new files, not ignored ones), so
# the shared working tree gets no build debris. The copy is kept in the target directory and
# updated in place: a file whose content changed is rewritten (so it is newer than the last
# build, and cargo rebuilds it), an unchanged one keeps its time (no needless rebuild).
sync_tree() {
    local src=$1 dst=$2 f
    mkdir -p "$dst"
    if git -C "$src" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$src" && git ls-files -z --cached --others --exclude-standard) > "$work/tree"
    else # an unpacked source tarball: everything but cargo's output
        (cd "$src" && find . -path ./target -prune -o \( -type f -o -type l \) -printf '%P\0') > "$work/tree"
    fi
    while IFS= read -r -d '' f; do
        if [ -L "$src/$f" ]; then
            [ "$(readlink "$src/$f")" = "$(readlink "$dst/$f" 2>/dev/null)" ] && continue
            mkdir -p "$(dirname "$dst/$f")" && rm -rf "${dst:?}/$f" && cp -P "$src/$f" "$dst/$f" || return 1
        elif [ -f "$src/$f" ]; then
            cmp -s "$src/$f" "$dst/$f" && [ ! -L "$dst/$f" ] && continue
            mkdir -p "$(dirname "$dst/$f")" && rm -rf "${dst:?}/$f" && cp "$src/$f" "$dst/$f" || return 1
            chmod --reference="$src/$f" "$dst/$f"
        fi
    done < "$work/tree"
    # Files gone from the tree go from the copy (debian/rules clean removes build products).
    (cd "$dst" && find . \( -type f -o -type l \) -printf '%P\0') | while IFS= read -r -d '' f; do
        [ -e "$src/$f" ] || [ -L "$src/$f" ] || rm -f "${dst:?}/$f"
    done
}
echo "== dpkg-buildpackage"
rm -f "$build"/*.deb "$build"/*.ddeb "$build"/*.changes "$build"/*.buildinfo
sync_tree "$repo" "$build/cloudha" || { fail "copy the source tree to $build/cloudha"; finish; exit 1; }
mkdir -p "$OUT"
if (cd "$build/cloudha" && dpkg-buildpackage -b -us -uc) > "$OUT/build.log" 2>&1; then
    pass "dpkg-buildpackage -b -us -uc"
else
    fail "dpkg-buildpackage -b -us -uc (log: $OUT/build.log)" "$OUT/build.log"
    finish
    exit 1
fi
version=$(cd "$build/cloudha" && dpkg-parsechangelog -S Version)
arch=$(dpkg --print-architecture)
deb="$build/${PKG}_${version}_${arch}.deb"
changes="$build/cloudha_${version}_${arch}.changes"
rm -f "$OUT"/*.deb "$OUT"/*.changes "$OUT"/*.buildinfo
cp "$build"/*.deb "$build"/*.changes "$build"/*.buildinfo "$OUT/"
check "built $(basename "$deb")" test -s "$deb"

# lintian: errors fail; warnings and info are shown (see docs/package.md for the known ones).
# Not as root (lintian advises against it): as nobody, on world-readable files.
mkdir -p "$work/lintian"
cp "$deb" "$changes" "$build"/*.buildinfo "$work/lintian/"
chmod -R a+rX "$work/lintian"
install -d -o nobody "$work/lintian-home"
runuser -u nobody -- env HOME="$work/lintian-home" \
    lintian --fail-on error --display-info "$work/lintian/$(basename "$changes")" \
    > "$work/lintian.log" 2>&1
lint_rc=$?
sed 's/^/     lintian: /' "$work/lintian.log"
if [ "$lint_rc" = 0 ]; then pass "lintian: no errors"; else fail "lintian: errors (exit $lint_rc)"; fi

# What the .deb holds, before installing it.
dpkg-deb -c "$deb" > "$work/contents"
for a in "${AGENTS[@]}"; do
    check "deb has $OCF/cloudha/$a 0755" \
        grep -qE "^-rwxr-xr-x root/root .* \./usr/lib/ocf/resource\.d/cloudha/$a\$" "$work/contents"
    check "deb has ocf_cloudha_$a.7.gz" \
        grep -q "\./usr/share/man/man7/ocf_cloudha_$a\.7\.gz\$" "$work/contents"
done
check "deb has the compat symlink digitalocean/floatip -> ../cloudha/floatip" \
    grep -q "\./usr/lib/ocf/resource\.d/digitalocean/floatip -> \.\./cloudha/floatip\$" "$work/contents"
check "deb has its copyright file" grep -q "\./usr/share/doc/$PKG/copyright\$" "$work/contents"
check "deb has its changelog" grep -q "\./usr/share/doc/$PKG/changelog\.gz\$" "$work/contents"
check "deb lists the Rust crates linked in, with their licenses" \
    grep -q "\./usr/share/doc/$PKG/rust-crates\.txt\.gz\$" "$work/contents"
check "Depends: the C library, not pacemaker nor haproxy" bash -c "
    d=\$(dpkg-deb -f '$deb' Depends); echo \"Depends: \$d\"
    echo \"\$d\" | grep -q 'libc6' && ! echo \"\$d\" | grep -q 'haproxy\|pacemaker'"
check "Recommends pacemaker, Suggests haproxy" bash -c "
    dpkg-deb -f '$deb' Recommends | grep -q '^pacemaker' && dpkg-deb -f '$deb' Suggests | grep -q 'haproxy'"

# --- install, with a hand-installed tutorial agent in the way ---------------------------------
# The tests that put an agent in the real /usr/lib/ocf tree hold this lock (cloudha_tests::
# global_lock("ocf-root")); hold it too from install to purge (it is released on exit).
exec 8>/tmp/cloudha-test-ocf-root.lock
flock 8
if [ ! -e "$COMPAT" ] && [ ! -L "$COMPAT" ]; then
    mkdir -p "$OCF/digitalocean"
    printf '#!/bin/sh\n# the tutorial floatip, copied by hand (made by package-test.sh)\nexit 0\n' > "$COMPAT"
    chmod 755 "$COMPAT"
    fake_compat=1
fi
echo "== apt-get install $deb"
if apt-get install -y -q "$deb" > "$work/install.log" 2>&1; then
    pass "apt-get install ./$(basename "$deb")"
else
    fail "apt-get install ./$(basename "$deb")" "$work/install.log"
    finish
    exit 1
fi
dpkg -L "$PKG" | sort > "$work/files"
for a in "${AGENTS[@]}"; do
    check "installed $OCF/cloudha/$a mode 0755" test "$(stat -c %a "$OCF/cloudha/$a")" = 755
done
check "ocf:digitalocean:floatip leads to cloudha/floatip" \
    test "$(readlink -f "$COMPAT")" = "$OCF/cloudha/floatip"
check "installed /usr/sbin/fence_cloudha mode 0755" test "$(stat -c %a /usr/sbin/fence_cloudha)" = 755
check "stonith_admin --list-installed knows fence_cloudha" \
    bash -c "stonith_admin --list-installed | grep -qx ' *fence_cloudha'"
check "stonith_admin --metadata -a fence_cloudha" \
    bash -c "stonith_admin --metadata -a fence_cloudha | grep -q '<parameter name=\"api_token_file\"'"
check "man -l fence_cloudha.8.gz" \
    bash -c "MANWIDTH=80 man -l /usr/share/man/man8/fence_cloudha.8.gz | grep -qE 'fence_cloudha +- '"
if [ "$fake_compat" = 1 ]; then
    check "the hand-installed digitalocean/floatip was kept in /var/backups" \
        grep -q 'copied by hand' /var/backups/cloudha-agents/digitalocean-floatip
fi

# Reinstalling (preinst upgrade) leaves the link and the kept tutorial agent as they are.
check "apt-get install --reinstall ./$(basename "$deb")" apt-get install -y -q --reinstall "$deb"
check "after reinstall: ocf:digitalocean:floatip still leads to cloudha/floatip" \
    test "$(readlink -f "$COMPAT")" = "$OCF/cloudha/floatip"
if [ "$fake_compat" = 1 ]; then
    check "after reinstall: the kept tutorial agent is still in /var/backups" \
        grep -q 'copied by hand' /var/backups/cloudha-agents/digitalocean-floatip
fi

# --- the installed agents under the real tools ------------------------------------------------
# ocf-tester NAME PATH NETNS PARAM...   (NETNS empty: run here)
ocf_tester() {
    local name=$1 agent=$2 ns=$3
    shift 3
    local args=(-n "$name")
    for kv in "$@"; do args+=(-o "$kv"); done
    if [ -n "$ns" ]; then
        ip netns exec "$ns" ocf-tester "${args[@]}" "$agent"
    else
        ocf-tester "${args[@]}" "$agent"
    fi
}
ocf_tester_check() {
    local label=$1 log
    shift
    log=$(mktemp -p "$work" log.XXXXXX)
    ocf_tester "$@" > "$log" 2>&1
    if grep -q 'passed all tests' "$log"; then
        pass "$label"
    else
        fail "$label (ocf-tester's output below)" "$log"
    fi
}

# anchorip and haproxy run in a network namespace of our own (nothing else listens there).
netns="cloudha-pkgtest-$$"
ip netns add "$netns"
ip -n "$netns" link set lo up

# anchorip: an explicit address on lo (a shared IP: without nic it would go on the interface
# whose subnet holds it, and this namespace has none).
anchor=10.17.1.18
ocf_tester_check "ocf-tester ocf:cloudha:anchorip (in netns $netns)" \
    pkgtest-anchorip "$OCF/cloudha/anchorip" "$netns" ip=$anchor nic=lo
check "anchorip: ocf-tester's last stop left no $anchor on lo" \
    bash -c "! ip -n '$netns' -o addr show dev lo | grep -qw '$anchor'"

# haproxy: a small loopback configuration in a temporary directory.
mkdir -p "$work/haproxy"
cat > "$work/haproxy/haproxy.cfg" <<EOF
global
    maxconn 100
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend fe
    bind 127.0.0.1:8080
    default_backend be
backend be
    server s1 127.0.0.1:8081
EOF
chmod 644 "$work/haproxy/haproxy.cfg"
ocf_tester_check "ocf-tester ocf:cloudha:haproxy (in netns $netns)" \
    pkgtest-haproxy "$OCF/cloudha/haproxy" "$netns" \
    config="$work/haproxy/haproxy.cfg" pidfile="$work/haproxy/haproxy.pid" \
    master_socket="$work/haproxy/master.sock"
check "haproxy: ocf-tester's last stop left no HAProxy running" \
    bash -c "! pgrep -a -x haproxy | grep -F '$work/haproxy/haproxy.cfg'"

# floatip: against the fake cloud (tests/src/bin/fakecloud.rs, docs/fakecloud.md) on loopback.
# This node is droplet 111; the IP starts on droplet 222, so start really moves it.
float_ip=203.0.113.7
fake_log="$work/fakecloud.log"
if (cd "$repo" && cargo build -q --locked -p cloudha-tests --bin fakecloud) > "$fake_log" 2>&1; then
    fake_bin="$CARGO_TARGET_DIR/debug/fakecloud"
    token="pkgtest-token-$$"
    printf '%s\n' "$token" > "$work/do-token"
    chmod 600 "$work/do-token"
    "$fake_bin" --token-file "$work/do-token" --ip "$float_ip=222" --droplet 111 --droplet 222 \
        --ready-file "$work/fake.ready" > "$fake_log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$work/fake.ready" ] && break; sleep 0.1; done
    api_url=$(grep -o '"api":\["[^"]*"' "$work/fake.ready" 2>/dev/null | cut -d'"' -f4)
    md_url=$(grep -o '"111":\["[^"]*"' "$work/fake.ready" 2>/dev/null | cut -d'"' -f4)
    if [ -n "$api_url" ] && [ -n "$md_url" ]; then
        pass "fakecloud ready: API $api_url, metadata $md_url"
        ocf_tester_check "ocf-tester ocf:cloudha:floatip (fake cloud)" \
            pkgtest-floatip "$OCF/cloudha/floatip" "" \
            ip=$float_ip api_token_file="$work/do-token" api_url="$api_url" metadata_url="$md_url"
        # The tutorial's name and parameters (do_token, floating_ip), through the package's link.
        ocf_tester_check "ocf-tester ocf:digitalocean:floatip with do_token and floating_ip" \
            pkgtest-dofloatip "$COMPAT" "" \
            floating_ip=$float_ip do_token="$token" api_url="$api_url" metadata_url="$md_url"
    else
        fail "fakecloud did not get ready" "$fake_log"
    fi
else
    fail "cargo build -p cloudha-tests --bin fakecloud" "$fake_log"
fi

for a in "${AGENTS[@]}"; do
    check "crm_resource --show-metadata ocf:cloudha:$a" \
        bash -c "crm_resource --show-metadata ocf:cloudha:$a | grep -q '<resource-agent name=\"$a\"'"
    check "crm ra info ocf:cloudha:$a" \
        bash -c "crm ra info ocf:cloudha:$a | grep -q 'ocf:cloudha:$a'"
    check "pcs resource describe ocf:cloudha:$a" \
        bash -c "pcs resource describe ocf:cloudha:$a | grep -q '^Resource options:\|ocf:cloudha:$a'"
done
check "crm_resource --show-metadata ocf:digitalocean:floatip" \
    bash -c "crm_resource --show-metadata ocf:digitalocean:floatip | grep -q '<parameter name=\"do_token\"'"

# man -l of each installed page: renders, names the agent, and groff has nothing to say.
for a in "${AGENTS[@]}"; do
    page=/usr/share/man/man7/ocf_cloudha_$a.7.gz
    check "man -l $page" bash -c "
        out=\$(MANWIDTH=80 man --warnings -l '$page' 2>&1 >'$work/man-$a.txt') || exit 1
        [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }
        grep -q 'ocf_cloudha_$a - ' '$work/man-$a.txt' && grep -q 'SUPPORTED PARAMETERS' '$work/man-$a.txt'"
done
# The page is the installed agent's meta-data: every parameter and action it declares is an
# entry there (a term, indented 7 columns, alone on its line).
man_documents() {
    local a=$1 names n
    names=$("$OCF/cloudha/$a" meta-data | xmllint --xpath '//parameter/@name | //action/@name' - \
        | grep -o 'name="[^"]*"' | cut -d'"' -f2 | sort -u)
    [ -n "$names" ] || { echo "no names in $a's meta-data"; return 1; }
    for n in $names; do
        grep -qxF "       $n" "$work/man-$a.txt" || { echo "not in the page: $n"; return 1; }
    done
    echo "$(wc -w <<<"$names") names, all documented"
}
for a in "${AGENTS[@]}"; do
    check "ocf_cloudha_$a(7) documents every parameter and action of the installed agent" \
        man_documents "$a"
done
check "man -l ocf_digitalocean_floatip.7.gz (alias page)" \
    bash -c "MANWIDTH=80 man -l /usr/share/man/man7/ocf_digitalocean_floatip.7.gz | grep -q 'ocf_cloudha_floatip - '"

# --- remove and purge --------------------------------------------------------------------------
# Every file and link the package installed must be gone; a directory may stay only if another
# package owns it too.
leftovers() {
    local f left=0
    while IFS= read -r f; do
        [ "$f" = "/." ] && continue
        if [ -d "$f" ] && [ ! -L "$f" ]; then
            [ -z "$(dpkg-query -S "$f" 2>/dev/null)" ] && { echo "left: directory $f"; left=1; }
        elif [ -e "$f" ] || [ -L "$f" ]; then
            echo "left: $f"
            left=1
        fi
    done < "$work/files"
    return $left
}
echo "== apt-get remove, purge"
check "apt-get remove $PKG" apt-get remove -y -q "$PKG"
if [ "$fake_compat" = 1 ]; then
    check "after remove: the hand-installed digitalocean/floatip is back" \
        bash -c "grep -q 'copied by hand' '$COMPAT' && [ ! -e /var/backups/cloudha-agents ]"
    rm -f "$COMPAT" /var/backups/cloudha-agents/digitalocean-floatip
    rmdir "$OCF/digitalocean" /var/backups/cloudha-agents 2>/dev/null
    fake_compat=0
fi
check "after remove: nothing of the package is left" leftovers
check "apt-get purge $PKG" apt-get purge -y -q "$PKG"
check "after purge: dpkg -l shows nothing" bash -c "! dpkg -l '$PKG' 2>/dev/null | grep -q '^[a-z][a-z] '"
check "after purge: dpkg keeps no control files" \
    bash -c "! ls /var/lib/dpkg/info/$PKG.* 2>/dev/null | grep -q ."
check "after purge: nothing of the package is left" leftovers
check "after purge: no /var/backups/cloudha-agents" test ! -e /var/backups/cloudha-agents

finish
[ "$failed" = 0 ]
