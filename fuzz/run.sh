#!/usr/bin/env bash
# Runs pgferry's cargo-fuzz targets, one after another, each for a set time.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     default: 60 s each, every target
#
# Targets: startup frame views scram classify (src/fuzzing/ has the code and
# the invariants each one checks). Each target's corpus is
# fuzz/corpus/<target> (kept between runs, not committed), seeded from the
# committed fuzz/seeds/<target>. Crashes land in fuzz/artifacts/<target>/;
# the script lists them and exits 1. To keep a crash as a regression: fix
# it, copy the input to fuzz/regressions/<target>/ (replayed by
# `cargo test --lib fuzzing`) and add a unit test beside the fixed code.
#
# libFuzzer needs nightly-only rustc flags (-Zsanitizer, sanitizer coverage).
# pgferry builds on stable Rust, so this sets RUSTC_BOOTSTRAP=1, which lets
# the stable compiler accept them; it affects only this build (its own
# target dir under fuzz/), never the normal one. FUZZ_SANITIZER picks the
# sanitizer (default: address; "none" is about twice as fast).
# Extra libFuzzer flags go in FUZZ_ARGS, e.g. FUZZ_ARGS="-max_len=512".
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
seconds="${1:-60}"
shift || true
all=(startup frame views scram classify)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
sanitizer="${FUZZ_SANITIZER:-address}"

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

cd "$here"
# One build of every target first, so build time does not eat fuzzing time.
cargo fuzz build --sanitizer "$sanitizer"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    echo "== fuzzing $t for ${seconds}s" >&2
    before=$(find "artifacts/$t" -type f | wc -l)
    # shellcheck disable=SC2086
    if ! cargo fuzz run --sanitizer "$sanitizer" "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=512 \
        -timeout=10 -print_final_stats=1 ${FUZZ_ARGS:-}; then
        failed+=("$t")
    fi
    after=$(find "artifacts/$t" -type f | wc -l)
    if [ "$after" -gt "$before" ]; then
        [[ " ${failed[*]} " == *" $t "* ]] || failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "CRASHES in: ${failed[*]}" >&2
    for t in "${failed[@]}"; do
        find "artifacts/$t" -type f -printf '  %p\n' >&2
        echo "  reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $t fuzz/artifacts/$t/<file>" >&2
    done
    exit 1
fi
echo "no crashes (${targets[*]}, ${seconds}s each)" >&2
