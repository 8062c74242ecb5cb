#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 20, as CI does; run longer by hand:
# `scripts/fuzz.sh 3600`). Needs the nightly toolchain and cargo-fuzz
# (scripts/install-deps.sh installs cargo-fuzz). Fails on the first crash, leaving the
# input under fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-20}
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^hsb-fuzz$')
mkdir -p logs
# The image targets unpack into directories under TMPDIR: one of this run's, removed at
# the end.
TMPDIR=$(mktemp -d)
export TMPDIR
trap 'chmod -R u+rwx "$TMPDIR" 2>/dev/null; rm -rf "$TMPDIR"' EXIT
for t in $targets; do
  mkdir -p "corpus/$t"
  seeds=()
  [ -d "seeds/$t" ] && seeds=("seeds/$t")
  echo "== fuzz $t for ${seconds}s"
  if ! cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"logs/$t.log" 2>&1; then
    tail -40 "logs/$t.log" >&2
    echo "fuzz target $t failed; the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
  grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "logs/$t.log" || tail -3 "logs/$t.log"
done
