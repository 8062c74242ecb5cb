/* Clocks and sleeps: clock ids (CPU clocks of processes and threads included),
 * resolutions, sleeps and their argument checks, interval timers, times. */
#include "probe.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
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

/* Milliseconds as a relative itimerspec. */
static struct itimerspec ms_spec(long value_ms, long every_ms) {
  struct itimerspec s = {{every_ms / 1000, (every_ms % 1000) * 1000000}, {value_ms / 1000, (value_ms % 1000) * 1000000}};
  return s;
}

static void timerfds(void) {
  CHECK("timerfd_create.badclock", timerfd_create(99, 0));
  CHECK("timerfd_create.raw", timerfd_create(CLOCK_MONOTONIC_RAW, 0));
  CHECK("timerfd_create.cpu", timerfd_create(CLOCK_PROCESS_CPUTIME_ID, 0));
  CHECK("timerfd_create.badflags", timerfd_create(CLOCK_MONOTONIC, 1));
  int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  FACT("timerfd_create", "fd>2=%d cloexec=%d nonblock=%d", fd > 2, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0,
       (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  char link[64] = "", path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t ln = readlink(path, link, sizeof link - 1);
  FACT("timerfd.link", "%s", ln > 0 ? link : "?");
  uint64_t n = 0;
  CHECK("timerfd.read.disarmed", read(fd, &n, 8));
  CHECK("timerfd.read.short", read(fd, &n, 4));
  CHECK("timerfd.write", write(fd, &n, 8));
  CHECK("timerfd.lseek", lseek(fd, 0, SEEK_SET));
  struct itimerspec cur;
  memset(&cur, 0x55, sizeof cur);
  CHECKX("timerfd_gettime.disarmed", timerfd_gettime(fd, &cur), "%ld %ld %ld %ld", (long)cur.it_value.tv_sec,
         cur.it_value.tv_nsec, (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
  struct itimerspec s = ms_spec(20, 10), old;
  CHECK("timerfd_settime.badflags", timerfd_settime(fd, 4, &s, NULL));
  struct itimerspec bad = s;
  bad.it_value.tv_nsec = 1000000000;
  CHECK("timerfd_settime.badnsec", timerfd_settime(fd, 0, &bad, NULL));
  bad = s;
  bad.it_interval.tv_sec = -1;
  CHECK("timerfd_settime.badinterval", timerfd_settime(fd, 0, &bad, NULL));
  CHECK("timerfd_settime.null", SYS(SYS_timerfd_settime, fd, 0, 0, 0));
  CHECK("timerfd_settime.efault", SYS(SYS_timerfd_settime, fd, 0, 8, 0));
  CHECK("timerfd_settime.efault.badflags", SYS(SYS_timerfd_settime, fd, 4, 8, 0));
  CHECK("timerfd_settime.efault.badfd", SYS(SYS_timerfd_settime, 999, 0, 8, 0));
  CHECK("timer_settime.efault.badid", SYS(SYS_timer_settime, 4242, 0, 8, 0));
  CHECK("timer_create.efault.badclock", SYS(SYS_timer_create, 99, 8, 0));
  CHECK("timerfd_settime.badfd", timerfd_settime(999, 0, &s, NULL));
  CHECK("timerfd_settime.notimerfd", timerfd_settime(1, 0, &s, NULL));
  CHECK("timerfd_gettime.notimerfd", timerfd_gettime(1, &cur));
  CHECK("timerfd_gettime.efault", SYS(SYS_timerfd_gettime, fd, 8));
  /* Interval kept while disarmed. */
  struct itimerspec only_every = ms_spec(0, 7);
  CHECK("timerfd_settime.interval.only", timerfd_settime(fd, 0, &only_every, NULL));
  CHECKX("timerfd_gettime.interval.only", timerfd_gettime(fd, &cur), "value=%ld.%ld interval_ms=%ld", (long)cur.it_value.tv_sec,
         cur.it_value.tv_nsec, cur.it_interval.tv_nsec / 1000000);
  CHECK("timerfd_settime", timerfd_settime(fd, 0, &s, &old));
  CHECKX("timerfd_gettime", timerfd_gettime(fd, &cur), "left_ok=%d interval_ms=%ld",
         cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 20000000, cur.it_interval.tv_nsec / 1000000);
  CHECK("timerfd.read.early", read(fd, &n, 8));
  struct pollfd pf = {fd, POLLIN | POLLOUT, 0};
  CHECKX("timerfd.poll", poll(&pf, 1, 5000), "revents=%#x", pf.revents);
  n = 0;
  CHECKX("timerfd.read", read(fd, &n, 8), "ticks>=1=%d", n >= 1);
  struct timespec nap = {0, 45000000};
  nanosleep(&nap, NULL);
  n = 0;
  CHECKX("timerfd.read.periodic", read(fd, &n, 8), "ticks>=3=%d", n >= 3);
  /* epoll, edge-triggered: reported once per expiry. */
  int ep = epoll_create1(0);
  struct epoll_event ev = {EPOLLIN | EPOLLET, {.u64 = 77}}, got[2];
  CHECK("timerfd.epoll_ctl", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
  CHECKX("timerfd.epoll_wait", epoll_wait(ep, got, 2, 5000), "data=%lu events=%#x", (unsigned long)got[0].data.u64, got[0].events);
  CHECK("timerfd.epoll_wait.edge", epoll_wait(ep, got, 2, 0));
  read(fd, &n, 8);
  close(ep);
  /* Setting disarms the count: no expiry is left to read. */
  struct itimerspec off = ms_spec(0, 0);
  nanosleep(&nap, NULL);
  CHECKX("timerfd_settime.off", timerfd_settime(fd, 0, &off, &old), "old_interval_ms=%ld", old.it_interval.tv_nsec / 1000000);
  CHECK("timerfd.read.after.off", read(fd, &n, 8));
  /* Absolute expiries: in the past (now readable), and 30 ms ahead on the wall clock,
   * read by a blocking read. */
  struct itimerspec abs = {{0, 0}, {1, 0}};
  CHECK("timerfd_settime.abs.past", timerfd_settime(fd, TFD_TIMER_ABSTIME, &abs, NULL));
  n = 0;
  CHECKX("timerfd.read.abs.past", read(fd, &n, 8), "ticks=%lu", (unsigned long)n);
  int rt = timerfd_create(CLOCK_REALTIME, 0);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  now.tv_nsec += 30000000;
  if (now.tv_nsec >= 1000000000) {
    now.tv_sec++;
    now.tv_nsec -= 1000000000;
  }
  struct itimerspec at = {{0, 0}, now};
  CHECK("timerfd_settime.abs.realtime", timerfd_settime(rt, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &at, NULL));
  n = 0;
  CHECKX("timerfd.read.blocking", read(rt, &n, 8), "ticks=%lu", (unsigned long)n);
  struct timespec after;
  clock_gettime(CLOCK_REALTIME, &after);
  FACT("timerfd.read.blocking.waited", "not_early=%d", after.tv_sec > now.tv_sec || (after.tv_sec == now.tv_sec && after.tv_nsec >= now.tv_nsec));
  /* A child shares the open timer. */
  struct itimerspec soon = ms_spec(10, 0);
  timerfd_settime(rt, 0, &soon, NULL);
  pid_t c = fork();
  if (c == 0) {
    uint64_t k = 0;
    _exit(read(rt, &k, 8) == 8 && k == 1 ? 0 : 1);
  }
  int st = 0;
  waitpid(c, &st, 0);
  FACT("timerfd.fork", "child_read=%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  fcntl(rt, F_SETFL, O_NONBLOCK);
  CHECK("timerfd.read.after.child", read(rt, &n, 8));
  close(rt);
  close(fd);
}

static volatile int TIMER_SIGS, TIMER_CODE, TIMER_VALUE, TIMER_ID, TIMER_OVERRUN;
static void on_timer(int sig, siginfo_t *si, void *uc) {
  (void)sig;
  (void)uc;
  TIMER_SIGS++;
  TIMER_CODE = si->si_code;
  TIMER_VALUE = si->si_value.sival_int;
  TIMER_ID = si->si_timerid;
  TIMER_OVERRUN = si->si_overrun;
}

static volatile int THREAD_CALLS;
static void on_thread_timer(union sigval v) { THREAD_CALLS += v.sival_int; }

static void posix_timers(void) {
  timer_t t;
  CHECK("timer_create.badclock", SYS(SYS_timer_create, 99, 0, &t));
  CHECK("timer_create.raw", SYS(SYS_timer_create, CLOCK_MONOTONIC_RAW, 0, &t));
  CHECK("timer_create.coarse", SYS(SYS_timer_create, CLOCK_MONOTONIC_COARSE, 0, &t));
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = 3;
  CHECK("timer_create.badnotify", SYS(SYS_timer_create, CLOCK_MONOTONIC, &sev, &t));
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = 0;
  CHECK("timer_create.signo0", SYS(SYS_timer_create, CLOCK_MONOTONIC, &sev, &t));
  sev.sigev_signo = 65;
  CHECK("timer_create.signo65", SYS(SYS_timer_create, CLOCK_MONOTONIC, &sev, &t));
  sev.sigev_signo = SIGUSR1;
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev._sigev_un._tid = 999999;
  CHECK("timer_create.badtid", SYS(SYS_timer_create, CLOCK_MONOTONIC, &sev, &t));
  CHECK("timer_create.efault.sev", SYS(SYS_timer_create, CLOCK_MONOTONIC, 8, &t));
  int kid = -1;
  CHECKX("timer_create.null", SYS(SYS_timer_create, CLOCK_MONOTONIC, 0, &kid), "id=%d", kid);
  int kid2 = -1;
  CHECKX("timer_create.second", SYS(SYS_timer_create, CLOCK_REALTIME, 0, &kid2), "id=%d", kid2);
  struct itimerspec cur, s = ms_spec(0, 0);
  CHECK("timer_settime.badid", SYS(SYS_timer_settime, 4242, 0, &s, 0));
  CHECK("timer_settime.null", SYS(SYS_timer_settime, kid, 0, 0, 0));
  s.it_value.tv_nsec = -1;
  CHECK("timer_settime.badnsec", SYS(SYS_timer_settime, kid, 0, &s, 0));
  CHECK("timer_gettime.badid", SYS(SYS_timer_gettime, 4242, &cur));
  CHECK("timer_gettime.efault", SYS(SYS_timer_gettime, kid, 8));
  CHECK("timer_getoverrun.badid", SYS(SYS_timer_getoverrun, 4242));
  CHECK("timer_getoverrun.fresh", SYS(SYS_timer_getoverrun, kid));
  memset(&cur, 0x55, sizeof cur);
  CHECKX("timer_gettime.disarmed", SYS(SYS_timer_gettime, kid, &cur), "%ld %ld %ld %ld", (long)cur.it_value.tv_sec,
         cur.it_value.tv_nsec, (long)cur.it_interval.tv_sec, cur.it_interval.tv_nsec);
  CHECK("timer_delete", SYS(SYS_timer_delete, kid));
  CHECK("timer_delete.again", SYS(SYS_timer_delete, kid));
  CHECK("timer_delete.second", SYS(SYS_timer_delete, kid2));
  int kid3 = -1;
  CHECKX("timer_create.after.delete", SYS(SYS_timer_create, CLOCK_MONOTONIC, 0, &kid3), "id=%d", kid3);
  SYS(SYS_timer_delete, kid3);

  /* A signal with its value, code and id. */
  struct sigaction sa = {0};
  sa.sa_sigaction = on_timer;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  sigaction(SIGUSR2, &sa, NULL);
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGUSR1;
  sev.sigev_value.sival_int = 1234;
  timer_t st;
  CHECK("timer_create.signal", timer_create(CLOCK_MONOTONIC, &sev, &st));
  s = ms_spec(10, 0);
  sigset_t block, was;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigprocmask(SIG_BLOCK, &block, &was);
  TIMER_SIGS = 0;
  CHECK("timer_settime.oneshot", timer_settime(st, 0, &s, NULL));
  CHECKX("timer_gettime.armed", timer_gettime(st, &cur), "left_ok=%d", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 && cur.it_value.tv_nsec <= 10000000);
  sigset_t wait = was;
  sigdelset(&wait, SIGUSR1);
  sigsuspend(&wait);
  sigprocmask(SIG_SETMASK, &was, NULL);
  FACT("timer.signal", "sigs=%d code_timer=%d value=%d id_same=%d overrun=%d", TIMER_SIGS, TIMER_CODE == SI_TIMER, TIMER_VALUE,
       TIMER_ID == (int)(intptr_t)st, TIMER_OVERRUN);
  CHECKX("timer_gettime.expired", timer_gettime(st, &cur), "%ld %ld", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
  /* Overruns: a periodic timer whose signal stays blocked. */
  sigemptyset(&block);
  sigaddset(&block, SIGUSR2);
  sigprocmask(SIG_BLOCK, &block, &was);
  sev.sigev_signo = SIGUSR2;
  sev.sigev_value.sival_int = 99;
  timer_t ot;
  timer_create(CLOCK_MONOTONIC, &sev, &ot);
  s = ms_spec(1, 1);
  TIMER_SIGS = 0;
  timer_settime(ot, 0, &s, NULL);
  struct timespec nap = {0, 30000000};
  nanosleep(&nap, NULL);
  siginfo_t si;
  memset(&si, 0, sizeof si);
  struct timespec wait_at_most = {5, 0};
  CHECKX("timer.overrun.sigtimedwait", sigtimedwait(&block, &si, &wait_at_most), "code_timer=%d value=%d overrun>=10=%d",
         si.si_code == SI_TIMER, si.si_value.sival_int, si.si_overrun >= 10);
  long ov = timer_getoverrun(ot);
  FACT("timer.getoverrun", "same_as_delivered=%d", ov == si.si_overrun);
  nanosleep(&nap, NULL);
  /* Set again while its next signal is pending: that signal goes. */
  s = ms_spec(0, 0);
  struct itimerspec oldv;
  CHECKX("timer_settime.off", timer_settime(ot, 0, &s, &oldv), "old_interval_ns=%ld", oldv.it_interval.tv_nsec);
  sigset_t pend;
  sigpending(&pend);
  FACT("timer.off.pending", "%d", sigismember(&pend, SIGUSR2));
  sigprocmask(SIG_SETMASK, &was, NULL);
  FACT("timer.off.handler", "sigs=%d", TIMER_SIGS);
  /* Deleted while its signal is pending: the signal goes too. */
  sigprocmask(SIG_BLOCK, &block, &was);
  s = ms_spec(1, 0);
  timer_settime(ot, 0, &s, NULL);
  nanosleep(&nap, NULL);
  sigpending(&pend);
  FACT("timer.delete.before", "pending=%d", sigismember(&pend, SIGUSR2));
  CHECK("timer_delete.pending", timer_delete(ot));
  sigpending(&pend);
  FACT("timer.delete.pending", "%d", sigismember(&pend, SIGUSR2));
  sigprocmask(SIG_SETMASK, &was, NULL);
  /* SIGEV_NONE: only read. */
  sev.sigev_notify = SIGEV_NONE;
  timer_t nt;
  CHECK("timer_create.none", timer_create(CLOCK_MONOTONIC, &sev, &nt));
  s = ms_spec(5, 0);
  timer_settime(nt, 0, &s, NULL);
  nanosleep(&nap, NULL);
  CHECKX("timer_gettime.none.expired", timer_gettime(nt, &cur), "%ld %ld", (long)cur.it_value.tv_sec, cur.it_value.tv_nsec);
  timer_delete(nt);
  /* To this thread by id. */
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGUSR1;
  sev._sigev_un._tid = (int)gettid();
  sev.sigev_value.sival_int = 5;
  timer_t tt;
  CHECK("timer_create.thread_id", timer_create(CLOCK_MONOTONIC, &sev, &tt));
  s = ms_spec(5, 0);
  TIMER_SIGS = 0;
  timer_settime(tt, 0, &s, NULL);
  for (int i = 0; i < 200 && !TIMER_SIGS; i++)
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  FACT("timer.thread_id", "sigs=%d value=%d", TIMER_SIGS, TIMER_VALUE);
  /* Not inherited by a child. */
  pid_t c = fork();
  if (c == 0)
    _exit(timer_gettime(tt, &cur) == -1 && errno == EINVAL ? 0 : 1);
  int status = 0;
  waitpid(c, &status, 0);
  FACT("timer.fork", "child_has_none=%d", WIFEXITED(status) && WEXITSTATUS(status) == 0);
  timer_delete(tt);
  /* The C library's SIGEV_THREAD: a thread it starts calls the function. */
  sev.sigev_notify = SIGEV_THREAD;
  sev.sigev_notify_function = on_thread_timer;
  sev.sigev_notify_attributes = NULL;
  sev.sigev_value.sival_int = 1;
  timer_t ct;
  CHECK("timer_create.sigev_thread", timer_create(CLOCK_MONOTONIC, &sev, &ct));
  s = ms_spec(5, 0);
  timer_settime(ct, 0, &s, NULL);
  for (int i = 0; i < 2000 && !THREAD_CALLS; i++)
    nanosleep(&(struct timespec){0, 1000000}, NULL);
  FACT("timer.sigev_thread", "calls=%d", THREAD_CALLS);
  timer_delete(ct);
  signal(SIGUSR1, SIG_DFL);
  signal(SIGUSR2, SIG_DFL);
}


static int RND_TFD = -1, RND_TIMER = -1;
static void random_setup(void) {
  RND_TFD = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct sigevent none;
  memset(&none, 0, sizeof none);
  none.sigev_notify = SIGEV_NONE;
  SYS(SYS_timer_create, CLOCK_MONOTONIC, &none, &RND_TIMER);
}
static void one(int i) {
  long r;
  const char *w;
  struct timespec ts = {0, 0};
  errno = 0;
  switch (rnd_below(9)) {
  case 0: w = "clock_gettime"; r = SYS(SYS_clock_gettime, PICK(0, 1, 2, 3, 4, 5, 6, 7, 11, 12, -2, -6, -14, 99), rnd_below(3) ? (long)&ts : rnd_ptr()); break;
  case 1: w = "clock_getres"; r = SYS(SYS_clock_getres, PICK(0, 1, 2, 3, 4, 7, 99, -6), rnd_below(3) ? (long)&ts : rnd_ptr()); break;
  case 2: { struct timespec req = {0, PICK(0, 1, 1000, 1000000000, -1)}; w = "nanosleep"; r = SYS(SYS_nanosleep, rnd_below(4) ? (long)&req : rnd_badptr(), 0); break; }
  case 3: { struct itimerval it; w = "getitimer"; r = getitimer((int)rnd_num(4), (void *)(rnd_below(3) ? (long)&it : rnd_ptr())); break; }
  case 4: { struct timespec req = {0, 1000}; w = "clock_nanosleep"; r = SYS(SYS_clock_nanosleep, PICK(0, 1, 3, 7, 99), rnd_flags(1), &req, 0); break; }
  case 6: {
    struct itimerspec sp = {{PICK(0, 1, -1), PICK(0, 1000, 999999999, 1000000000, -5)}, {PICK(0, 1, 100000, -1), PICK(0, 1, 500000, 1000000000)}}, old;
    w = "timerfd_settime";
    r = SYS(SYS_timerfd_settime, PICK(RND_TFD, 0, 99, -1), rnd_flags(3), rnd_below(4) ? (long)&sp : rnd_ptr(), rnd_below(2) ? (long)&old : rnd_ptr());
    break;
  }
  case 7: {
    struct itimerspec sp = {{0, PICK(0, 1000, -1)}, {PICK(0, 1, 100000, -1), PICK(0, 1, 500000, 1000000000)}}, old;
    w = "timer_settime";
    r = SYS(SYS_timer_settime, PICK(RND_TIMER, 4242, -1), rnd_flags(1), rnd_below(4) ? (long)&sp : rnd_ptr(), rnd_below(2) ? (long)&old : rnd_ptr());
    break;
  }
  case 8: { struct itimerspec cur; w = "timer_gettime"; r = rnd_below(2) ? SYS(SYS_timer_gettime, PICK(RND_TIMER, 4242, -1), rnd_below(3) ? (long)&cur : rnd_ptr()) : SYS(SYS_timerfd_gettime, PICK(RND_TFD, 0, -1), rnd_below(3) ? (long)&cur : rnd_ptr()); break; }
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
  timerfds();
  posix_timers();
  return 0;
}
