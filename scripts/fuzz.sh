#!/usr/bin/env bash
# Fuzzes the signal readers with cargo-fuzz (libFuzzer + AddressSanitizer):
# the .hea parser, every .dat format, whole records, .atr, CSV and EDF.
#
#   scripts/fuzz.sh            # every target for 60 s
#   SECONDS_EACH=600 scripts/fuzz.sh csv
#
# Needs `cargo install cargo-fuzz`. cargo-fuzz passes nightly-only flags to rustc;
# on the stable toolchain RUSTC_BOOTSTRAP=1 lets it (only for this fuzz build).
# Seeds are committed under fuzz/seeds/<target>; the growing corpus goes to
# fuzz/corpus/<target> and crashes to fuzz/artifacts/<target> (both git-ignored:
# a crash becomes a regression test in tests/never_panic.rs instead).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${SECONDS_EACH:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(header dat record atr csv edf)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >&2
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log=$(mktemp)
  if cargo fuzz run -O "$t" "corpus/$t" "seeds/$t" -- -max_total_time="$secs" -rss_limit_mb=2048 >"$log" 2>&1; then
    status=ok
  else
    status=CRASH
  fi
  runs=$(grep -o 'Done [0-9]* runs' "$log" | grep -o '[0-9]*' || echo "?")
  echo "$t: $status, $runs executions in $secs s, corpus $(ls "corpus/$t" | wc -l) inputs"
  [ "$status" = ok ] || { tail -30 "$log"; exit 1; }
  rm -f "$log"
done
