#!/usr/bin/env bash
# `make install DESTDIR=…` puts each agent, mode 0755, where Pacemaker looks for it.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
make -s install DESTDIR="$dest" >/dev/null
fail=0
for a in anchorip floatip haproxy bgpip; do
    f="$dest/usr/lib/ocf/resource.d/cloudha/$a"
    mode=$(stat -c %a "$f" 2>/dev/null || echo missing)
    if [ "$mode" != 755 ]; then echo "FAIL $f: mode $mode"; fail=1; fi
done
link="$dest/usr/lib/ocf/resource.d/digitalocean/floatip"
if [ "$(readlink -f "$link")" != "$(readlink -f "$dest/usr/lib/ocf/resource.d/cloudha/floatip")" ]; then
    echo "FAIL $link does not lead to cloudha/floatip"; fail=1
fi
"$link" meta-data | grep -q '<resource-agent name="floatip"' || { echo "FAIL $link meta-data"; fail=1; }
if [ "$fail" = 0 ]; then
    echo "install: 5 passed, 0 failed"
else
    echo "install: failed"
    exit 1
fi
