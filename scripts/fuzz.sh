#!/usr/bin/env bash
# Fuzzes the parsers that take untrusted input (docs/FUZZING.md): every target in fuzz/
# (or the ones named) for SECONDS each (default 120), one after another, starting from the
# checked-in seeds (fuzz/seeds/<target>) and the corpus of earlier runs (fuzz/corpus/<target>,
# not checked in). Prints a Markdown table of the runs; a crash's input is kept in
# fuzz/artifacts/<target>/ and the script exits non-zero.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-120}
shift || true
fuzz=$PWD/fuzz
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
failed=0
# A value of libFuzzer's final statistics (-print_final_stats) in the current target's log.
final_stat() { awk -v key="stat::$1:" '$1 == key {print $2}' "$logs/$target"; }
echo "| target | runs | exec/s | coverage (cov / ft) | corpus | peak RSS | crash |"
echo "|---|---|---|---|---|---|---|"
for target in "${targets[@]}"; do
  mkdir -p "$fuzz/corpus/$target" "$fuzz/artifacts/$target"
  status=0
  cargo +nightly fuzz run "$target" "$fuzz/corpus/$target" "$fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 -dict="$fuzz/json.dict" \
    -artifact_prefix="$fuzz/artifacts/$target/" >"$logs/$target" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+.*(DONE|cov:)' "$logs/$target" | tail -1 || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+).*/\1 \/ \2/p' <<<"$done_line")
  corpus=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p' <<<"$done_line")
  crash=none
  if [ "$status" -ne 0 ]; then
    failed=1
    crash=$(grep -oE "$fuzz/artifacts/$target/[a-z]+-[0-9a-f]+" "$logs/$target" | tail -1 || true)
    crash=${crash:-"exit $status (log below)"}
    tail -40 "$logs/$target" >&2
  fi
  printf '| %s | %s | %s | %s | %s | %s MB | %s |\n' "$target" "$(final_stat number_of_executed_units)" \
    "$(final_stat average_exec_per_sec)" "$cov" "$corpus" "$(final_stat peak_rss_mb)" "$crash"
done
exit $failed
