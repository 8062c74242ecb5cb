/* Signals: dispositions, masks, pending sets, delivery, waiting, queued signals, the
 * alternate stack. */
#include "probe.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>

static volatile int got, got_code, got_value, got_onstack;
static void *volatile got_ptr;
static void handler(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  got = sig;
  got_code = si->si_code;
  got_value = si->si_value.sival_int;
  got_ptr = si->si_value.sival_ptr;
  char here;
  stack_t ss;
  sigaltstack(NULL, &ss);
  got_onstack = (ss.ss_flags & SS_ONSTACK) != 0 && &here > (char *)ss.ss_sp;
}

static void dispositions(void) {
  struct sigaction sa = {0}, old;
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO;
  CHECK("sigaction.kill", sigaction(SIGKILL, &sa, NULL));
  CHECK("sigaction.stop", sigaction(SIGSTOP, &sa, NULL));
  CHECK("sigaction.0", sigaction(0, &sa, NULL));
  CHECK("sigaction.65", SYS(SYS_rt_sigaction, 65, NULL, &old, 8));
  CHECK("sigaction.badsize", SYS(SYS_rt_sigaction, SIGUSR1, NULL, &old, 4));
  CHECK("sigaction.usr1", sigaction(SIGUSR1, &sa, NULL));
  CHECKX("sigaction.query", sigaction(SIGUSR1, NULL, &old), "siginfo=%d", (old.sa_flags & SA_SIGINFO) != 0);
  CHECK("sigaction.kill.query", sigaction(SIGKILL, NULL, &old));
  CHECK("sigaction.efault", SYS(SYS_rt_sigaction, SIGUSR1, 8, NULL, 8));
  CHECK("raise.usr1", raise(SIGUSR1));
  FACT("raise.usr1.got", "sig=%d code=%d", got, got_code);
  got = 0;
  CHECK("kill.self", kill(getpid(), SIGUSR1));
  FACT("kill.self.got", "sig=%d code=%d", got, got_code);
  got = 0;
  union sigval v = {.sival_int = 42};
  CHECK("sigqueue.self", sigqueue(getpid(), SIGUSR1, v));
  FACT("sigqueue.self.got", "sig=%d code=%d value=%d", got, got_code, got_value);
  /* A pointer travels whole (all 64 bits of si_value). */
  got = 0;
  char *target = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  union sigval vp = {.sival_ptr = target};
  CHECK("sigqueue.ptr", sigqueue(getpid(), SIGUSR1, vp));
  FACT("sigqueue.ptr.got", "sig=%d same=%d above4g=%d", got, got_ptr == (void *)target,
       (uintptr_t)target > 0xffffffffu);
  munmap(target, 4096);
  got = 0;
  siginfo_t si = {0};
  si.si_code = SI_USER;
  CHECK("rt_sigqueueinfo.si_user", SYS(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si));
  si.si_code = -5;
  CHECK("rt_sigqueueinfo.neg", SYS(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si));
  FACT("rt_sigqueueinfo.neg.got", "sig=%d code=%d", got, got_code);
  CHECK("rt_sigqueueinfo.noent", SYS(SYS_rt_sigqueueinfo, 999999, SIGUSR1, &si));
  CHECK("tgkill.self", SYS(SYS_tgkill, getpid(), SYS(SYS_gettid), SIGUSR1));
  CHECK("tgkill.badtid", SYS(SYS_tgkill, getpid(), 999999, SIGUSR1));
  CHECK("tgkill.neg", SYS(SYS_tgkill, getpid(), -1, SIGUSR1));
  CHECK("tkill.0", SYS(SYS_tkill, 0, SIGUSR1));
  CHECK("tgkill.badsig", SYS(SYS_tgkill, getpid(), SYS(SYS_gettid), 99));
  signal(SIGUSR2, SIG_IGN);
  CHECK("kill.ignored", kill(getpid(), SIGUSR2));
  signal(SIGUSR2, SIG_DFL);
  /* SA_RESETHAND puts the default back after one delivery. */
  sa.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigaction(SIGUSR1, &sa, NULL);
  raise(SIGUSR1);
  sigaction(SIGUSR1, NULL, &old);
  FACT("resethand", "default_after=%d", old.sa_handler == SIG_DFL);
}

static void masks(void) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  CHECK("sigprocmask.block", sigprocmask(SIG_BLOCK, &set, &old));
  CHECK("sigprocmask.badhow", sigprocmask(99, &set, NULL));
  CHECK("rt_sigprocmask.badsize", SYS(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 4));
  struct sigaction sa = {0};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  got = 0;
  raise(SIGUSR1);
  FACT("blocked.notdelivered", "got=%d", got);
  sigset_t pend;
  CHECKX("sigpending", sigpending(&pend), "usr1=%d", sigismember(&pend, SIGUSR1));
  CHECK("rt_sigpending.big", SYS(SYS_rt_sigpending, &pend, 16));
  struct timespec ts = {0, 0};
  siginfo_t si;
  CHECKX("sigtimedwait", sigtimedwait(&set, &si, &ts), "code=%d", si.si_code);
  CHECK("sigtimedwait.again", sigtimedwait(&set, &si, &ts));
  ts.tv_nsec = 2000000000;
  CHECK("sigtimedwait.badts", sigtimedwait(&set, &si, &ts));
  sigset_t all;
  sigfillset(&all);
  CHECK("sigprocmask.all", sigprocmask(SIG_SETMASK, &all, NULL));
  sigset_t now;
  sigprocmask(SIG_SETMASK, NULL, &now);
  FACT("sigprocmask.kill.unblockable", "kill=%d stop=%d", sigismember(&now, SIGKILL), sigismember(&now, SIGSTOP));
  sigprocmask(SIG_SETMASK, &old, NULL);
  /* A blocked signal, then unblocked: delivered at once. */
  sigprocmask(SIG_BLOCK, &set, NULL);
  raise(SIGUSR1);
  got = 0;
  sigprocmask(SIG_UNBLOCK, &set, NULL);
  FACT("unblocked.delivered", "got=%d", got);
  /* sigsuspend: waits with another mask, EINTR after the handler. */
  sigprocmask(SIG_BLOCK, &set, NULL);
  kill(getpid(), SIGUSR1);
  sigset_t empty;
  sigemptyset(&empty);
  got = 0;
  CHECKX("sigsuspend", sigsuspend(&empty), "got=%d", got);
  sigprocmask(SIG_SETMASK, NULL, &now);
  FACT("sigsuspend.mask.restored", "usr1=%d", sigismember(&now, SIGUSR1));
  sigprocmask(SIG_SETMASK, &old, NULL);
}

static void altstack(void) {
  stack_t ss = {0}, o;
  CHECKX("sigaltstack.query", sigaltstack(NULL, &o), "flags=%d", o.ss_flags);
  ss.ss_sp = malloc(1024);
  ss.ss_size = 1024;
  CHECK("sigaltstack.small", sigaltstack(&ss, NULL));
  ss.ss_size = 65536;
  ss.ss_sp = malloc(65536);
  ss.ss_flags = 99;
  CHECK("sigaltstack.badflags", sigaltstack(&ss, NULL));
  ss.ss_flags = 0;
  CHECK("sigaltstack.set", sigaltstack(&ss, NULL));
  struct sigaction sa = {0};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigaction(SIGUSR2, &sa, NULL);
  got_onstack = 0;
  raise(SIGUSR2);
  FACT("sigaltstack.used", "onstack=%d", got_onstack);
  CHECKX("sigaltstack.query2", sigaltstack(NULL, &o), "flags=%d size=%ld", o.ss_flags, (long)o.ss_size);
  ss.ss_flags = SS_DISABLE;
  CHECK("sigaltstack.disable", sigaltstack(&ss, NULL));
}

static void children(void) {
  pid_t c = fork();
  if (c == 0) {
    pause();
    _exit(0);
  }
  usleep(20000);
  CHECK("kill.child.term", kill(c, SIGTERM));
  int st = 0;
  waitpid(c, &st, 0);
  FACT("child.terminated", "signaled=%d sig=%d", WIFSIGNALED(st), WTERMSIG(st));
  c = fork();
  if (c == 0) {
    for (;;)
      pause();
  }
  usleep(20000);
  kill(c, SIGSTOP);
  CHECKX("wait.stopped", waitpid(c, &st, WUNTRACED) == c, "stopped=%d sig=%d", WIFSTOPPED(st), WSTOPSIG(st));
  kill(c, SIGCONT);
  CHECKX("wait.continued", waitpid(c, &st, WCONTINUED) == c, "continued=%d", WIFCONTINUED(st));
  kill(c, SIGKILL);
  waitpid(c, &st, 0);
  FACT("child.killed", "sig=%d", WTERMSIG(st));
  /* SIGCHLD ignored: children are reaped at once, wait gives ECHILD. */
  signal(SIGCHLD, SIG_IGN);
  c = fork();
  if (c == 0)
    _exit(0);
  usleep(50000);
  CHECK("sigchld.ignored.wait", waitpid(c, &st, 0));
  signal(SIGCHLD, SIG_DFL);
  /* An interval timer's SIGALRM interrupts a blocking read (no SA_RESTART): EINTR. */
  struct sigaction sa = {0};
  sa.sa_sigaction = handler;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGALRM, &sa, NULL);
  int p[2];
  pipe(p);
  struct itimerval it = {{0, 0}, {0, 50000}};
  setitimer(ITIMER_REAL, &it, NULL);
  char b;
  CHECKX("read.eintr", read(p[0], &b, 1), "code=%d", got_code);
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  setitimer(ITIMER_REAL, &it, NULL);
  c = fork();
  if (c == 0) {
    usleep(150000);
    write(p[1], "x", 1);
    _exit(0);
  }
  CHECK("read.restarted", read(p[0], &b, 1));
  waitpid(c, &st, 0);
  /* A child's exit and its SIGCHLD (a handler without SA_RESTART) come together: the
     blocked waitpid answers the child, not EINTR (Linux looks for the zombie first). */
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGCHLD, &sa, NULL);
  for (int i = 0; i < 2; i++) {
    c = fork();
    if (c == 0) {
      if (i)
        usleep(50000);
      _exit(7);
    }
    st = 0;
    pid_t r = waitpid(c, &st, 0);
    CHECKX(i ? "waitpid.sigchld.later" : "waitpid.sigchld.at.once", r == c ? 0 : -1, "status=%d",
           WEXITSTATUS(st));
    if (r != c)
      waitpid(c, &st, 0);
  }
  signal(SIGCHLD, SIG_DFL);
  CHECK("alarm.set", alarm(5));
  CHECK("alarm.cancel", alarm(0) > 0);
  CHECK("pause.after.alarm.none", alarm(0));
}



/* signalfd: a thread's pending signals of a mask, read as signalfd_siginfo. */
static void signalfds(void) {
  sigset_t m, was;
  sigemptyset(&m);
  sigaddset(&m, SIGUSR1);
  sigaddset(&m, SIGUSR2);
  sigaddset(&m, SIGCHLD);
  sigaddset(&m, SIGRTMIN + 1);
  sigprocmask(SIG_BLOCK, &m, &was);
  CHECK("signalfd.badsize", SYS(SYS_signalfd4, -1, &m, 4, 0));
  CHECK("signalfd.badflags", SYS(SYS_signalfd4, -1, &m, 8, 1));
  CHECK("signalfd.efault", SYS(SYS_signalfd4, -1, 8, 8, 0));
  CHECK("signalfd.efault.badflags", SYS(SYS_signalfd4, -1, 8, 8, 1));
  CHECK("signalfd.badfd", SYS(SYS_signalfd4, 999, &m, 8, 0));
  CHECK("signalfd.negfd", SYS(SYS_signalfd4, -2, &m, 8, 0));
  CHECK("signalfd.notsignalfd", SYS(SYS_signalfd4, 1, &m, 8, 0));
  int fd = signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
  FACT("signalfd", "fd>2=%d cloexec=%d nonblock=%d", fd > 2, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0,
       (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  char link[64] = "", path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t ln = readlink(path, link, sizeof link - 1);
  FACT("signalfd.link", "%s", ln > 0 ? link : "?");
  struct signalfd_siginfo si[4];
  CHECK("signalfd.read.none", read(fd, si, sizeof si));
  CHECK("signalfd.read.short", read(fd, si, 100));
  CHECK("signalfd.write", write(fd, si, sizeof si[0]));
  CHECK("signalfd.lseek", lseek(fd, 0, SEEK_SET));
  CHECK("signalfd_old", SYS(SYS_signalfd, fd, &m, 8));
  struct pollfd pf = {fd, POLLIN, 0};
  CHECKX("signalfd.poll.none", poll(&pf, 1, 0), "revents=%#x", pf.revents);
  /* kill, then sigqueue with a value: both read, lowest number first. */
  kill(getpid(), SIGUSR2);
  union sigval v = {.sival_int = 4321};
  sigqueue(getpid(), SIGUSR1, v);
  pf.revents = 0;
  CHECKX("signalfd.poll", poll(&pf, 1, 0), "revents=%#x", pf.revents);
  memset(si, 0, sizeof si);
  CHECKX("signalfd.read.two", read(fd, si, sizeof si), "first=%u code=%d int=%d pid_ok=%d uid_ok=%d second=%u code=%d",
         si[0].ssi_signo, si[0].ssi_code, si[0].ssi_int, si[0].ssi_pid == (unsigned)getpid(), si[0].ssi_uid == getuid(),
         si[1].ssi_signo, si[1].ssi_code);
  sigset_t pend;
  sigpending(&pend);
  FACT("signalfd.read.dequeued", "usr1=%d usr2=%d", sigismember(&pend, SIGUSR1), sigismember(&pend, SIGUSR2));
  /* One at a time when the buffer holds one. */
  kill(getpid(), SIGUSR1);
  kill(getpid(), SIGUSR2);
  CHECKX("signalfd.read.one", read(fd, si, sizeof si[0]), "signo=%u", si[0].ssi_signo);
  CHECKX("signalfd.read.next", read(fd, si, sizeof si[0]), "signo=%u", si[0].ssi_signo);
  /* A real-time signal by tgkill carries its code. */
  SYS(SYS_tgkill, getpid(), gettid(), SIGRTMIN + 1);
  CHECKX("signalfd.read.tgkill", read(fd, si, sizeof si), "signo_rt=%d code=%d", (int)si[0].ssi_signo == SIGRTMIN + 1, si[0].ssi_code);
  /* A child's exit: SIGCHLD with its pid and status. */
  pid_t c = fork();
  if (c == 0)
    _exit(7);
  int ep = epoll_create1(0);
  struct epoll_event ev = {EPOLLIN, {.u64 = 5}}, got_ev;
  epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  CHECKX("signalfd.epoll.chld", epoll_wait(ep, &got_ev, 1, 5000), "data=%lu", (unsigned long)got_ev.data.u64);
  memset(si, 0, sizeof si);
  CHECKX("signalfd.read.chld", read(fd, si, sizeof si), "signo=%u code=%d pid_ok=%d status=%d", si[0].ssi_signo, si[0].ssi_code,
         si[0].ssi_pid == (unsigned)c, si[0].ssi_status);
  waitpid(c, NULL, 0);
  close(ep);
  /* A new mask: signals outside it are not read (they stay pending). */
  sigset_t only1;
  sigemptyset(&only1);
  sigaddset(&only1, SIGUSR1);
  CHECKX("signalfd.remask", signalfd(fd, &only1, 0), "same=%d", 1);
  kill(getpid(), SIGUSR2);
  CHECK("signalfd.read.outside", read(fd, si, sizeof si));
  sigset_t w;
  sigemptyset(&w);
  sigaddset(&w, SIGUSR2);
  CHECK("signalfd.outside.sigwait", sigwaitinfo(&w, NULL));
  /* A blocking read waits for the signal a child sends. */
  int bfd = signalfd(-1, &only1, 0);
  pid_t parent = getpid();
  c = fork();
  if (c == 0) {
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL);
    kill(parent, SIGUSR1);
    _exit(0);
  }
  memset(si, 0, sizeof si);
  CHECKX("signalfd.read.blocking", read(bfd, si, sizeof si), "signo=%u pid_ok=%d", si[0].ssi_signo, si[0].ssi_pid == (unsigned)c);
  waitpid(c, NULL, 0);
  /* A child reads its own signals through the inherited descriptor. */
  c = fork();
  if (c == 0) {
    kill(getpid(), SIGUSR1);
    struct signalfd_siginfo k;
    _exit(read(bfd, &k, sizeof k) == sizeof k && k.ssi_pid == (unsigned)getpid() ? 0 : 1);
  }
  int st = 0;
  waitpid(c, &st, 0);
  FACT("signalfd.fork", "child_read_own=%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  sigset_t left;
  sigpending(&left);
  FACT("signalfd.left", "chld=%d", sigismember(&left, SIGCHLD));
  struct timespec zero = {0, 0};
  while (sigtimedwait(&m, NULL, &zero) > 0) {}
  close(bfd);
  close(fd);
  sigprocmask(SIG_SETMASK, &was, NULL);
}

static void random_setup(void) {}
static void one(int i) {
  long r;
  const char *w;
  errno = 0;
  switch (rnd_below(7)) {
  case 6: {
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGUSR1);
    w = "signalfd4";
    r = SYS(SYS_signalfd4, PICK(-1, 0, 999, -5), rnd_below(3) ? (long)&s : rnd_ptr(), PICK(8, 4, 16), rnd_flags(SFD_CLOEXEC | SFD_NONBLOCK));
    if (r > 2) { /* a new descriptor: its number is the host's business */
      close((int)r);
      r = 3;
    }
    break;
  }
  case 0: { struct sigaction o; w = "rt_sigaction.query"; r = SYS(SYS_rt_sigaction, rnd_num(70), NULL, rnd_below(3) ? (long)&o : rnd_ptr(), PICK(8, 4, 16)); break; }
  case 1: { sigset_t s, o; sigemptyset(&s); w = "rt_sigprocmask"; r = SYS(SYS_rt_sigprocmask, rnd_num(4), rnd_below(2) ? (long)&s : 0, rnd_below(2) ? (long)&o : rnd_ptr(), PICK(8, 4)); break; }
  case 2: { sigset_t s; w = "rt_sigpending"; r = SYS(SYS_rt_sigpending, rnd_below(3) ? (long)&s : rnd_ptr(), PICK(8, 4, 16)); break; }
  case 3: w = "kill0"; r = kill((pid_t)PICK(999999, -999999, 0), 0); break;
  case 4: { stack_t o; w = "sigaltstack.query"; r = sigaltstack(NULL, (void *)(rnd_below(3) ? (long)&o : rnd_ptr())); break; }
  default: w = "tgkill0"; r = SYS(SYS_tgkill, PICK(0, -1, 999999), PICK(0, -1, 999999), 0); break;
  }
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "signal";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  dispositions();
  masks();
  altstack();
  children();
  signalfds();
  return 0;
}
