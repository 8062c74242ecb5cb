#!/usr/bin/env bash
# Wake-up latency on the micro-VM's one vCPU, side by side with native, in one run:
# a thread waits on a condition variable; the main thread signals it and then computes
# on for 20 ms without a syscall; the probe prints how long the woken thread waited for
# a CPU (mean of 30), and the rate of sched_yield alone and of condition-variable
# handoffs between two threads. Not a test: it prints numbers.
#
#   scripts/bench-wake.sh [HSB]      # default target/release/hsb
set -euo pipefail
cd "$(dirname "$0")/.."
hsb=${1:-target/release/hsb}
[ -x "$hsb" ] || { echo "build it first: cargo build --release -p hsb-cli" >&2; exit 2; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/wake.c" <<'C'
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t c = PTHREAD_COND_INITIALIZER;
static double woke_at; static int go, turn; static volatile int stop; static long n;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void *waiter(void *a) { (void)a; pthread_mutex_lock(&m); while (!go) pthread_cond_wait(&c, &m); woke_at = now(); pthread_mutex_unlock(&m); return 0; }
static void *pingpong(void *arg) { int me = (int)(long)arg; pthread_mutex_lock(&m);
  while (!stop) { while (turn != me && !stop) pthread_cond_wait(&c, &m); turn = !me; n++; pthread_cond_signal(&c); }
  pthread_mutex_unlock(&m); return 0; }
int main(void) {
  double sum = 0; const int N = 30;
  for (int i = 0; i < N; i++) {
    go = 0; pthread_t t; pthread_create(&t, 0, waiter, 0); usleep(5000);
    pthread_mutex_lock(&m); go = 1; double at = now(); pthread_cond_signal(&c); pthread_mutex_unlock(&m);
    double until = now() + 0.02; while (now() < until) ;
    pthread_join(t, 0); sum += woke_at - at;
  }
  double t0 = now(); long y = 0; while (now() - t0 < 1.0) { sched_yield(); y++; }
  pthread_t a, b; pthread_create(&a, 0, pingpong, (void *)0); pthread_create(&b, 0, pingpong, (void *)1);
  sleep(1); pthread_mutex_lock(&m); stop = 1; long k = n; pthread_cond_broadcast(&c); pthread_mutex_unlock(&m);
  pthread_join(a, 0); pthread_join(b, 0);
  printf("%.2f %ld %ld\n", sum / N * 1e3, y, k);
  return 0;
}
C
gcc -O2 -static -pthread "$dir/wake.c" -o "$dir/wake"
native=$("$dir/wake")
vm=$("$hsb" run --isolation microvm --mount "$dir:/w" -- /w/wake)
printf '| where | wake latency while the waker computes (ms) | sched_yield alone (/s) | condvar handoffs (/s) |\n'
printf '| --- | ---: | ---: | ---: |\n'
for row in "native $native" "micro-VM $vm"; do
  set -- $row
  printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4"
done
