#!/usr/bin/env bash
# `make install DESTDIR=…` puts each agent, mode 0755, where Pacemaker looks for it, and the fence
# agent where pacemaker-fenced looks for it, with its man page. Prints the checks that passed and
# failed.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" >/dev/null
passed=0
failed=0
check() { # WHAT COMMAND...: one check
    local what=$1
    shift
    if "$@"; then passed=$((passed + 1)); else echo "FAIL $what"; failed=$((failed + 1)); fi
}
mode_is_755() { [ "$(stat -c %a "$1" 2>/dev/null || echo missing)" = 755 ]; }
for a in anchorip floatip haproxy bgpip; do
    check "$a: mode 0755 in cloudha/" mode_is_755 "$dest/usr/lib/ocf/resource.d/cloudha/$a"
done
link="$dest/usr/lib/ocf/resource.d/digitalocean/floatip"
same_file() { [ "$(readlink -f "$1")" = "$(readlink -f "$2")" ]; }
check "$link leads to cloudha/floatip" same_file "$link" "$dest/usr/lib/ocf/resource.d/cloudha/floatip"
says() { "${@:2}" 2>/dev/null | grep -q "$1"; }
check "$link meta-data" says '<resource-agent name="floatip"' "$link" meta-data
fence="$dest/usr/sbin/fence_cloudha"
check "fence_cloudha: mode 0755 in /usr/sbin" mode_is_755 "$fence"
check "fence_cloudha metadata" says '<resource-agent name="fence_cloudha"' "$fence" -o metadata
check "fence_cloudha(8)" test -f "$dest/usr/share/man/man8/fence_cloudha.8"
echo "install: $passed passed, $failed failed"
[ "$failed" = 0 ]
