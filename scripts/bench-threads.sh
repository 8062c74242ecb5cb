#!/usr/bin/env bash
# Thread hand-offs on the micro-VM's one vCPU: 4 threads each calling sched_yield
# N times, every yield a switch to another thread; in the micro-VM with each hsb given
# and natively, interleaved round by round (scripts/bench-ab.py). Prints the time of
# one whole run (the sandbox's start included) and the program's own µs per yield.
# Not a test: it prints numbers.
#
#   scripts/bench-threads.sh [ROUNDS] [HSB ...]   # default 12 rounds, target/release/hsb
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-12}
shift || true
[ $# -gt 0 ] || set -- target/release/hsb
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/yield.c" <<'C'
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static int n = 1000;
static void *run(void *a) { (void)a; for (int i = 0; i < n; i++) sched_yield(); return 0; }
int main(int argc, char **argv) {
  int t = argc > 1 ? atoi(argv[1]) : 4; if (argc > 2) n = atoi(argv[2]);
  if (t < 1 || t > 64) return 2;
  pthread_t th[64]; struct timespec s, e;
  clock_gettime(CLOCK_MONOTONIC, &s);
  for (int i = 0; i < t; i++) pthread_create(&th[i], 0, run, 0);
  for (int i = 0; i < t; i++) pthread_join(th[i], 0);
  clock_gettime(CLOCK_MONOTONIC, &e);
  double us = ((e.tv_sec - s.tv_sec) * 1e9 + (e.tv_nsec - s.tv_nsec)) / 1e3;
  printf("%d threads x %d yields: %.2f us per yield\n", t, n, us / (t * (double)n));
  return 0;
}
C
gcc -O2 -pthread -o "$dir/yield" "$dir/yield.c"
cmds=()
for h in "$@"; do
    [ -x "$h" ] || { echo "bench-threads: $h: build it first (cargo build --release -p hsb-cli)" >&2; exit 2; }
    cmds+=("$h=$h run --isolation microvm --mount $dir:/opt/bench -- /opt/bench/yield 4 1000")
done
cmds+=("native=$dir/yield 4 1000")
for h in "$@"; do
    printf '%s: ' "$h"
    "$h" run --isolation microvm --mount "$dir:/opt/bench" -- /opt/bench/yield 4 1000
done
printf 'native: '
"$dir/yield" 4 1000
python3 scripts/bench-ab.py --rounds "$rounds" "${cmds[@]}"
