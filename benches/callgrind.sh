#!/usr/bin/env bash
# callgrind.sh — instruction counts per operation of the hot paths, with no
# cluster: runs benches/instructions.rs under `valgrind --tool=callgrind`
# with N=0 and N=$ITERS and reports (Ir(N) - Ir(0)) / N for each op.
# Counts are deterministic: two runs on the same build give the same table.
#
# Usage: benches/callgrind.sh [OP...]          (default: every op)
# Environment:
#   ITERS=10000          repetitions of the measured run
#   OUT=benches/results/instructions.txt   where the table goes
#   BASELINE=file        a previous table: print the ratio per op and exit 1
#                        when any op takes more than THRESHOLD % more instructions
#   THRESHOLD=5          allowed regression in percent
# Needs valgrind (scripts/install-deps installs it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ITERS="${ITERS:-10000}"
OUT="${OUT:-benches/results/instructions.txt}"
THRESHOLD="${THRESHOLD:-5}"
BASELINE="${BASELINE:-}"

command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind not found (scripts/install-deps)" >&2; exit 1; }
[ -z "$BASELINE" ] || [ -f "$BASELINE" ] || { echo "callgrind.sh: no baseline file $BASELINE" >&2; exit 1; }

echo "callgrind.sh: building benches/instructions.rs (release)" >&2
exe="$(cargo bench --no-run --features bench-internals --bench instructions --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "instructions" and m.get("executable"):
        print(m["executable"])')"
[ -x "$exe" ] || { echo "callgrind.sh: build failed (cargo bench --no-run --features bench-internals --bench instructions)" >&2; exit 1; }

if [ $# -gt 0 ]; then ops=("$@"); else mapfile -t ops < <("$exe" --list | cut -f1); fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Total Ir of one run: the `totals:` line of the callgrind out file
# (`summary:` in older valgrind versions).
ir() {
    local out="$tmp/$1.$2.out"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$exe" "$1" "$2" >/dev/null 2>"$tmp/log" || {
        cat "$tmp/log" >&2
        echo "callgrind.sh: $1 $2 failed" >&2
        exit 1
    }
    awk '/^(totals|summary):/ { print $2; exit }' "$out"
}

{
    echo "# instructions per op (callgrind Ir, (Ir(N=$ITERS) - Ir(N=0)) / $ITERS), benches/callgrind.sh"
    echo "# $(rustc --version), $(valgrind --version), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    for op in "${ops[@]}"; do
        base="$(ir "$op" 0)"
        full="$(ir "$op" "$ITERS")"
        printf '%s\t%s\n' "$op" "$(awk -v a="$base" -v b="$full" -v n="$ITERS" 'BEGIN { printf "%.1f", (b - a) / n }')"
        echo "callgrind.sh: $op done" >&2
    done
} >"$tmp/table"
mkdir -p "$(dirname "$OUT")"
cp "$tmp/table" "$OUT"

# The table, with the ratio against the baseline when there is one; the
# exit status says whether any op regressed beyond THRESHOLD.
if [ -n "$BASELINE" ]; then
    printf '%-26s | %12s | %12s | %s\n' "op" "Ir/op" "baseline" "ratio"
else
    printf '%-26s | %12s\n' "op" "Ir/op"
fi
awk -F'\t' -v baseline="$BASELINE" -v threshold="$THRESHOLD" '
    BEGIN {
        if (baseline != "") {
            while ((getline line < baseline) > 0) {
                if (line ~ /^#/) continue
                split(line, f, "\t"); old[f[1]] = f[2]
            }
        }
    }
    /^#/ { next }
    baseline == "" { printf "%-26s | %12s\n", $1, $2; next }
    !($1 in old) || old[$1] <= 0 { printf "%-26s | %12s | %12s | new\n", $1, $2, "-"; next }
    {
        ratio = $2 / old[$1]
        flag = ""
        if (ratio > 1 + threshold / 100) { flag = "  REGRESSION"; bad++ }
        printf "%-26s | %12s | %12s | %.3f%s\n", $1, $2, old[$1], ratio, flag
    }
    END { if (bad) { printf "%d op(s) regressed by more than %s %%\n", bad, threshold; exit 1 } }
' "$OUT"
