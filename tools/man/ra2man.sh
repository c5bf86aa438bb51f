#!/bin/sh
# ra2man.sh: the man page ocf_<provider>_<agent>(7) of each agent, generated from the agent's own
# meta-data (agent meta-data | ra2refentry.xsl | DocBook XSL manpages), as resource-agents does.
#   tools/man/ra2man.sh OUTDIR PROVIDER SOURCE AGENT_BINARY...
# SOURCE names the product in the footer ("cloudha-agents 0.1.0"). The date is taken from
# SOURCE_DATE_EPOCH when set (dpkg sets it from debian/changelog), so builds are reproducible.
# Needs: xsltproc, docbook-xsl. Fails, naming the agent, when an agent prints no valid meta-data.
set -eu

if [ $# -lt 4 ]; then
    echo "usage: $0 OUTDIR PROVIDER SOURCE AGENT_BINARY..." >&2
    exit 2
fi
out=$1 provider=$2 source=$3
shift 3

here=$(cd "$(dirname "$0")" && pwd)
docbook=${DOCBOOK_MAN_XSL:-/usr/share/xml/docbook/stylesheet/docbook-xsl/manpages/docbook.xsl}
for f in "$docbook" "$here/ra2refentry.xsl"; do
    [ -r "$f" ] || { echo "ra2man: $f is missing (package docbook-xsl?)" >&2; exit 5; }
done
command -v xsltproc >/dev/null || { echo "ra2man: xsltproc is missing (package xsltproc)" >&2; exit 5; }

if [ -n "${SOURCE_DATE_EPOCH:-}" ]; then
    date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)
else
    date=$(date -u +%Y-%m-%d)
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
for bin in "$@"; do
    agent=$(basename "$bin")
    work="$out/$agent.d"
    rm -rf "$work" && mkdir -p "$work"
    # meta-data needs no parameters, no root and no network (the OCF contract).
    if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin OCF_ROOT=/usr/lib/ocf "$bin" meta-data \
            > "$work/meta-data.xml" 2> "$work/meta-data.err"; then
        echo "ra2man: '$bin meta-data' failed:" >&2
        cat "$work/meta-data.err" >&2
        exit 1
    fi
    if ! xsltproc --nonet --novalid \
            --stringparam provider "$provider" \
            --stringparam source "$source" \
            --stringparam date "$date" \
            "$here/ra2refentry.xsl" "$work/meta-data.xml" > "$work/refentry.xml"; then
        echo "ra2man: $agent: its meta-data is not OCF meta-data (see $work/meta-data.xml)" >&2
        exit 1
    fi
    name=$(xsltproc --nonet --novalid - "$work/meta-data.xml" <<'XSL'
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
<xsl:output method="text"/><xsl:template match="/"><xsl:value-of select="resource-agent/@name"/></xsl:template>
</xsl:stylesheet>
XSL
)
    if [ "$name" != "$agent" ]; then
        echo "ra2man: $bin says it is '$name', not '$agent'" >&2
        exit 1
    fi
    (cd "$work" && xsltproc --nonet --novalid \
        --stringparam man.output.quietly 1 \
        --stringparam man.output.in.separate.dir 0 \
        "$docbook" refentry.xml)
    mv "$work/ocf_${provider}_${agent}.7" "$out/"
    rm -rf "$work"
    echo "ra2man: $out/ocf_${provider}_${agent}.7"
done
