/* Process calls: identities, groups and sessions, resource limits, priorities,
 * scheduling, prctl, uname, umask. */
#include "probe.h"

#include <grp.h>
#include <sched.h>
#include <sys/fsuid.h>
#include <sys/personality.h>
#include <sys/random.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <poll.h>
#include <sys/wait.h>
#include <linux/sched.h>
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

static void ids(void) {
  CHECKX("getuid.geteuid", getuid() == geteuid(), "");
  CHECKX("getgid.getegid", getgid() == getegid(), "");
  uid_t r, e, s;
  CHECKX("getresuid", getresuid(&r, &e, &s), "same=%d", r == e && e == s && r == getuid());
  CHECK("getresuid.efault", SYS(SYS_getresuid, 8, 8, 8));
  CHECK("setuid.self", setuid(getuid()));
  CHECK("setuid.root", setuid(0));
  CHECK("setgid.root", setgid(0));
  CHECK("setreuid.keep", setreuid(-1, -1));
  CHECK("setresuid.root", setresuid(0, 0, 0));
  CHECK("setgroups.none", setgroups(0, NULL));
  CHECK("getgroups.count", getgroups(0, NULL));
  CHECK("getgroups.neg", getgroups(-1, NULL));
  CHECKX("setfsuid", setfsuid(-1) == (int)getuid(), "");
  CHECK("getpgrp.is.getpgid", getpgrp() == getpgid(0));
  CHECK("getpgid.noent", getpgid(999999));
  CHECK("getpgid.neg", getpgid(-5));
  CHECK("getsid.noent", getsid(999999));
  CHECK("setpgid.neg", setpgid(0, -1));
  CHECK("setpgid.noent", setpgid(999999, 0));
  CHECK("kill.noent", kill(999999, 0));
  CHECK("kill.badsig", kill(getpid(), 65));
  CHECK("kill.self.0", kill(getpid(), 0));
  CHECK("kill.init", kill(1, 0));
  CHECK("getppid.positive", getppid() >= 0);
  pid_t c = fork();
  if (c == 0) {
    long s1 = setsid();
    long s2 = setsid();
    _exit(s1 == getpid() && s2 == -1 && errno == EPERM ? 0 : 1);
  }
  int st = 0;
  CHECKX("fork.setsid", waitpid(c, &st, 0) == c, "child ok=%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK("waitpid.nochild", waitpid(-1, &st, WNOHANG));
  CHECK("waitpid.badopt", waitpid(-1, &st, 0x1000));
  c = fork();
  if (c == 0)
    _exit(7);
  CHECKX("wait4", wait4(c, &st, 0, NULL) == c, "exited=%d code=%d", WIFEXITED(st), WEXITSTATUS(st));
  c = fork();
  if (c == 0)
    _exit(3);
  siginfo_t si = {0};
  CHECKX("waitid", waitid(P_PID, c, &si, WEXITED), "code=%d status=%d pid=%d", si.si_code, si.si_status, si.si_pid == c);
  CHECK("waitid.badidtype", waitid(9, 0, &si, WEXITED));
  CHECK("waitid.nooptions", waitid(P_ALL, 0, &si, 0));
}

static void limits(void) {
  struct rlimit rl, orig;
  getrlimit(RLIMIT_FSIZE, &orig);
  rl.rlim_cur = 1024;
  rl.rlim_max = orig.rlim_max;
  CHECK("setrlimit.fsize.soft", setrlimit(RLIMIT_FSIZE, &rl));
  CHECKX("getrlimit.fsize", getrlimit(RLIMIT_FSIZE, &rl), "soft=%lu hard_kept=%d", (unsigned long)rl.rlim_cur,
         rl.rlim_max == orig.rlim_max);
  rl.rlim_cur = orig.rlim_max;
  CHECK("setrlimit.fsize.raise.back", setrlimit(RLIMIT_FSIZE, &rl));
  CHECKX("getrlimit.fsize.raised", getrlimit(RLIMIT_FSIZE, &rl), "soft_is_hard=%d", rl.rlim_cur == rl.rlim_max);
  rl.rlim_cur = 2;
  rl.rlim_max = 1;
  CHECK("setrlimit.soft.above.hard", setrlimit(RLIMIT_FSIZE, &rl));
  getrlimit(RLIMIT_NOFILE, &orig);
  rl = orig;
  if (rl.rlim_max != RLIM_INFINITY)
    rl.rlim_max += 1;
  CHECK("setrlimit.nofile.raise.hard", setrlimit(RLIMIT_NOFILE, &rl));
  rl.rlim_cur = 16;
  rl.rlim_max = orig.rlim_max;
  CHECK("setrlimit.nofile.16", setrlimit(RLIMIT_NOFILE, &rl));
  CHECK("dup.past.nofile", fcntl(0, F_DUPFD, 16));
  CHECK("dup2.past.nofile", dup2(0, 20));
  CHECKX("getrlimit.nofile", getrlimit(RLIMIT_NOFILE, &rl), "soft=%lu", (unsigned long)rl.rlim_cur);
  rl.rlim_cur = orig.rlim_cur;
  setrlimit(RLIMIT_NOFILE, &rl);
  CHECK("getrlimit.bad", getrlimit(99, &rl));
  CHECK("getrlimit.efault", getrlimit(RLIMIT_NOFILE, (void *)8));
  CHECK("prlimit.noent", prlimit(999999, RLIMIT_NOFILE, NULL, &rl));
  CHECK("prlimit.self", prlimit(getpid(), RLIMIT_NOFILE, NULL, &rl));
  /* A lowered RLIMIT_FSIZE: a write past it fails with EFBIG (SIGXFSZ ignored). */
  signal(SIGXFSZ, SIG_IGN);
  getrlimit(RLIMIT_FSIZE, &orig);
  rl.rlim_cur = 10;
  rl.rlim_max = orig.rlim_max;
  setrlimit(RLIMIT_FSIZE, &rl);
  int fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0600);
  CHECK("fsize.write.partial", write(fd, "0123456789abcdef", 16));
  CHECK("fsize.write.past", write(fd, "x", 1));
  CHECK("fsize.ftruncate.past", ftruncate(fd, 11));
  close(fd);
  setrlimit(RLIMIT_FSIZE, &orig);
  pid_t c = fork();
  if (c == 0) {
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    _exit(r.rlim_cur == orig.rlim_cur ? 0 : 1);
  }
  int st;
  waitpid(c, &st, 0);
  FACT("fsize.restored.inherited", "%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  rl.rlim_cur = 4096;
  rl.rlim_max = orig.rlim_max;
  setrlimit(RLIMIT_FSIZE, &rl);
  c = fork();
  if (c == 0) {
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    _exit(r.rlim_cur == 4096 ? 0 : 1);
  }
  waitpid(c, &st, 0);
  FACT("fsize.lowered.inherited", "%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  setrlimit(RLIMIT_FSIZE, &orig);
  rl.rlim_cur = rl.rlim_max = 12345;
  CHECK("setrlimit.core", setrlimit(RLIMIT_CORE, &rl));
  struct rlimit core;
  CHECKX("getrlimit.core", getrlimit(RLIMIT_CORE, &core), "%lu %lu", (unsigned long)core.rlim_cur, (unsigned long)core.rlim_max);
  core.rlim_cur = 0;
  CHECK("setrlimit.core.lower", setrlimit(RLIMIT_CORE, &core));
  CHECKX("getrlimit.core.after", getrlimit(RLIMIT_CORE, &core), "%lu %lu", (unsigned long)core.rlim_cur, (unsigned long)core.rlim_max);
}

static void priorities(void) {
  errno = 0;
  int p0 = getpriority(PRIO_PROCESS, 0);
  FACT("getpriority.initial", "%d errno=%d", p0, errno);
  CHECK("setpriority.raise.nice", setpriority(PRIO_PROCESS, 0, 5));
  errno = 0;
  int p1 = getpriority(PRIO_PROCESS, 0);
  FACT("getpriority.after", "%d errno=%d", p1, errno);
  CHECK("setpriority.lower.nice", setpriority(PRIO_PROCESS, 0, 0));
  CHECK("setpriority.same", setpriority(PRIO_PROCESS, 0, 5));
  CHECK("setpriority.clamp", setpriority(PRIO_PROCESS, 0, 100));
  errno = 0;
  FACT("getpriority.clamped", "%d", getpriority(PRIO_PROCESS, 0));
  CHECK("setpriority.badwhich", setpriority(9, 0, 5));
  CHECK("getpriority.badwhich", SYS(SYS_getpriority, 9, 0));
  CHECK("getpriority.noent", SYS(SYS_getpriority, PRIO_PROCESS, 999999));
  CHECK("setpriority.noent", setpriority(PRIO_PROCESS, 999999, 5));
  CHECK("getpriority.pgrp", SYS(SYS_getpriority, PRIO_PGRP, 0));
  CHECKV("getpriority.user", SYS(SYS_getpriority, PRIO_USER, 0));
  pid_t c = fork();
  if (c == 0)
    _exit(getpriority(PRIO_PROCESS, 0) == 19 ? 0 : 1);
  int st;
  waitpid(c, &st, 0);
  FACT("nice.inherited", "%d", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  CHECK("nice.syscall.raw", SYS(SYS_getpriority, PRIO_PROCESS, 0));
}

static void sched(void) {
  CHECK("sched_getscheduler.self", sched_getscheduler(0));
  CHECK("sched_getscheduler.neg", sched_getscheduler(-1));
  CHECK("sched_getscheduler.noent", sched_getscheduler(999999));
  /* The parent (natively the harness; in a sandbox its init): it exists. */
  CHECK("sched_getscheduler.parent", sched_getscheduler(getppid()));
  struct sched_param sp = {0};
  CHECK("sched_getparam.self", sched_getparam(0, &sp));
  CHECK("sched_getparam.neg", sched_getparam(-1, &sp));
  CHECK("sched_getparam.noent", sched_getparam(999999, &sp));
  CHECK("sched_getparam.null", SYS(SYS_sched_getparam, 0, 0));
  CHECK("sched_setscheduler.fifo", sched_setscheduler(0, SCHED_FIFO, &(struct sched_param){.sched_priority = 1}));
  CHECK("sched_setscheduler.other.prio", sched_setscheduler(0, SCHED_OTHER, &(struct sched_param){.sched_priority = 1}));
  CHECK("sched_setscheduler.batch", sched_setscheduler(0, SCHED_BATCH, &sp));
  CHECK("sched_getscheduler.batch", sched_getscheduler(0));
  CHECK("sched_setscheduler.other", sched_setscheduler(0, SCHED_OTHER, &sp));
  CHECK("sched_setscheduler.neg", sched_setscheduler(-1, SCHED_OTHER, &sp));
  CHECK("sched_setscheduler.bad", sched_setscheduler(0, 99, &sp));
  CHECK("sched_setparam.neg", sched_setparam(-1, &sp));
  CHECK("sched_get_priority_max.fifo", sched_get_priority_max(SCHED_FIFO));
  CHECK("sched_get_priority_min.rr", sched_get_priority_min(SCHED_RR));
  CHECK("sched_get_priority_max.bad", sched_get_priority_max(99));
  cpu_set_t set;
  CHECKV("sched_getaffinity.self", SYS(SYS_sched_getaffinity, 0, sizeof set, &set));
  CHECK("sched_getaffinity.neg", SYS(SYS_sched_getaffinity, -1, sizeof set, &set));
  CHECK("sched_getaffinity.noent", SYS(SYS_sched_getaffinity, 999999, sizeof set, &set));
  CHECK("sched_getaffinity.small", SYS(SYS_sched_getaffinity, 0, 4, &set));
  CHECK("sched_getaffinity.odd", SYS(SYS_sched_getaffinity, 0, 12, &set));
  CHECK("sched_getaffinity.efault", SYS(SYS_sched_getaffinity, 0, sizeof set, 8));
  CHECK("sched_setaffinity.neg", SYS(SYS_sched_setaffinity, -1, sizeof set, &set));
  CPU_ZERO(&set);
  CHECK("sched_setaffinity.empty", sched_setaffinity(0, sizeof set, &set));
  struct timespec ts;
  CHECK("sched_rr_get_interval.neg", sched_rr_get_interval(-1, &ts));
  CHECK("sched_rr_get_interval.noent", sched_rr_get_interval(999999, &ts));
  CHECK("sched_yield", sched_yield());
}

static void misc(void) {
  struct utsname u;
  CHECKX("uname", uname(&u), "sysname=%s machine=%s", u.sysname, u.machine);
  CHECK("uname.efault", uname((void *)8));
  CHECK("prctl.set_name", prctl(PR_SET_NAME, "probe-name"));
  char name[32] = {0};
  CHECKX("prctl.get_name", prctl(PR_GET_NAME, name), "%s", name);
  CHECK("prctl.bad", prctl(9999));
  CHECK("prctl.get_dumpable", prctl(PR_GET_DUMPABLE));
  CHECK("prctl.no_new_privs.get", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  CHECK("prctl.pdeathsig.get", prctl(PR_GET_PDEATHSIG, name));
  CHECK("prctl.keepcaps.get", prctl(PR_GET_KEEPCAPS));
  CHECK("prctl.timerslack.get", prctl(PR_GET_TIMERSLACK) > 0);
  CHECK("prctl.child_subreaper.get", prctl(PR_GET_CHILD_SUBREAPER, name));
  CHECK("prctl.set_dumpable.bad", prctl(PR_SET_DUMPABLE, 5));
  CHECK("umask.syscall", SYS(SYS_umask, 0777 | 07000) >= 0);
  CHECK("umask.masked", SYS(SYS_umask, 022));
  CHECK("personality.query", personality(0xffffffff));
  CHECK("getrandom", getrandom(name, 16, 0));
  CHECK("getrandom.badflags", getrandom(name, 16, 0x100));
  CHECK("getrandom.efault", getrandom((void *)8, 16, 0));
  struct rusage ru;
  CHECK("getrusage.self", getrusage(RUSAGE_SELF, &ru));
  CHECK("getrusage.bad", getrusage(99, &ru));
  CHECK("getrusage.thread", getrusage(RUSAGE_THREAD, &ru));
}


/* The state letter of /proc/PID/stat and the State line of /proc/PID/status. */
static void proc_state(pid_t pid, char *letter, char *line, size_t n) {
  char path[64], buf[512];
  *letter = '?';
  snprintf(line, n, "?");
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (f) {
    if (fgets(buf, sizeof buf, f)) {
      char *e = strrchr(buf, ')');
      if (e && e[1] == ' ')
        *letter = e[2];
    }
    fclose(f);
  }
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  f = fopen(path, "r");
  if (f) {
    while (fgets(buf, sizeof buf, f))
      if (strncmp(buf, "State:", 6) == 0) {
        buf[strcspn(buf, "\n")] = 0;
        snprintf(line, n, "%s", buf + 7);
      }
    fclose(f);
  }
}

/* A process's state as ps and top read it: running (the reader), sleeping in a
 * syscall, a zombie until reaped. */
static void states(void) {
  char c, line[64];
  proc_state(getpid(), &c, line, sizeof line);
  FACT("state.self", "%c %s", c, line);
  int p[2];
  if (pipe(p) != 0)
    return;
  pid_t k = fork();
  if (k == 0) {
    char b;
    read(p[0], &b, 1);
    _exit(0);
  }
  usleep(100000);
  proc_state(k, &c, line, sizeof line);
  FACT("state.sleeping", "%c %s", c, line);
  write(p[1], "x", 1);
  usleep(100000);
  proc_state(k, &c, line, sizeof line);
  FACT("state.zombie", "%c %s", c, line);
  waitpid(k, NULL, 0);
  close(p[0]);
  close(p[1]);
}

/* Process descriptors: pidfd_open's checks, poll once the process exited and once it
 * was reaped, pidfd_send_signal's scopes and siginfo rules, waitid(P_PIDFD) blocking
 * and not, clone(CLONE_PIDFD), pidfd_getfd. */
static short pollfd1(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

static void pidfds(void) {
  CHECK("pidfd.open.zero", SYS(SYS_pidfd_open, 0, 0));
  CHECK("pidfd.open.neg", SYS(SYS_pidfd_open, -5, 0));
  CHECK("pidfd.open.flags", SYS(SYS_pidfd_open, getpid(), 1));
  CHECK("pidfd.open.none", SYS(SYS_pidfd_open, 4000000, 0));
  int me = SYS(SYS_pidfd_open, getpid(), 0);
  CHECKX("pidfd.open.self", me >= 0 ? 0 : -1, "cloexec=%d flags=%o", (fcntl(me, F_GETFD) & FD_CLOEXEC) != 0,
         fcntl(me, F_GETFL) & ~O_LARGEFILE);
  char b[8];
  CHECK("pidfd.read", read(me, b, sizeof b));
  CHECK("pidfd.write", write(me, "x", 1));
  CHECK("pidfd.lseek", lseek(me, 0, SEEK_SET));
  FACT("pidfd.poll.self", "revents=%d", pollfd1(me));
  CHECK("pidfd.signal.zero", SYS(SYS_pidfd_send_signal, me, 0, NULL, 0));
  CHECK("pidfd.signal.badsig", SYS(SYS_pidfd_send_signal, me, 99, NULL, 0));
  CHECK("pidfd.signal.badflags", SYS(SYS_pidfd_send_signal, me, 0, NULL, 8));
  CHECK("pidfd.signal.twoscopes", SYS(SYS_pidfd_send_signal, me, 0, NULL, 3));
  CHECK("pidfd.signal.notpidfd", SYS(SYS_pidfd_send_signal, 0, 0, NULL, 0));
  CHECK("pidfd.signal.badfd", SYS(SYS_pidfd_send_signal, 999, 0, NULL, 0));
  CHECK("pidfd.signal.efault", SYS(SYS_pidfd_send_signal, me, SIGUSR1, (void *)8, 0));
  siginfo_t si;
  memset(&si, 0, sizeof si);
  si.si_signo = SIGUSR2;
  si.si_code = SI_QUEUE;
  CHECK("pidfd.signal.info.mismatch", SYS(SYS_pidfd_send_signal, me, SIGUSR1, &si, 0));
  signal(SIGUSR1, SIG_IGN);
  si.si_signo = SIGUSR1;
  si.si_code = 5; /* a kernel code: only to oneself */
  CHECK("pidfd.signal.info.self", SYS(SYS_pidfd_send_signal, me, SIGUSR1, &si, 0));
  CHECK("pidfd.signal.scope.thread", SYS(SYS_pidfd_send_signal, me, SIGUSR1, NULL, 1));
  CHECK("pidfd.signal.scope.group", SYS(SYS_pidfd_send_signal, me, SIGUSR1, NULL, 2));
  signal(SIGUSR1, SIG_DFL);

  int hold[2];
  if (pipe(hold) != 0)
    return;
  pid_t k = fork();
  if (k == 0) {
    char c;
    read(hold[0], &c, 1);
    _exit(5);
  }
  close(hold[0]);
  int fd = SYS(SYS_pidfd_open, k, PIDFD_NONBLOCK);
  CHECKX("pidfd.child.open", fd >= 0 ? 0 : -1, "nonblock=%d", (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  FACT("pidfd.child.poll.running", "revents=%d", pollfd1(fd));
  siginfo_t w;
  memset(&w, 0, sizeof w);
  CHECKX("pidfd.waitid.nonblock", SYS(SYS_waitid, P_PIDFD, fd, &w, WEXITED, NULL), "signo=%d", w.si_signo);
  CHECKX("pidfd.waitid.wnohang", SYS(SYS_waitid, P_PIDFD, fd, &w, WEXITED | WNOHANG, NULL), "signo=%d pid=%d",
         w.si_signo, w.si_pid);
  memset(&si, 0, sizeof si);
  si.si_signo = SIGUSR1;
  si.si_code = SI_QUEUE;
  CHECK("pidfd.child.signal.forged", SYS(SYS_pidfd_send_signal, fd, SIGUSR1, (si.si_code = 5, &si), 0));
  write(hold[1], "x", 1);
  close(hold[1]);
  struct pollfd pf = {.fd = fd, .events = POLLIN};
  CHECKX("pidfd.child.poll.exited", poll(&pf, 1, 5000), "revents=%d", pf.revents);
  CHECK("pidfd.child.signal.zombie", SYS(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0));
  memset(&w, 0, sizeof w);
  CHECKX("pidfd.waitid.reap", SYS(SYS_waitid, P_PIDFD, fd, &w, WEXITED, NULL), "code=%d status=%d pid=%s", w.si_code,
         w.si_status, w.si_pid == k ? "child" : "other");
  FACT("pidfd.child.poll.reaped", "revents=%d", pollfd1(fd));
  CHECK("pidfd.child.signal.reaped", SYS(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0));
  CHECK("pidfd.waitid.reaped", SYS(SYS_waitid, P_PIDFD, fd, &w, WEXITED, NULL));
  CHECK("pidfd.waitid.notpidfd", SYS(SYS_waitid, P_PIDFD, 0, &w, WEXITED, NULL));
  CHECK("pidfd.waitid.negfd", SYS(SYS_waitid, P_PIDFD, -1, &w, WEXITED, NULL));
  close(fd);

  /* A /proc/PID directory stands for a pidfd in pidfd_send_signal, and only there. */
  int pd = open("/proc/self", O_RDONLY | O_DIRECTORY);
  CHECK("pidfd.procdir.signal.zero", SYS(SYS_pidfd_send_signal, pd, 0, NULL, 0));
  signal(SIGUSR1, SIG_IGN);
  CHECK("pidfd.procdir.signal.usr1", SYS(SYS_pidfd_send_signal, pd, SIGUSR1, NULL, 0));
  signal(SIGUSR1, SIG_DFL);
  CHECK("pidfd.procdir.signal.badsig", SYS(SYS_pidfd_send_signal, pd, 99, NULL, 0));
  CHECK("pidfd.procdir.waitid", SYS(SYS_waitid, P_PIDFD, pd, &w, WEXITED | WNOHANG, NULL));
  close(pd);
  pd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
  CHECK("pidfd.procdir.fddir", SYS(SYS_pidfd_send_signal, pd, 0, NULL, 0));
  close(pd);
  pd = open("/proc/self/status", O_RDONLY);
  CHECK("pidfd.procdir.file", SYS(SYS_pidfd_send_signal, pd, 0, NULL, 0));
  close(pd);
  pd = open("/proc", O_RDONLY | O_DIRECTORY);
  CHECK("pidfd.procdir.root", SYS(SYS_pidfd_send_signal, pd, 0, NULL, 0));
  close(pd);
  k = fork();
  if (k == 0)
    _exit(0);
  char kp[32];
  snprintf(kp, sizeof kp, "/proc/%d", (int)k);
  pd = open(kp, O_RDONLY | O_DIRECTORY);
  usleep(50000);
  CHECK("pidfd.procdir.child.zombie", SYS(SYS_pidfd_send_signal, pd, SIGTERM, NULL, 0));
  waitpid(k, NULL, 0);
  CHECK("pidfd.procdir.child.reaped", SYS(SYS_pidfd_send_signal, pd, SIGTERM, NULL, 0));
  close(pd);

  /* clone(CLONE_PIDFD): the pidfd in the parent only, where parent_tid points. */
  int cfd = -1;
  long c = SYS(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &cfd, NULL, 0);
  if (c == 0)
    _exit(fcntl(cfd, F_GETFD) == -1 ? 0 : 1);
  CHECKX("pidfd.clone", c > 0 ? 0 : -1, "pidfd=%d cloexec=%d", cfd >= 0, cfd >= 0 && (fcntl(cfd, F_GETFD) & FD_CLOEXEC));
  memset(&w, 0, sizeof w);
  CHECKX("pidfd.clone.wait", SYS(SYS_waitid, P_PIDFD, cfd, &w, WEXITED, NULL), "status=%d", w.si_status);
  close(cfd);
  int x = 0;
  CHECK("pidfd.clone.settid", SYS(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &x, NULL, 0));
  CHECK("pidfd.clone.detached", SYS(SYS_clone, CLONE_PIDFD | CLONE_DETACHED | SIGCHLD, 0, &x, NULL, 0));

  /* pidfd_getfd takes another process's descriptor with ptrace's rights. */
  CHECK("pidfd.getfd.flags", SYS(SYS_pidfd_getfd, me, 0, 1));
  CHECK("pidfd.getfd.self", SYS(SYS_pidfd_getfd, me, 1, 0));
  close(me);
}

static void random_setup(void) {}
static void one(int i) {
  long r;
  const char *w;
  errno = 0;
  switch (rnd_below(10)) {
  case 0: { struct rlimit rl; w = "getrlimit"; r = getrlimit((int)rnd_num(18), (void *)(rnd_below(4) ? (long)&rl : rnd_ptr())); break; }
  case 1: w = "getpriority"; r = SYS(SYS_getpriority, rnd_num(4), PICK(0, 999999, -1)); break;
  case 2: w = "sched_getscheduler"; r = sched_getscheduler((pid_t)PICK(0, -1, 999999)); break;
  case 3: { struct sched_param sp; w = "sched_getparam"; r = sched_getparam((pid_t)PICK(0, -1, 999999), (void *)(rnd_below(3) ? (long)&sp : rnd_ptr())); break; }
  case 4: w = "sched_get_priority_max"; r = sched_get_priority_max((int)rnd_num(8)); break;
  case 5: w = "getpgid"; r = getpgid((pid_t)PICK(0, -1, 999999)); r = r >= 0 ? 0 : -1; break;
  case 6: w = "kill0"; r = kill((pid_t)PICK(999999, -999999), 0); break;
  case 7: w = "prctl"; r = prctl((int)PICK(PR_GET_DUMPABLE, PR_GET_NAME, PR_GET_KEEPCAPS, PR_GET_NO_NEW_PRIVS, 9999, PR_SET_NAME), rnd_ptr(), 0, 0, 0); if (r > 1) r = 1; break;
  case 8: { struct rusage ru; w = "getrusage"; r = getrusage((int)PICK(0, -1, 1, 2, 99), (void *)(rnd_below(3) ? (long)&ru : rnd_ptr())); break; }
  default: w = "umask"; r = SYS(SYS_umask, PICK(022, 077, 0777, 07777)); break;
  }
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "proc";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  ids();
  limits();
  priorities();
  sched();
  misc();
  states();
  pidfds();
  return 0;
}
