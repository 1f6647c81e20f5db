#!/usr/bin/env bash
# Runs one cargo-fuzz target for a while, seeded from ../shared/corpus.
#
#   scripts/fuzz.sh TARGET [SECONDS]      # targets: probe thumbnail tiff bmp ico gif jpeg_scaled
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New corpus entries go
# to fuzz/corpus/TARGET and crashers to fuzz/artifacts/TARGET (both ignored by git); a crasher
# becomes a regression test in resizer-core/tests/fuzz_regressions.rs.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-1800}
corpus=../shared/corpus/formats
case "$target" in
    probe | thumbnail) seeds=("$corpus" ../shared/corpus/pngsuite) ;;
    tiff) seeds=("$corpus/tiff") ;;
    bmp) seeds=("$corpus/bmp") ;;
    ico) seeds=("$corpus/ico") ;;
    gif) seeds=("$corpus/gif") ;;
    jpeg_scaled) seeds=("$corpus/jpg") ;;
    *) echo "unknown target: $target" >&2; exit 2 ;;
esac
mkdir -p "fuzz/corpus/$target"
cd fuzz
# Seeds are read from ../shared (never copied into the repo); -max_len cuts big files, which
# also makes truncated inputs of them. The RSS limit is the fuzzer's, well above what a 4 MP
# pixel limit needs, so running out of it is a finding. The timeout is generous because the
# sanitizer build is slow and the targets share two cores.
exec cargo +nightly fuzz run "$target" "corpus/$target" "${seeds[@]/#/../}" -- \
    -max_total_time="$seconds" -max_len=131072 -rss_limit_mb=2048 -timeout=30 -print_final_stats=1
