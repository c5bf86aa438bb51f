#!/usr/bin/env bash
# BENCHMARKS.md = a header + each bench/results-*.md section, in a fixed order.
set -euo pipefail
cd "$(dirname "$0")/.."
{
    echo "# Benchmarks"
    echo
    echo "Whole-process measurements of the installed-style release binaries, made by the scripts"
    echo "under \`bench/\` (\`bash bench/run.sh\` as root runs them all and rewrites this file; each"
    echo "script can also run alone). Medians of many runs (hyperfine), peak RSS from \`/usr/bin/time\`."
    # shellcheck source=/dev/null # the machine's own /etc/os-release, not part of this repository
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/{print $2}') GiB, $(uname -r), $(. /etc/os-release && echo "$PRETTY_NAME")."
    for b in exec-cost anchorip floatip floatip-providers haproxy failover traffic soak fence bgpip http-clients; do
        if [ -f "bench/results-$b.md" ]; then
            echo
            cat "bench/results-$b.md"
        fi
    done
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md"
