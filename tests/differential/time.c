/* Clocks and sleeps: clock ids (CPU clocks of processes and threads included),
 * resolutions, sleeps and their argument checks, interval timers, times. */
#include "probe.h"

#include <pthread.h>
#include <signal.h>
#include <sys/time.h>
#include <sys/times.h>
#include <time.h>

static void *spin(void *arg) {
  (void)arg;
  volatile unsigned long x = 0;
  for (unsigned long i = 0; i < 20000000; i++)
    x += i;
  return NULL;
}

static void clocks(void) {
  struct timespec ts;
  int ids[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_PROCESS_CPUTIME_ID, CLOCK_THREAD_CPUTIME_ID,
               CLOCK_MONOTONIC_RAW, CLOCK_REALTIME_COARSE, CLOCK_MONOTONIC_COARSE, CLOCK_BOOTTIME,
               CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM, 10, CLOCK_TAI, 12, 100};
  for (unsigned i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char l[32];
    snprintf(l, sizeof l, "clock_gettime.%d", ids[i]);
    CHECKX(l, SYS(SYS_clock_gettime, ids[i], &ts), "");
    snprintf(l, sizeof l, "clock_getres.%d", ids[i]);
    ts.tv_sec = ts.tv_nsec = -1;
    CHECKX(l, SYS(SYS_clock_getres, ids[i], &ts), "fine=%d", ts.tv_sec == 0 && ts.tv_nsec > 0 && ts.tv_nsec <= 10000000);
  }
  CHECK("clock_gettime.efault", SYS(SYS_clock_gettime, CLOCK_MONOTONIC, 8));
  CHECK("clock_getres.null", SYS(SYS_clock_getres, CLOCK_MONOTONIC, 0));
  CHECK("clock_gettime.neg.bad", SYS(SYS_clock_gettime, -1000, &ts));
  /* CPU clocks of this process and of a thread of it (pthread_getcpuclockid). */
  clockid_t cid;
  CHECK("clock_getcpuclockid.self", clock_getcpuclockid(0, &cid));
  CHECKX("clock_gettime.cpuclock.self", clock_gettime(cid, &ts), "");
  CHECK("clock_getcpuclockid.pid", clock_getcpuclockid(getpid(), &cid));
  CHECKX("clock_gettime.cpuclock.pid", clock_gettime(cid, &ts), "");
  CHECK("clock_getcpuclockid.noent", clock_getcpuclockid(999999, &cid));
  pthread_t t;
  pthread_create(&t, NULL, spin, NULL);
  clockid_t tc;
  CHECK("pthread_getcpuclockid", pthread_getcpuclockid(t, &tc));
  struct timespec a = {0}, b = {0};
  CHECKX("clock_gettime.threadclock", clock_gettime(tc, &a), "");
  pthread_join(t, NULL);
  CHECK("pthread_getcpuclockid.self", pthread_getcpuclockid(pthread_self(), &tc));
  CHECKX("clock_gettime.threadclock.self", clock_gettime(tc, &b), "positive=%d", b.tv_sec > 0 || b.tv_nsec > 0);
  CHECKX("clock_getres.threadclock", clock_getres(tc, &b), "ns=%ld", b.tv_nsec);
  /* A made-up thread clock of a tid that is not in this process. */
  clockid_t other = (clockid_t)((~(unsigned)999999 << 3) | 6);
  CHECK("clock_gettime.threadclock.noent", clock_gettime(other, &ts));
  clockid_t badtype = (clockid_t)((~(unsigned)0 << 3) | 3);
  CHECK("clock_gettime.cpuclock.badtype", clock_gettime(badtype, &ts));
  struct timeval tv;
  CHECK("gettimeofday", gettimeofday(&tv, NULL));
  CHECK("gettimeofday.efault", SYS(SYS_gettimeofday, 8, 0));
  CHECK("time.null", SYS(SYS_time, 0) > 0);
  CHECK("time.efault", SYS(SYS_time, 8));
  struct tms tm;
  CHECK("times", times(&tm) != (clock_t)-1);
  CHECK("times.null", SYS(SYS_times, 0) > 0);
  CHECK("settimeofday", settimeofday(&tv, NULL));
  CHECK("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
}

static void sleeps(void) {
  struct timespec ts = {0, 1000};
  CHECK("nanosleep", nanosleep(&ts, NULL));
  ts.tv_nsec = 1000000000;
  CHECK("nanosleep.badnsec", nanosleep(&ts, NULL));
  ts.tv_sec = -1;
  ts.tv_nsec = 0;
  CHECK("nanosleep.neg", nanosleep(&ts, NULL));
  CHECK("nanosleep.efault", SYS(SYS_nanosleep, 8, 0));
  ts.tv_sec = 0;
  ts.tv_nsec = 1000;
  CHECK("clock_nanosleep.mono", SYS(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL));
  CHECK("clock_nanosleep.badclock", SYS(SYS_clock_nanosleep, 99, 0, &ts, NULL));
  CHECK("clock_nanosleep.threadcpu", SYS(SYS_clock_nanosleep, CLOCK_THREAD_CPUTIME_ID, 0, &ts, NULL));
  CHECK("clock_nanosleep.badflags", SYS(SYS_clock_nanosleep, CLOCK_MONOTONIC, 2, &ts, NULL));
  struct timespec past = {0, 0};
  CHECK("clock_nanosleep.abs.past", SYS(SYS_clock_nanosleep, CLOCK_REALTIME, TIMER_ABSTIME, &past, NULL));
}

static volatile int CPU_TIMER_HITS;
static void on_cpu_timer(int sig) {
  (void)sig;
  CPU_TIMER_HITS++;
}

static void timers(void) {
  struct itimerval it = {{0, 0}, {100, 0}}, old;
  CHECK("setitimer.real", setitimer(ITIMER_REAL, &it, &old));
  CHECKX("getitimer.real", getitimer(ITIMER_REAL, &old), "set=%d", old.it_value.tv_sec > 90);
  it.it_value.tv_sec = 0;
  CHECK("setitimer.real.cancel", setitimer(ITIMER_REAL, &it, NULL));
  CHECKX("getitimer.real.cancelled", getitimer(ITIMER_REAL, &old), "%ld", (long)old.it_value.tv_sec);
  it.it_value.tv_usec = 1000000;
  CHECK("setitimer.badusec", setitimer(ITIMER_REAL, &it, NULL));
  CHECK("setitimer.badwhich", setitimer(7, &it, NULL));
  CHECK("getitimer.badwhich", getitimer(7, &old));
  it.it_value.tv_usec = 0;
  it.it_value.tv_sec = 100;
  CHECK("setitimer.virtual", setitimer(ITIMER_VIRTUAL, &it, NULL));
  CHECKX("getitimer.virtual", getitimer(ITIMER_VIRTUAL, &old), "set=%d", old.it_value.tv_sec > 90);
  CHECK("setitimer.prof", setitimer(ITIMER_PROF, &it, NULL));
  it.it_value.tv_sec = 0;
  setitimer(ITIMER_VIRTUAL, &it, NULL);
  setitimer(ITIMER_PROF, &it, NULL);
  /* The CPU-time timers fire as the process computes (0.02 s, then every 0.02 s). */
  for (int w = 0; w < 2; w++) {
    int which = w ? ITIMER_PROF : ITIMER_VIRTUAL, sig = w ? SIGPROF : SIGVTALRM;
    struct sigaction sa = {.sa_handler = on_cpu_timer};
    sigaction(sig, &sa, NULL);
    CPU_TIMER_HITS = 0;
    struct itimerval t = {{0, 20000}, {0, 20000}}, o;
    CHECK(w ? "setitimer.prof.run" : "setitimer.virtual.run", setitimer(which, &t, NULL));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    volatile unsigned long x = 0;
    do {
      for (int i = 0; i < 100000; i++)
        x += i;
      clock_gettime(CLOCK_MONOTONIC, &t1);
    } while (CPU_TIMER_HITS < 3 && t1.tv_sec - t0.tv_sec < 10);
    FACT(w ? "itimer.prof.fired" : "itimer.virtual.fired", "at least 3: %d", CPU_TIMER_HITS >= 3);
    getitimer(which, &o);
    FACT(w ? "itimer.prof.rearmed" : "itimer.virtual.rearmed", "interval=%ld armed=%d", (long)o.it_interval.tv_usec, o.it_value.tv_sec > 0 || o.it_value.tv_usec > 0);
    struct itimerval z = {{0, 0}, {0, 0}};
    CHECK(w ? "setitimer.prof.off" : "setitimer.virtual.off", setitimer(which, &z, NULL));
    getitimer(which, &o);
    FACT(w ? "itimer.prof.off" : "itimer.virtual.off", "%ld %ld", (long)o.it_value.tv_sec, (long)o.it_value.tv_usec);
    signal(sig, SIG_DFL);
  }
  CHECK("setitimer.efault", SYS(SYS_setitimer, ITIMER_REAL, 8, 0));
  CHECK("alarm.0", alarm(0));
}


static void random_setup(void) {}
static void one(int i) {
  long r;
  const char *w;
  struct timespec ts = {0, 0};
  errno = 0;
  switch (rnd_below(6)) {
  case 0: w = "clock_gettime"; r = SYS(SYS_clock_gettime, PICK(0, 1, 2, 3, 4, 5, 6, 7, 11, 12, -2, -6, -14, 99), rnd_below(3) ? (long)&ts : rnd_ptr()); break;
  case 1: w = "clock_getres"; r = SYS(SYS_clock_getres, PICK(0, 1, 2, 3, 4, 7, 99, -6), rnd_below(3) ? (long)&ts : rnd_ptr()); break;
  case 2: { struct timespec req = {0, PICK(0, 1, 1000, 1000000000, -1)}; w = "nanosleep"; r = SYS(SYS_nanosleep, rnd_below(4) ? (long)&req : rnd_badptr(), 0); break; }
  case 3: { struct itimerval it; w = "getitimer"; r = getitimer((int)rnd_num(4), (void *)(rnd_below(3) ? (long)&it : rnd_ptr())); break; }
  case 4: { struct timespec req = {0, 1000}; w = "clock_nanosleep"; r = SYS(SYS_clock_nanosleep, PICK(0, 1, 3, 7, 99), rnd_flags(1), &req, 0); break; }
  default: { struct timeval tv; w = "gettimeofday"; r = SYS(SYS_gettimeofday, rnd_below(3) ? (long)&tv : rnd_ptr(), 0); break; }
  }
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "time";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  clocks();
  sleeps();
  timers();
  return 0;
}
