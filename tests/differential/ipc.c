/* System V IPC: shared memory segments (shmget, shmat, shmdt, shmctl), semaphore sets
 * (semget, semop, semtimedop, semctl) and message queues (msgget, msgsnd, msgrcv,
 * msgctl): sizes, keys and permissions, attaching at fixed addresses, what fork and exit
 * do to attachments and undo adjustments, blocking and waking (by another process, by
 * IPC_RMID, by a signal), the limits IPC_INFO reports.
 *
 * The native reference runs in the host's IPC namespace, where other users may own
 * objects: every key is checked unused first (derived from the pid), ids, indexes, pids
 * and times are printed as relations only, and every object made here is removed on
 * every path (atexit, and on a crash) so that nothing is left behind. Every wait is
 * bounded (alarm in the waiting process, a deadline on each child). */
#include "probe.h"

#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/ipc.h>
#include <mqueue.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif
#ifndef MSG_COPY
#define MSG_COPY 040000
#endif
#ifndef SHM_EXEC
#define SHM_EXEC 0100000
#endif

#define PG 4096L
/* An id no namespace holds (its index is past any limit), and a kernel address. */
#define BADID INT_MAX
#define KADDR 0xffff800000000000L

/* The twelve calls, raw (libc may wrap semctl's union, semop, the *_STAT commands). */
static long sys_shmget(long key, long size, long flg) { return SYS(SYS_shmget, key, size, flg); }
static long sys_shmat(long id, long addr, long flg) { return SYS(SYS_shmat, id, addr, flg); }
static long sys_shmdt(long addr) { return SYS(SYS_shmdt, addr); }
static long sys_shmctl(long id, long cmd, void *buf) { return SYS(SYS_shmctl, id, cmd, buf); }
static long sys_semget(long key, long nsems, long flg) { return SYS(SYS_semget, key, nsems, flg); }
static long sys_semop(long id, void *sops, long nsops) { return SYS(SYS_semop, id, sops, nsops); }
static long sys_semtimedop(long id, void *sops, long nsops, void *ts) { return SYS(SYS_semtimedop, id, sops, nsops, ts); }
static long sys_semctl(long id, long num, long cmd, long arg) { return SYS(SYS_semctl, id, num, cmd, arg); }
static long sys_msgget(long key, long flg) { return SYS(SYS_msgget, key, flg); }
static long sys_msgsnd(long id, void *msgp, long sz, long flg) { return SYS(SYS_msgsnd, id, msgp, sz, flg); }
static long sys_msgrcv(long id, void *msgp, long sz, long typ, long flg) { return SYS(SYS_msgrcv, id, msgp, sz, typ, flg); }
static long sys_msgctl(long id, long cmd, void *buf) { return SYS(SYS_msgctl, id, cmd, buf); }

/* ---- Objects made here, removed at exit (by the main process only). ---- */
enum { SHM, SEM, MSG };
static struct {
  int kind;
  long id;
} OBJS[512];
static int NOBJS;
static pid_t MAIN_PID;

static long track(int kind, long id) {
  if (id >= 0 && NOBJS < (int)(sizeof OBJS / sizeof OBJS[0])) {
    OBJS[NOBJS].kind = kind;
    OBJS[NOBJS++].id = id;
  }
  return id;
}
static long rmid(int kind, long id) {
  switch (kind) {
  case SHM: return sys_shmctl(id, IPC_RMID, NULL);
  case SEM: return sys_semctl(id, 0, IPC_RMID, 0);
  default: return sys_msgctl(id, IPC_RMID, NULL);
  }
}
/* Whether a tracked object still exists (IPC_STAT finds it, or refuses it). */
static int exists(int kind, long id) {
  static char buf[512];
  long r;
  switch (kind) {
  case SHM: r = sys_shmctl(id, IPC_STAT, buf); break;
  case SEM: r = sys_semctl(id, 0, IPC_STAT, (long)buf); break;
  default: r = sys_msgctl(id, IPC_STAT, buf); break;
  }
  return !(r == -1 && (errno == EINVAL || errno == EIDRM));
}
static void cleanup(void) {
  if (getpid() != MAIN_PID)
    return;
  for (int i = 0; i < NOBJS; i++)
    rmid(OBJS[i].kind, OBJS[i].id);
  NOBJS = 0;
}
static void on_crash(int sig) {
  cleanup();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* A key that no object of any kind holds, from the pid (so that runs in parallel and
 * other users of the host's namespace do not meet). */
static long KEYBASE;
static int KEYN;
static long fresh_key(void) {
  for (int tries = 0; tries < 4096; tries++) {
    long k = KEYBASE + KEYN++;
    if (sys_shmget(k, 0, 0) == -1 && errno == ENOENT && sys_semget(k, 0, 0) == -1 && errno == ENOENT &&
        sys_msgget(k, 0) == -1 && errno == ENOENT)
      return k;
  }
  return KEYBASE + KEYN++;
}

/* ---- Reporting relations instead of host-dependent values. ---- */
static void report_id(const char *label, const char *what, long r, int e, long same) {
  report(label, what, r == -1 ? -1 : 0, e, r == -1 ? NULL : "%s",
         r == same ? "the same id" : "an id");
}
/* CREATE(label, var, kind, expr): makes an object (tracked), prints ok or the error. */
#define CREATE(label, var, kind, expr) do { errno = 0; var = (expr); int e_ = errno; track(kind, var); report_id(label, #expr, var, e_, -2); } while (0)
/* SAMEID(label, kind, expr, want): a call returning an id: whether it is `want`. */
#define SAMEID(label, kind, expr, want) do { errno = 0; long r_ = (expr); int e_ = errno; if (r_ != (want)) track(kind, r_); report_id(label, #expr, r_, e_, want); } while (0)
/* ADDR(label, var, expr, want): shmat: the address is `want` (when not 0), or some. */
static void report_addr(const char *label, const char *what, long r, int e, long want) {
  report(label, what, r == -1 ? -1 : 0, e, r == -1 ? NULL : "%s",
         want && r == want ? "at the address asked" : want ? "at another address" : "an address");
}
#define ADDR(label, var, expr, want) do { errno = 0; var = (expr); int e_ = errno; report_addr(label, #expr, var, e_, want); } while (0)
/* A pid as seen from here. */
static const char *who(long pid, long child) {
  return pid == getpid() ? "self" : pid == 0 ? "0" : child && pid == child ? "child" : "other";
}

/* ---- Children: bounded waits, results by exit status. ---- */
static volatile int ALRM;
static void on_alrm(int s) {
  (void)s;
  ALRM++;
}
static void on_alrm_restart(int s) {
  (void)s;
  ALRM++;
}
/* A child's exit code: 0 for success, errno for a failed call, 125 for wrong data. */
static int code(long r) { return r == -1 ? (errno > 0 && errno < 125 ? errno : 124) : 0; }
/* Waits up to `ms` for child `c` (killed after that); describes how it ended. */
static const char *child_end(pid_t c, int ms) {
  static char buf[64];
  int st = 0;
  pid_t w = 0;
  for (int t = 0; t <= ms; t += 10) {
    w = waitpid(c, &st, WNOHANG);
    if (w != 0)
      break;
    usleep(10000);
  }
  if (w == 0) {
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    return "timeout (killed)";
  }
  if (w < 0)
    return "no child";
  if (WIFSIGNALED(st))
    snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(st));
  else if (WEXITSTATUS(st) == 0)
    snprintf(buf, sizeof buf, "ok");
  else if (WEXITSTATUS(st) == 125)
    snprintf(buf, sizeof buf, "wrong data");
  else
    snprintf(buf, sizeof buf, "-1 %s", errname(WEXITSTATUS(st)));
  return buf;
}
/* A child: `alarm` as a safety net (the handler is inherited: a wait that never ends
 * fails with EINTR instead of hanging). */
static pid_t child(void) {
  fflush(stdout);
  pid_t c = fork();
  if (c == 0)
    alarm(5);
  return c;
}
/* Polls semctl(cmd) until it is `want` (up to 5 s); returns the last value. */
static long count_until(long id, int num, int cmd, long want) {
  long v = -1;
  for (int i = 0; i < 500; i++) {
    v = sys_semctl(id, num, cmd, 0);
    if (v == want)
      break;
    usleep(10000);
  }
  return v;
}
/* A helper for a wait a signal should end: after 3 s it does what ends the wait anyway
 * (should the signal have come before the wait, or not ended it), so that nothing hangs.
 * rescued() ends it once the check is made. */
static struct sembuf *op1(int num, int op, int flg);
static pid_t rescue_sem(long s, int num) {
  pid_t c = child();
  if (c == 0) {
    usleep(3000000);
    _exit(code(sys_semop(s, op1(num, 1, 0), 1)));
  }
  return c;
}
static struct mbuf *msg(long type, const char *text);
static pid_t rescue_msg(long q, int send) {
  pid_t c = child();
  if (c == 0) {
    static char buf[8200];
    usleep(3000000);
    _exit(code(send ? sys_msgsnd(q, msg(9, "late"), 4, 0) : sys_msgrcv(q, buf, 8192, 0, IPC_NOWAIT | MSG_NOERROR)));
  }
  return c;
}
static void rescued(pid_t c) {
  kill(c, SIGKILL);
  child_end(c, 5000);
}
static void restart_handler(int on) {
  struct sigaction sa = {0};
  sa.sa_handler = on ? on_alrm_restart : on_alrm;
  sa.sa_flags = on ? SA_RESTART : 0;
  sigaction(SIGALRM, &sa, NULL);
}
static void itimer_ms(long ms) {
  struct itimerval it = {{0, 0}, {ms / 1000, (ms % 1000) * 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
}
static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Writes to p: whether it faulted (SIGSEGV caught), and the signal's code. */
static sigjmp_buf JB;
static volatile int SEGV_CODE;
static void on_segv(int s, siginfo_t *si, void *uc) {
  (void)s;
  (void)uc;
  SEGV_CODE = si->si_code;
  siglongjmp(JB, 1);
}
static int write_faults(volatile char *p, char v) {
  struct sigaction sa = {0}, old;
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGSEGV, &sa, &old);
  int faulted = 0;
  SEGV_CODE = 0;
  if (sigsetjmp(JB, 1) == 0)
    *p = v;
  else
    faulted = 1;
  sigaction(SIGSEGV, &old, NULL);
  return faulted;
}

/* ==================================================================================== */
/* Shared memory. */

static struct shmid_ds SDS;
#define SSTAT(id) (memset(&SDS, 0, sizeof SDS), sys_shmctl(id, IPC_STAT, &SDS))
#define SMODE ((unsigned)SDS.shm_perm.mode & 07777)

static void shm_sizes_keys(void) {
  long a1, a4096, a10000, x, kid, pid_;
  CREATE("shm.get.private.1", a1, SHM, sys_shmget(IPC_PRIVATE, 1, 0600));
  CREATE("shm.get.private.4096", a4096, SHM, sys_shmget(IPC_PRIVATE, 4096, 0600));
  CREATE("shm.get.private.10000", a10000, SHM, sys_shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0640));
  CREATE("shm.get.private.0", x, SHM, sys_shmget(IPC_PRIVATE, 0, 0600));
  CREATE("shm.get.private.huge", x, SHM, sys_shmget(IPC_PRIVATE, -1, 0600));
  CREATE("shm.get.private.excl", x, SHM, sys_shmget(IPC_PRIVATE, 4096, IPC_CREAT | IPC_EXCL | 0600));
  FACT("shm.get.private.distinct", "%d", x != a4096 && x != -1);
  rmid(SHM, x);
  CHECKX("shm.stat.private.1", SSTAT(a1), "segsz=%zu mode=%o nattch=%lu", SDS.shm_segsz, SMODE, (unsigned long)SDS.shm_nattch);
  CHECKX("shm.stat.private.10000", SSTAT(a10000), "segsz=%zu mode=%o key=%d", SDS.shm_segsz, SMODE, SDS.shm_perm.__key);
  /* The segment is whole pages: a 1-byte segment's page is all usable. */
  char *p1 = (char *)sys_shmat(a1, 0, 0);
  if (p1 != (char *)-1) {
    int zero = p1[0] == 0 && p1[PG - 1] == 0;
    FACT("shm.private.1.page", "zero=%d last_byte_writable=%d", zero, !write_faults(p1 + PG - 1, 'z'));
    sys_shmdt((long)p1);
  }
  char *p3 = (char *)sys_shmat(a10000, 0, 0);
  if (p3 != (char *)-1) {
    int zero = 1;
    for (long i = 0; i < 3 * PG; i++)
      zero &= p3[i] == 0;
    FACT("shm.private.10000.pages", "zero=%d", zero);
    sys_shmdt((long)p3);
  }

  /* Keys. */
  long k = fresh_key(), k2 = fresh_key();
  CREATE("shm.get.key.create", kid, SHM, sys_shmget(k, 8192, IPC_CREAT | IPC_EXCL | 0600));
  SAMEID("shm.get.key.excl.again", SHM, sys_shmget(k, 8192, IPC_CREAT | IPC_EXCL | 0600), kid);
  SAMEID("shm.get.key.creat.again", SHM, sys_shmget(k, 8192, IPC_CREAT | 0600), kid);
  SAMEID("shm.get.key.lookup", SHM, sys_shmget(k, 0, 0), kid);
  SAMEID("shm.get.key.smaller", SHM, sys_shmget(k, 100, 0600), kid);
  SAMEID("shm.get.key.larger", SHM, sys_shmget(k, 8193, 0600), kid);
  SAMEID("shm.get.key.larger.creat", SHM, sys_shmget(k, 8193, IPC_CREAT | 0600), kid);
  SAMEID("shm.get.key.larger.excl", SHM, sys_shmget(k, 8193, IPC_CREAT | IPC_EXCL | 0600), kid);
  SAMEID("shm.get.key.noent", SHM, sys_shmget(k2, 4096, 0600), -1);
  SAMEID("shm.get.key.noent.size0", SHM, sys_shmget(k2, 0, 0), -1);
  SAMEID("shm.get.key.create.size0", SHM, sys_shmget(k2, 0, IPC_CREAT | 0600), -1);
  CHECKX("shm.stat.key", SSTAT(kid), "segsz=%zu mode=%o key=%s", SDS.shm_segsz, SMODE, SDS.shm_perm.__key == k ? "same" : "other");
  rmid(SHM, kid);

  /* Permissions: the owner is held to the mode's owner bits. */
  long k3 = fresh_key();
  CREATE("shm.perm.create.0400", pid_, SHM, sys_shmget(k3, 4096, IPC_CREAT | IPC_EXCL | 0400));
  SAMEID("shm.perm.get.0600", SHM, sys_shmget(k3, 0, 0600), pid_);
  SAMEID("shm.perm.get.0400", SHM, sys_shmget(k3, 0, 0400), pid_);
  SAMEID("shm.perm.get.0", SHM, sys_shmget(k3, 0, 0), pid_);
  SAMEID("shm.perm.get.0200.creat", SHM, sys_shmget(k3, 0, IPC_CREAT | 0200), pid_);
  long pa;
  ADDR("shm.perm.at.rw", pa, sys_shmat(pid_, 0, 0), 0);
  if (pa != -1)
    sys_shmdt(pa); /* with privilege only */
  ADDR("shm.perm.at.rdonly", pa, sys_shmat(pid_, 0, SHM_RDONLY), 0);
  if (pa != -1)
    CHECK("shm.perm.dt", sys_shmdt(pa));
  CHECKX("shm.perm.stat", SSTAT(pid_), "mode=%o", SMODE);
  SDS.shm_perm.mode = 0;
  CHECK("shm.perm.set.0", sys_shmctl(pid_, IPC_SET, &SDS));
  CHECK("shm.perm.stat.0", SSTAT(pid_));
  CHECK("shm.perm.rmid", sys_shmctl(pid_, IPC_RMID, NULL));
  CHECK("shm.perm.rmid.again", sys_shmctl(pid_, IPC_RMID, NULL));
  ADDR("shm.perm.at.removed", pa, sys_shmat(pid_, 0, 0), 0);
  if (pa != -1)
    sys_shmdt(pa);

  CHECK("shm.rmid.1", sys_shmctl(a1, IPC_RMID, NULL));
  CHECK("shm.rmid.4096", sys_shmctl(a4096, IPC_RMID, NULL));
  CHECK("shm.rmid.10000", sys_shmctl(a10000, IPC_RMID, NULL));
  CHECK("shm.stat.removed", SSTAT(a4096));
}

static void shm_attaches(void) {
  long id, p1, p2, r;
  long k = fresh_key();
  CREATE("shm.att.create", id, SHM, sys_shmget(k, 8192, IPC_CREAT | IPC_EXCL | 0600));
  CHECKX("shm.att.stat.fresh", SSTAT(id), "nattch=%lu atime=%d dtime=%d ctime=%d cpid=%s lpid=%s uid=%d cuid=%d gid=%d",
         (unsigned long)SDS.shm_nattch, SDS.shm_atime != 0, SDS.shm_dtime != 0, SDS.shm_ctime != 0,
         who(SDS.shm_cpid, 0), who(SDS.shm_lpid, 0), SDS.shm_perm.uid == getuid(), SDS.shm_perm.cuid == getuid(),
         SDS.shm_perm.gid == getgid());
  ADDR("shm.at.null", p1, sys_shmat(id, 0, 0), 0);
  ADDR("shm.at.null.second", p2, sys_shmat(id, 0, 0), 0);
  if (p1 == -1 || p2 == -1) {
    rmid(SHM, id);
    return;
  }
  char *a = (char *)p1, *b = (char *)p2;
  FACT("shm.at.aligned", "%d %d distinct=%d", p1 % PG == 0, p2 % PG == 0, p1 != p2);
  a[0] = 'x';
  b[100] = 'y';
  b[8191] = 'e';
  FACT("shm.at.shared", "second_sees=%d first_sees=%d end=%d", b[0] == 'x', a[100] == 'y', a[8191] == 'e');
  CHECKX("shm.att.stat.two", SSTAT(id), "nattch=%lu atime=%d dtime=%d cpid=%s lpid=%s segsz=%zu", (unsigned long)SDS.shm_nattch,
         SDS.shm_atime != 0, SDS.shm_dtime != 0, who(SDS.shm_cpid, 0), who(SDS.shm_lpid, 0), SDS.shm_segsz);

  /* Read-only: reads see the data, a write faults, mprotect cannot make it writable. */
  long ro;
  ADDR("shm.at.rdonly", ro, sys_shmat(id, 0, SHM_RDONLY), 0);
  if (ro != -1) {
    FACT("shm.rdonly.read", "%d", ((char *)ro)[0] == 'x');
    int f = write_faults((char *)ro + 5, 'w');
    FACT("shm.rdonly.write", "faulted=%d code=%d", f, SEGV_CODE);
    CHECK("shm.rdonly.mprotect.write", mprotect((void *)ro, PG, PROT_READ | PROT_WRITE));
    CHECK("shm.rdonly.mprotect.none", mprotect((void *)ro, PG, PROT_NONE));
    CHECK("shm.rdonly.dt", sys_shmdt(ro));
  }
  ADDR("shm.at.exec", r, sys_shmat(id, 0, SHM_EXEC), 0); /* needs the mode's x bits */
  if (r != -1)
    CHECK("shm.exec.dt", sys_shmdt(r));

  /* Fixed addresses, in a hole made for them (filled again before anything the kernel
   * places could land in it). */
  char *q = mmap(NULL, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  long Q = (long)q;
  ADDR("shm.at.fixed.mapped", r, sys_shmat(id, Q, 0), Q);
  ADDR("shm.at.fixed.remap", r, sys_shmat(id, Q, SHM_REMAP), Q);
  if (r == Q)
    FACT("shm.at.fixed.remap.data", "%d", q[0] == 'x');
  munmap(q + 4 * PG, 8 * PG);
  ADDR("shm.at.fixed.unaligned", r, sys_shmat(id, Q + 4 * PG + 123, 0), Q + 4 * PG + 123);
  ADDR("shm.at.fixed.unaligned.remap", r, sys_shmat(id, Q + 4 * PG + 123, SHM_REMAP), Q + 4 * PG + 123);
  ADDR("shm.at.fixed.rnd", r, sys_shmat(id, Q + 4 * PG + 123, SHM_RND), Q + 4 * PG);
  ADDR("shm.at.fixed.overlap", r, sys_shmat(id, Q + 5 * PG, 0), Q + 5 * PG);
  ADDR("shm.at.fixed.hole", r, sys_shmat(id, Q + 7 * PG, 0), Q + 7 * PG);
  ADDR("shm.at.fixed.past.hole", r, sys_shmat(id, Q + 11 * PG, 0), Q + 11 * PG);
  ADDR("shm.at.fixed.aligned.rnd", r, sys_shmat(id, Q + 9 * PG, SHM_RND), Q + 9 * PG);
  CHECKX("shm.att.stat.fixed", SSTAT(id), "nattch=%lu", (unsigned long)SDS.shm_nattch);
  CHECK("shm.dt.fixed.middle", sys_shmdt(Q + 5 * PG));
  CHECK("shm.dt.fixed.unaligned", sys_shmdt(Q + 4 * PG + 123));
  CHECK("shm.dt.fixed", sys_shmdt(Q + 4 * PG));
  CHECK("shm.dt.fixed.again", sys_shmdt(Q + 4 * PG));
  CHECK("shm.dt.fixed.second", sys_shmdt(Q + 7 * PG));
  CHECK("shm.dt.fixed.third", sys_shmdt(Q + 9 * PG));
  CHECK("shm.dt.fixed.remapped", sys_shmdt(Q));
  CHECK("shm.dt.fixed.unmapped", sys_shmdt(Q + 4 * PG));
  mmap(q, 16 * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECK("shm.dt.anonymous", sys_shmdt(Q));
  munmap(q, 16 * PG);
  /* Without an address: SHM_REMAP is refused; SHM_RND rounding to 0 lets the kernel
   * choose. */
  ADDR("shm.at.remap.null", r, sys_shmat(id, 0, SHM_REMAP), 0);
  ADDR("shm.at.rnd.low", r, sys_shmat(id, 123, SHM_RND), 123);
  if (r != -1)
    CHECK("shm.rnd.low.dt", sys_shmdt(r));
  ADDR("shm.at.rnd.low.remap", r, sys_shmat(id, 123, SHM_RND | SHM_REMAP), 123);
  ADDR("shm.at.unaligned.low", r, sys_shmat(id, 123, 0), 123);
  ADDR("shm.at.kernel", r, sys_shmat(id, KADDR, 0), KADDR);
  ADDR("shm.at.kernel.remap", r, sys_shmat(id, KADDR, SHM_REMAP), KADDR);
  ADDR("shm.at.badid", r, sys_shmat(BADID, 0, 0), 0);
  ADDR("shm.at.negid", r, sys_shmat(-1, 0, 0), 0);

  /* Detaching what is not an attach. */
  CHECK("shm.dt.null", sys_shmdt(0));
  CHECK("shm.dt.unaligned", sys_shmdt(p1 + 1));
  CHECK("shm.dt.middle", sys_shmdt(p1 + PG));
  CHECK("shm.dt.kernel", sys_shmdt(KADDR));
  char *anon = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("shm.dt.notshm", sys_shmdt((long)anon));
  munmap(anon, PG);
  CHECK("shm.dt.second", sys_shmdt(p2));
  CHECK("shm.dt.second.again", sys_shmdt(p2));
  CHECKX("shm.att.stat.one", SSTAT(id), "nattch=%lu dtime=%d lpid=%s", (unsigned long)SDS.shm_nattch, SDS.shm_dtime != 0,
         who(SDS.shm_lpid, 0));

  /* fork: the child's attach counts, its writes are seen, its exit detaches. */
  int go[2], ready[2];
  if (pipe(go) != 0 || pipe(ready) != 0)
    return;
  pid_t c = child();
  if (c == 0) {
    a[10] = 'c';
    char t = a[0];
    if (write(ready[1], &t, 1) != 1)
      _exit(124);
    if (read(go[0], &t, 1) != 1)
      _exit(124);
    _exit(a[20] == 'p' ? 0 : 125);
  }
  char t = 0;
  CHECKX("shm.fork.child.ready", read(ready[0], &t, 1), "child_saw=%d", t == 'x');
  FACT("shm.fork.child.write", "seen=%d", a[10] == 'c');
  CHECKX("shm.fork.stat", SSTAT(id), "nattch=%lu", (unsigned long)SDS.shm_nattch);
  a[20] = 'p';
  if (write(go[1], "g", 1) != 1)
    perror("write");
  FACT("shm.fork.child", "%s", child_end(c, 5000));
  CHECKX("shm.fork.stat.exited", SSTAT(id), "nattch=%lu lpid=%s", (unsigned long)SDS.shm_nattch, who(SDS.shm_lpid, c));
  close(go[0]);
  close(go[1]);
  close(ready[0]);
  close(ready[1]);

  /* IPC_SET: the mode's permission bits only. */
  SSTAT(id);
  SDS.shm_perm.mode = 0640;
  CHECK("shm.set.mode", sys_shmctl(id, IPC_SET, &SDS));
  CHECKX("shm.set.mode.stat", SSTAT(id), "mode=%o ctime=%d", SMODE, SDS.shm_ctime != 0);
  SDS.shm_perm.mode = 07777;
  CHECK("shm.set.mode.all", sys_shmctl(id, IPC_SET, &SDS));
  CHECKX("shm.set.mode.all.stat", SSTAT(id), "mode=%o", SMODE);
  SDS.shm_perm.mode = 0600;
  SDS.shm_segsz = 1;
  CHECK("shm.set.mode.back", sys_shmctl(id, IPC_SET, &SDS));
  CHECKX("shm.set.segsz.ignored", SSTAT(id), "segsz=%zu mode=%o", SDS.shm_segsz, SMODE);
  CHECK("shm.set.efault", sys_shmctl(id, IPC_SET, (void *)8));
  CHECK("shm.stat.efault", sys_shmctl(id, IPC_STAT, (void *)8));
  CHECK("shm.stat.null", sys_shmctl(id, IPC_STAT, NULL));
  CHECK("shm.ctl.badcmd", sys_shmctl(id, 99, &SDS));
  CHECK("shm.ctl.negcmd", sys_shmctl(id, -1, &SDS));
  CHECK("shm.ctl.badid", sys_shmctl(BADID, IPC_STAT, &SDS));
  CHECK("shm.ctl.negid", sys_shmctl(-1, IPC_STAT, &SDS));
  CHECK("shm.ctl.rmid.badid", sys_shmctl(BADID, IPC_RMID, NULL));
  CHECK("shm.ctl.set.badid", sys_shmctl(BADID, IPC_SET, &SDS));

  /* IPC_RMID while attached: the key is released, the memory stays usable, the id
   * still answers (SHM_DEST) and may even be attached again; the last detach ends it. */
  CHECK("shm.rmid.attached", sys_shmctl(id, IPC_RMID, NULL));
  CHECKX("shm.rmid.stat", SSTAT(id), "mode=%o nattch=%lu key=%s", SMODE, (unsigned long)SDS.shm_nattch,
         SDS.shm_perm.__key == IPC_PRIVATE ? "private" : SDS.shm_perm.__key == k ? "same" : "other");
  SAMEID("shm.rmid.key.lookup", SHM, sys_shmget(k, 0, 0), -1);
  long id2;
  CREATE("shm.rmid.key.reused", id2, SHM, sys_shmget(k, 4096, IPC_CREAT | IPC_EXCL | 0600));
  FACT("shm.rmid.key.reused.distinct", "%d", id2 != id);
  rmid(SHM, id2);
  a[30] = 'm';
  FACT("shm.rmid.memory", "usable=%d kept=%d", a[30] == 'm', a[0] == 'x');
  ADDR("shm.rmid.at.again", r, sys_shmat(id, 0, 0), 0);
  if (r != -1) {
    FACT("shm.rmid.at.again.data", "%d", ((char *)r)[30] == 'm');
    CHECKX("shm.rmid.at.again.stat", SSTAT(id), "nattch=%lu mode=%o", (unsigned long)SDS.shm_nattch, SMODE);
    CHECK("shm.rmid.at.again.dt", sys_shmdt(r));
  }
  CHECK("shm.rmid.again", sys_shmctl(id, IPC_RMID, NULL));
  CHECK("shm.rmid.set", sys_shmctl(id, IPC_SET, &SDS));
  CHECK("shm.rmid.dt", sys_shmdt(p1));
  CHECK("shm.rmid.gone.stat", SSTAT(id));
  ADDR("shm.rmid.gone.at", r, sys_shmat(id, 0, 0), 0);
  if (r != -1)
    sys_shmdt(r);
  CHECK("shm.rmid.gone.rmid", sys_shmctl(id, IPC_RMID, NULL));

  /* The last attach goes with exit: a removed segment lives while a child holds its
   * inherited attach, and ends with the child. */
  long e;
  CREATE("shm.exit.create", e, SHM, sys_shmget(IPC_PRIVATE, PG, 0600));
  long ea = sys_shmat(e, 0, 0);
  CHECK("shm.exit.rmid", sys_shmctl(e, IPC_RMID, NULL));
  if (pipe(go) != 0 || pipe(ready) != 0)
    return;
  c = child();
  if (c == 0) {
    if (write(ready[1], "r", 1) != 1 || read(go[0], &t, 1) != 1)
      _exit(124);
    _exit(((char *)ea)[0] == 'P' ? 0 : 125);
  }
  if (read(ready[0], &t, 1) != 1)
    perror("read");
  ((char *)ea)[0] = 'P';
  CHECK("shm.exit.dt.parent", sys_shmdt(ea));
  CHECKX("shm.exit.stat.child.holds", SSTAT(e), "nattch=%lu mode=%o", (unsigned long)SDS.shm_nattch, SMODE);
  if (write(go[1], "g", 1) != 1)
    perror("write");
  FACT("shm.exit.child", "%s", child_end(c, 5000));
  CHECK("shm.exit.gone", SSTAT(e));
  close(go[0]);
  close(go[1]);
  close(ready[0]);
  close(ready[1]);
}

static void shm_info(void) {
  long id;
  CREATE("shm.info.create", id, SHM, sys_shmget(IPC_PRIVATE, 3 * PG, 0600));
  struct shminfo si;
  memset(&si, 0, sizeof si);
  long r = sys_shmctl(0, IPC_INFO, &si);
  int e = errno;
  report("shm.ipc_info", "sys_shmctl(0, IPC_INFO, &si)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("shm.ipc_info.values", "shmmax=%lu shmmin=%lu shmmni=%lu shmseg=%lu shmall=%lu", si.shmmax, si.shmmin, si.shmmni, si.shmseg,
       si.shmall);
  long maxidx = r;
  CHECK("shm.ipc_info.efault", sys_shmctl(0, IPC_INFO, (void *)8));
  struct shm_info sh;
  memset(&sh, 0, sizeof sh);
  r = sys_shmctl(0, SHM_INFO, &sh);
  e = errno;
  report("shm.shm_info", "sys_shmctl(0, SHM_INFO, &sh)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("shm.shm_info.values", "used_ids>=1:%d tot>=3:%d same_max_index=%d", sh.used_ids >= 1, sh.shm_tot >= 3, r == maxidx);
  CHECK("shm.shm_info.efault", sys_shmctl(0, SHM_INFO, (void *)8));
  /* SHM_STAT takes an index: as ipcs does, scan up to the highest in use. */
  long idx = -1;
  for (long i = 0; i <= maxidx && i < 1 << 16; i++) {
    memset(&SDS, 0, sizeof SDS);
    if (sys_shmctl(i, SHM_STAT, &SDS) == id) {
      idx = i;
      break;
    }
  }
  FACT("shm.shm_stat.scan", "found=%d segsz=%zu mode=%o", idx >= 0, idx >= 0 ? SDS.shm_segsz : 0, idx >= 0 ? SMODE : 0);
  SAMEID("shm.shm_stat.index", SHM, sys_shmctl(idx, SHM_STAT, &SDS), id);
  SAMEID("shm.shm_stat_any.index", SHM, sys_shmctl(idx, SHM_STAT_ANY, &SDS), id);
  CHECK("shm.shm_stat.badindex", sys_shmctl(BADID, SHM_STAT, &SDS));
  CHECK("shm.shm_stat.negindex", sys_shmctl(-1, SHM_STAT, &SDS));
  CHECK("shm.shm_stat.efault", sys_shmctl(idx, SHM_STAT, (void *)8));
  /* Without read permission: SHM_STAT is refused, SHM_STAT_ANY is not. */
  SSTAT(id);
  SDS.shm_perm.mode = 0200;
  sys_shmctl(id, IPC_SET, &SDS);
  SAMEID("shm.shm_stat.noperm", SHM, sys_shmctl(idx, SHM_STAT, &SDS), id);
  SAMEID("shm.shm_stat_any.noperm", SHM, sys_shmctl(idx, SHM_STAT_ANY, &SDS), id);
  CHECK("shm.stat.noperm", SSTAT(id));
  CHECK("shm.info.rmid", sys_shmctl(id, IPC_RMID, NULL));
}

/* ==================================================================================== */
/* Semaphores. */

static struct semid_ds MDS;
#define MSTAT(id) (memset(&MDS, 0, sizeof MDS), sys_semctl(id, 0, IPC_STAT, (long)&MDS))
#define MMODE ((unsigned)MDS.sem_perm.mode & 07777)
static unsigned short VALS[8];
static long getall(long id) {
  memset(VALS, 0xff, sizeof VALS);
  return sys_semctl(id, 0, GETALL, (long)VALS);
}
static struct sembuf OPS[512];
/* One operation (or two) in OPS. */
static struct sembuf *op1(int num, int op, int flg) {
  OPS[0] = (struct sembuf){(unsigned short)num, (short)op, (short)flg};
  return OPS;
}
static struct sembuf *op2(int n1, int o1, int f1, int n2, int o2, int f2) {
  OPS[0] = (struct sembuf){(unsigned short)n1, (short)o1, (short)f1};
  OPS[1] = (struct sembuf){(unsigned short)n2, (short)o2, (short)f2};
  return OPS;
}
static struct timespec TS;
static struct timespec *ts(long s, long ns) {
  TS.tv_sec = s;
  TS.tv_nsec = ns;
  return &TS;
}
static unsigned short *arr3(int a, int b, int c) {
  static unsigned short v[3];
  v[0] = (unsigned short)a;
  v[1] = (unsigned short)b;
  v[2] = (unsigned short)c;
  return v;
}

static void sem_gets(void) {
  long s, x, kid, pid_;
  CREATE("sem.get.private", s, SEM, sys_semget(IPC_PRIVATE, 3, 0600));
  CREATE("sem.get.private.nsems0", x, SEM, sys_semget(IPC_PRIVATE, 0, 0600));
  CREATE("sem.get.private.nsems32001", x, SEM, sys_semget(IPC_PRIVATE, 32001, 0600));
  CREATE("sem.get.private.nsemsneg", x, SEM, sys_semget(IPC_PRIVATE, -1, 0600));
  CREATE("sem.get.private.nsems32000", x, SEM, sys_semget(IPC_PRIVATE, 32000, 0600));
  if (x != -1) {
    CHECKX("sem.stat.nsems32000", MSTAT(x), "nsems=%lu", (unsigned long)MDS.sem_nsems);
    CHECK("sem.getval.31999", sys_semctl(x, 31999, GETVAL, 0));
    rmid(SEM, x);
  }
  CHECKX("sem.stat.fresh", MSTAT(s), "nsems=%lu mode=%o otime=%d ctime=%d uid=%d cuid=%d gid=%d key=%d", (unsigned long)MDS.sem_nsems,
         MMODE, MDS.sem_otime != 0, MDS.sem_ctime != 0, MDS.sem_perm.uid == getuid(), MDS.sem_perm.cuid == getuid(),
         MDS.sem_perm.gid == getgid(), MDS.sem_perm.__key);
  CHECKX("sem.getall.fresh", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.getpid.fresh", sys_semctl(s, 0, GETPID, 0));
  rmid(SEM, s);

  long k = fresh_key(), k2 = fresh_key();
  CREATE("sem.get.key.create", kid, SEM, sys_semget(k, 2, IPC_CREAT | IPC_EXCL | 0600));
  SAMEID("sem.get.key.excl.again", SEM, sys_semget(k, 2, IPC_CREAT | IPC_EXCL | 0600), kid);
  SAMEID("sem.get.key.creat.again", SEM, sys_semget(k, 2, IPC_CREAT | 0600), kid);
  SAMEID("sem.get.key.lookup", SEM, sys_semget(k, 0, 0), kid);
  SAMEID("sem.get.key.fewer", SEM, sys_semget(k, 1, 0600), kid);
  SAMEID("sem.get.key.more", SEM, sys_semget(k, 3, 0600), kid);
  SAMEID("sem.get.key.more.creat", SEM, sys_semget(k, 3, IPC_CREAT | 0600), kid);
  SAMEID("sem.get.key.toomany", SEM, sys_semget(k, 32001, 0600), kid);
  SAMEID("sem.get.key.noent", SEM, sys_semget(k2, 1, 0600), -1);
  SAMEID("sem.get.key.create.nsems0", SEM, sys_semget(k2, 0, IPC_CREAT | 0600), -1);
  CHECKX("sem.stat.key", MSTAT(kid), "nsems=%lu mode=%o key=%s", (unsigned long)MDS.sem_nsems, MMODE,
         MDS.sem_perm.__key == k ? "same" : "other");
  rmid(SEM, kid);

  long k3 = fresh_key();
  CREATE("sem.perm.create.0400", pid_, SEM, sys_semget(k3, 1, IPC_CREAT | IPC_EXCL | 0400));
  SAMEID("sem.perm.get.0600", SEM, sys_semget(k3, 0, 0600), pid_);
  SAMEID("sem.perm.get.0400", SEM, sys_semget(k3, 0, 0400), pid_);
  CHECK("sem.perm.op.inc", sys_semop(pid_, op1(0, 1, IPC_NOWAIT), 1));
  CHECK("sem.perm.op.zero", sys_semop(pid_, op1(0, 0, IPC_NOWAIT), 1));
  CHECK("sem.perm.getval", sys_semctl(pid_, 0, GETVAL, 0));
  CHECK("sem.perm.setval", sys_semctl(pid_, 0, SETVAL, 1));
  CHECK("sem.perm.setall", sys_semctl(pid_, 0, SETALL, (long)arr3(1, 1, 1)));
  CHECK("sem.perm.stat", MSTAT(pid_));
  MDS.sem_perm.mode = 0200;
  CHECK("sem.perm.set.0200", sys_semctl(pid_, 0, IPC_SET, (long)&MDS));
  CHECK("sem.perm.getval.0200", sys_semctl(pid_, 0, GETVAL, 0));
  CHECK("sem.perm.setval.0200", sys_semctl(pid_, 0, SETVAL, 1));
  CHECK("sem.perm.op.zero.0200", sys_semop(pid_, op1(0, 0, IPC_NOWAIT), 1));
  CHECK("sem.perm.op.dec.0200", sys_semop(pid_, op1(0, -1, IPC_NOWAIT), 1));
  CHECK("sem.perm.stat.0200", MSTAT(pid_));
  CHECK("sem.perm.rmid", sys_semctl(pid_, 0, IPC_RMID, 0));
  CHECK("sem.perm.rmid.again", sys_semctl(pid_, 0, IPC_RMID, 0));
}

static void sem_values_ops(void) {
  long s;
  CREATE("sem.ops.create", s, SEM, sys_semget(IPC_PRIVATE, 3, 0600));
  CHECK("sem.getval.0", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.setval.5", sys_semctl(s, 0, SETVAL, 5));
  CHECK("sem.getval.5", sys_semctl(s, 0, GETVAL, 0));
  CHECKX("sem.stat.setval", MSTAT(s), "otime=%d ctime=%d", MDS.sem_otime != 0, MDS.sem_ctime != 0);
  CHECK("sem.setval.32767", sys_semctl(s, 1, SETVAL, 32767));
  CHECK("sem.getval.32767", sys_semctl(s, 1, GETVAL, 0));
  CHECK("sem.setval.32768", sys_semctl(s, 1, SETVAL, 32768));
  CHECK("sem.setval.neg", sys_semctl(s, 1, SETVAL, -1));
  CHECK("sem.setval.high32", sys_semctl(s, 1, SETVAL, 0x100000001L));
  CHECK("sem.getval.after", sys_semctl(s, 1, GETVAL, 0));
  CHECK("sem.getval.badnum", sys_semctl(s, 3, GETVAL, 0));
  CHECK("sem.getval.negnum", sys_semctl(s, -1, GETVAL, 0));
  CHECK("sem.setval.badnum", sys_semctl(s, 3, SETVAL, 1));
  CHECK("sem.setval.badnum.range", sys_semctl(s, 3, SETVAL, 32768));
  CHECK("sem.setval.badid.range", sys_semctl(BADID, 0, SETVAL, 32768));
  CHECK("sem.getncnt.badnum", sys_semctl(s, 3, GETNCNT, 0));
  CHECK("sem.getzcnt.badnum", sys_semctl(s, 3, GETZCNT, 0));
  CHECK("sem.getpid.badnum", sys_semctl(s, 3, GETPID, 0));
  CHECK("sem.setall", sys_semctl(s, 0, SETALL, (long)arr3(1, 2, 3)));
  CHECKX("sem.getall", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.setall.range", sys_semctl(s, 0, SETALL, (long)arr3(4, 32768, 4)));
  CHECKX("sem.getall.unchanged", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.setall.efault", sys_semctl(s, 0, SETALL, 8));
  CHECK("sem.getall.efault", sys_semctl(s, 0, GETALL, 8));
  CHECK("sem.getall.null", sys_semctl(s, 0, GETALL, 0));
  long r = sys_semctl(s, 0, GETPID, 0);
  FACT("sem.getpid.setall", "%s", r == -1 ? errname(errno) : who(r, 0));
  CHECK("sem.getncnt", sys_semctl(s, 0, GETNCNT, 0));
  CHECK("sem.getzcnt", sys_semctl(s, 0, GETZCNT, 0));
  CHECK("sem.ctl.badcmd", sys_semctl(s, 0, 99, 0));
  CHECK("sem.ctl.negcmd", sys_semctl(s, 0, -1, 0));
  CHECK("sem.ctl.badid", sys_semctl(BADID, 0, GETVAL, 0));
  CHECK("sem.ctl.negid", sys_semctl(-1, 0, GETVAL, 0));
  CHECK("sem.ctl.badid.stat", sys_semctl(BADID, 0, IPC_STAT, (long)&MDS));

  CHECK("sem.setall.zero", sys_semctl(s, 0, SETALL, (long)arr3(0, 0, 0)));
  CHECKX("sem.stat.before.op", MSTAT(s), "otime=%d", MDS.sem_otime != 0);
  CHECK("sem.op.dec.nowait", sys_semop(s, op1(0, -1, IPC_NOWAIT), 1));
  CHECK("sem.op.zero.nowait", sys_semop(s, op1(0, 0, IPC_NOWAIT), 1));
  CHECK("sem.op.inc", sys_semop(s, op1(0, 1, 0), 1));
  CHECKX("sem.stat.after.op", MSTAT(s), "otime=%d", MDS.sem_otime != 0);
  r = sys_semctl(s, 0, GETPID, 0);
  FACT("sem.getpid.op", "%s", r == -1 ? errname(errno) : who(r, 0));
  CHECK("sem.getval.op", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.op.zero.nowait.busy", sys_semop(s, op1(0, 0, IPC_NOWAIT), 1));
  /* All or nothing. */
  CHECK("sem.op.atomic.fail", sys_semop(s, op2(0, 1, 0, 1, -1, IPC_NOWAIT), 2));
  CHECKX("sem.op.atomic.unchanged", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.op.sequential", sys_semop(s, op2(1, 1, 0, 1, -1, IPC_NOWAIT), 2));
  CHECK("sem.op.sequential.twice", sys_semop(s, op2(0, -1, IPC_NOWAIT, 0, -1, IPC_NOWAIT), 2));
  CHECK("sem.op.sequential.zero", sys_semop(s, op2(2, 1, 0, 2, 0, IPC_NOWAIT), 2));
  CHECKX("sem.op.sequential.after", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.op.both", sys_semop(s, op2(0, -1, 0, 2, 2, 0), 2));
  CHECKX("sem.op.both.after", getall(s), "%d %d %d", VALS[0], VALS[1], VALS[2]);
  CHECK("sem.setval.max", sys_semctl(s, 0, SETVAL, 32767));
  CHECK("sem.op.overflow", sys_semop(s, op1(0, 1, IPC_NOWAIT), 1));
  CHECK("sem.op.overflow.blocking", sys_semop(s, op1(0, 1, 0), 1));
  CHECK("sem.op.dec.max", sys_semop(s, op1(0, -32767, IPC_NOWAIT), 1));
  CHECK("sem.op.dec.min", sys_semop(s, op1(0, -32768, IPC_NOWAIT), 1));
  CHECK("sem.op.inc.max", sys_semop(s, op1(0, 32767, 0), 1));
  CHECK("sem.setval.0", sys_semctl(s, 0, SETVAL, 0));
  /* Counts and sizes. */
  CHECK("sem.op.nsops0", sys_semop(s, op1(0, 1, 0), 0));
  CHECK("sem.op.nsops0.null", sys_semop(s, NULL, 0));
  sys_semctl(s, 2, SETVAL, 0);
  for (int i = 0; i < 512; i++)
    OPS[i] = (struct sembuf){2, 0, IPC_NOWAIT};
  CHECK("sem.op.nsops500", sys_semop(s, OPS, 500));
  CHECK("sem.op.nsops501", sys_semop(s, OPS, 501));
  CHECK("sem.op.nsops501.badid", sys_semop(BADID, OPS, 501));
  CHECK("sem.op.nsops501.negid", sys_semop(-1, OPS, 501));
  CHECK("sem.op.nsopsneg", sys_semop(s, OPS, -1));
  CHECK("sem.op.badnum", sys_semop(s, op1(3, 1, IPC_NOWAIT), 1));
  CHECK("sem.op.badnum.max", sys_semop(s, op1(65535, 0, IPC_NOWAIT), 1));
  CHECK("sem.op.badnum.second", sys_semop(s, op2(0, 1, 0, 3, 1, 0), 2));
  CHECK("sem.getval.badnum.second", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.op.efault", sys_semop(s, NULL, 1));
  CHECK("sem.op.efault.kernel", sys_semop(s, (void *)KADDR, 1));
  CHECK("sem.op.badid", sys_semop(BADID, op1(0, 1, 0), 1));
  CHECK("sem.op.negid", sys_semop(-1, op1(0, 1, 0), 1));
  CHECK("sem.op.badid.badnum", sys_semop(BADID, op1(3, 1, 0), 1));
  CHECK("sem.op.unknown.flag", sys_semop(s, op1(0, 0, 0x10 | IPC_NOWAIT), 1));
  /* semtimedop: the timeout, and what it checks. */
  alarm(5);
  long t0 = now_ms();
  r = sys_semtimedop(s, op1(0, -1, 0), 1, ts(0, 10000000));
  int e = errno;
  long waited = now_ms() - t0;
  alarm(0);
  report("sem.timedop.timeout", "sys_semtimedop(s, op1(0, -1, 0), 1, ts(0, 10000000))", r, e, "waited>=10ms:%d", waited >= 10);
  CHECK("sem.timedop.zero", sys_semtimedop(s, op1(0, -1, 0), 1, ts(0, 0)));
  CHECK("sem.timedop.badnsec", sys_semtimedop(s, op1(0, -1, 0), 1, ts(0, 1000000000)));
  CHECK("sem.timedop.negsec", sys_semtimedop(s, op1(0, -1, 0), 1, ts(-1, 0)));
  CHECK("sem.timedop.negnsec", sys_semtimedop(s, op1(0, -1, 0), 1, ts(0, -1)));
  CHECK("sem.timedop.badts.wouldsucceed", sys_semtimedop(s, op1(0, 1, 0), 1, ts(0, 1000000000)));
  CHECK("sem.timedop.badts.nowait", sys_semtimedop(s, op1(0, 1, IPC_NOWAIT), 1, ts(-1, 0)));
  CHECK("sem.timedop.badts.getval", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.timedop.efault", sys_semtimedop(s, op1(0, 1, 0), 1, (void *)8));
  CHECK("sem.timedop.efault.nsops0", sys_semtimedop(s, op1(0, 1, 0), 0, (void *)8));
  CHECK("sem.timedop.null", sys_semtimedop(s, op1(0, 1, 0), 1, NULL));
  CHECK("sem.timedop.ok", sys_semtimedop(s, op1(0, -1, 0), 1, ts(1, 0)));
  CHECK("sem.timedop.badid", sys_semtimedop(BADID, op1(0, 1, 0), 1, ts(0, 0)));
  CHECK("sem.getval.timedop", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.ops.rmid", sys_semctl(s, 0, IPC_RMID, 0));
  CHECK("sem.op.removed", sys_semop(s, op1(0, 1, 0), 1));
  CHECK("sem.getval.removed", sys_semctl(s, 0, GETVAL, 0));
}

static void sem_processes(void) {
  long s;
  CREATE("sem.proc.create", s, SEM, sys_semget(IPC_PRIVATE, 2, 0600));
  if (s == -1)
    return;
  /* The parent waits; a child's semop wakes it. */
  pid_t c = child();
  if (c == 0) {
    usleep(50000);
    _exit(code(sys_semop(s, op1(0, 1, 0), 1)));
  }
  alarm(5);
  CHECK("sem.block.woken", sys_semop(s, op1(0, -1, 0), 1));
  alarm(0);
  FACT("sem.block.waker", "%s", child_end(c, 5000));
  long r = sys_semctl(s, 0, GETPID, 0);
  FACT("sem.block.getpid", "%s", r == -1 ? errname(errno) : who(r, c));
  CHECK("sem.block.getval", sys_semctl(s, 0, GETVAL, 0));

  /* A child waits: GETNCNT counts it until the parent's semop lets it through. */
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op1(0, -1, 0), 1)));
  FACT("sem.ncnt.waiting", "ncnt=%ld", count_until(s, 0, GETNCNT, 1));
  CHECK("sem.ncnt.zcnt", sys_semctl(s, 0, GETZCNT, 0));
  CHECK("sem.ncnt.other", sys_semctl(s, 1, GETNCNT, 0));
  CHECK("sem.ncnt.release", sys_semop(s, op1(0, 1, 0), 1));
  FACT("sem.ncnt.child", "%s", child_end(c, 5000));
  CHECK("sem.ncnt.after", sys_semctl(s, 0, GETNCNT, 0));
  CHECK("sem.ncnt.getval", sys_semctl(s, 0, GETVAL, 0));
  r = sys_semctl(s, 0, GETPID, 0);
  FACT("sem.ncnt.getpid", "%s", r == -1 ? errname(errno) : who(r, c));

  /* Waiting for zero: GETZCNT; SETVAL wakes it. */
  sys_semctl(s, 1, SETVAL, 1);
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op1(1, 0, 0), 1)));
  FACT("sem.zcnt.waiting", "zcnt=%ld", count_until(s, 1, GETZCNT, 1));
  CHECK("sem.zcnt.ncnt", sys_semctl(s, 1, GETNCNT, 0));
  CHECK("sem.zcnt.setval", sys_semctl(s, 1, SETVAL, 0));
  FACT("sem.zcnt.child", "%s", child_end(c, 5000));
  CHECK("sem.zcnt.after", sys_semctl(s, 1, GETZCNT, 0));

  /* A child waiting on two semaphores at once wakes only when both allow it. */
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op2(0, -1, 0, 1, -1, 0), 2)));
  FACT("sem.two.waiting", "ncnt=%ld", count_until(s, 0, GETNCNT, 1));
  CHECK("sem.two.first", sys_semop(s, op1(0, 1, 0), 1));
  usleep(50000);
  CHECK("sem.two.first.getval", sys_semctl(s, 0, GETVAL, 0));
  CHECK("sem.two.first.ncnt0", sys_semctl(s, 0, GETNCNT, 0));
  CHECK("sem.two.first.ncnt1", sys_semctl(s, 1, GETNCNT, 0));
  CHECK("sem.two.second", sys_semop(s, op1(1, 1, 0), 1));
  FACT("sem.two.child", "%s", child_end(c, 5000));
  CHECKX("sem.two.after", getall(s), "%d %d", VALS[0], VALS[1]);

  /* SEM_UNDO: a child's adjustments are undone at its exit. */
  sys_semctl(s, 0, SETVAL, 1);
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op1(0, -1, SEM_UNDO), 1)));
  FACT("sem.undo.dec.child", "%s", child_end(c, 5000));
  CHECK("sem.undo.dec.restored", sys_semctl(s, 0, GETVAL, 0));
  sys_semctl(s, 0, SETVAL, 0);
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op1(0, 2, SEM_UNDO), 1)));
  FACT("sem.undo.inc.child", "%s", child_end(c, 5000));
  CHECK("sem.undo.inc.restored", sys_semctl(s, 0, GETVAL, 0));
  r = sys_semctl(s, 0, GETPID, 0);
  FACT("sem.undo.getpid", "%s", r == -1 ? errname(errno) : who(r, c));
  /* SETVAL clears every process's adjustment of that semaphore; an undo that would go
   * below 0 stops at 0. */
  int go[2], ready[2];
  if (pipe(go) != 0 || pipe(ready) != 0)
    return;
  for (int round = 0; round < 2; round++) {
    sys_semctl(s, 0, SETVAL, 0);
    c = child();
    if (c == 0) {
      long rr = sys_semop(s, op1(0, 1, SEM_UNDO), 1);
      char t;
      if (write(ready[1], "r", 1) != 1 || read(go[0], &t, 1) != 1)
        _exit(124);
      _exit(code(rr));
    }
    char t;
    if (read(ready[0], &t, 1) != 1)
      perror("read");
    if (round == 0) {
      CHECK("sem.undo.setval.before", sys_semctl(s, 0, GETVAL, 0));
      CHECK("sem.undo.setval", sys_semctl(s, 0, SETVAL, 5));
    } else {
      CHECK("sem.undo.clamp.dec", sys_semop(s, op1(0, -1, IPC_NOWAIT), 1));
    }
    if (write(go[1], "g", 1) != 1)
      perror("write");
    FACT(round ? "sem.undo.clamp.child" : "sem.undo.setval.child", "%s", child_end(c, 5000));
    CHECK(round ? "sem.undo.clamp.after" : "sem.undo.setval.after", sys_semctl(s, 0, GETVAL, 0));
  }
  /* The parent's own adjustment, beyond the range an undo may hold. */
  sys_semctl(s, 0, SETVAL, 0);
  CHECK("sem.undo.big", sys_semop(s, op1(0, 32767, SEM_UNDO), 1));
  CHECK("sem.undo.big.dec", sys_semop(s, op1(0, -32767, SEM_UNDO | IPC_NOWAIT), 1));
  CHECK("sem.undo.big.again", sys_semop(s, op1(0, 32767, SEM_UNDO), 1));
  CHECK("sem.undo.big.over", sys_semop(s, op1(0, -32767, IPC_NOWAIT), 1));
  CHECK("sem.undo.range", sys_semop(s, op1(0, 1, SEM_UNDO | IPC_NOWAIT), 1));
  CHECK("sem.undo.range.over", sys_semop(s, op1(0, 1, SEM_UNDO | IPC_NOWAIT), 1));
  CHECK("sem.undo.range.getval", sys_semctl(s, 0, GETVAL, 0));
  sys_semctl(s, 0, SETVAL, 0);

  /* A signal ends a wait with EINTR, even with SA_RESTART. */
  sys_semctl(s, 1, SETVAL, 0);
  restart_handler(1);
  c = rescue_sem(s, 1);
  itimer_ms(100);
  CHECK("sem.intr.restart", sys_semop(s, op1(1, -1, 0), 1));
  rescued(c);
  c = rescue_sem(s, 1);
  itimer_ms(100);
  CHECK("sem.intr.restart.timed", sys_semtimedop(s, op1(1, -1, 0), 1, ts(2, 0)));
  rescued(c);
  restart_handler(0);
  c = rescue_sem(s, 1);
  itimer_ms(100);
  CHECK("sem.intr", sys_semop(s, op1(1, -1, 0), 1));
  rescued(c);
  CHECK("sem.intr.ncnt", sys_semctl(s, 1, GETNCNT, 0));
  CHECK("sem.intr.getval", sys_semctl(s, 1, GETVAL, 0));

  /* IPC_RMID wakes waiters with EIDRM. */
  sys_semctl(s, 1, SETVAL, 1);
  c = child();
  if (c == 0)
    _exit(code(sys_semop(s, op1(0, -1, 0), 1)));
  pid_t c2 = child();
  if (c2 == 0)
    _exit(code(sys_semop(s, op1(1, 0, 0), 1)));
  FACT("sem.rmid.waiting", "ncnt=%ld zcnt=%ld", count_until(s, 0, GETNCNT, 1), count_until(s, 1, GETZCNT, 1));
  CHECK("sem.rmid.waiters", sys_semctl(s, 0, IPC_RMID, 0));
  FACT("sem.rmid.child.dec", "%s", child_end(c, 5000));
  FACT("sem.rmid.child.zero", "%s", child_end(c2, 5000));
  close(go[0]);
  close(go[1]);
  close(ready[0]);
  close(ready[1]);
}

static void sem_info_stat(void) {
  long s;
  CREATE("sem.info.create", s, SEM, sys_semget(IPC_PRIVATE, 4, 0640));
  CHECK("sem.info.op", sys_semop(s, op1(3, 2, 0), 1));
  CHECKX("sem.stat", MSTAT(s), "nsems=%lu mode=%o otime=%d ctime=%d", (unsigned long)MDS.sem_nsems, MMODE, MDS.sem_otime != 0,
         MDS.sem_ctime != 0);
  MDS.sem_perm.mode = 0604;
  MDS.sem_nsems = 99;
  CHECK("sem.set", sys_semctl(s, 0, IPC_SET, (long)&MDS));
  CHECKX("sem.set.stat", MSTAT(s), "nsems=%lu mode=%o", (unsigned long)MDS.sem_nsems, MMODE);
  MDS.sem_perm.mode = 07777;
  CHECK("sem.set.all", sys_semctl(s, 0, IPC_SET, (long)&MDS));
  CHECKX("sem.set.all.stat", MSTAT(s), "mode=%o", MMODE);
  MDS.sem_perm.mode = 0600;
  sys_semctl(s, 0, IPC_SET, (long)&MDS);
  CHECK("sem.set.efault", sys_semctl(s, 0, IPC_SET, 8));
  CHECK("sem.stat.efault", sys_semctl(s, 0, IPC_STAT, 8));
  CHECK("sem.stat.semnum.ignored", sys_semctl(s, 77, IPC_STAT, (long)&MDS));
  struct seminfo si;
  memset(&si, 0, sizeof si);
  long r = sys_semctl(0, 0, IPC_INFO, (long)&si);
  int e = errno;
  report("sem.ipc_info", "sys_semctl(0, 0, IPC_INFO, &si)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("sem.ipc_info.values", "semmap=%d semmni=%d semmns=%d semmnu=%d semmsl=%d semopm=%d semume=%d semusz=%d semvmx=%d semaem=%d",
       si.semmap, si.semmni, si.semmns, si.semmnu, si.semmsl, si.semopm, si.semume, si.semusz, si.semvmx, si.semaem);
  long maxidx = r;
  CHECK("sem.ipc_info.efault", sys_semctl(0, 0, IPC_INFO, 8));
  memset(&si, 0, sizeof si);
  r = sys_semctl(0, 0, SEM_INFO, (long)&si);
  e = errno;
  report("sem.sem_info", "sys_semctl(0, 0, SEM_INFO, &si)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("sem.sem_info.values", "sets>=1:%d sems>=4:%d same_max_index=%d semmsl=%d semopm=%d semvmx=%d", si.semusz >= 1, si.semaem >= 4,
       r == maxidx, si.semmsl, si.semopm, si.semvmx);
  long idx = -1;
  for (long i = 0; i <= maxidx && i < 1 << 16; i++) {
    memset(&MDS, 0, sizeof MDS);
    if (sys_semctl(i, 0, SEM_STAT, (long)&MDS) == s) {
      idx = i;
      break;
    }
  }
  FACT("sem.sem_stat.scan", "found=%d nsems=%lu", idx >= 0, idx >= 0 ? (unsigned long)MDS.sem_nsems : 0);
  SAMEID("sem.sem_stat.index", SEM, sys_semctl(idx, 0, SEM_STAT, (long)&MDS), s);
  SAMEID("sem.sem_stat_any.index", SEM, sys_semctl(idx, 0, SEM_STAT_ANY, (long)&MDS), s);
  CHECK("sem.sem_stat.badindex", sys_semctl(BADID, 0, SEM_STAT, (long)&MDS));
  CHECK("sem.sem_stat.negindex", sys_semctl(-1, 0, SEM_STAT, (long)&MDS));
  CHECK("sem.sem_stat.efault", sys_semctl(idx, 0, SEM_STAT, 8));
  MSTAT(s);
  MDS.sem_perm.mode = 0200;
  sys_semctl(s, 0, IPC_SET, (long)&MDS);
  SAMEID("sem.sem_stat.noperm", SEM, sys_semctl(idx, 0, SEM_STAT, (long)&MDS), s);
  SAMEID("sem.sem_stat_any.noperm", SEM, sys_semctl(idx, 0, SEM_STAT_ANY, (long)&MDS), s);
  CHECK("sem.info.rmid", sys_semctl(s, 0, IPC_RMID, 0));
}

/* ==================================================================================== */
/* Message queues. */

static struct msqid_ds QDS;
#define QSTAT(id) (memset(&QDS, 0, sizeof QDS), sys_msgctl(id, IPC_STAT, &QDS))
#define QMODE ((unsigned)QDS.msg_perm.mode & 07777)
struct mbuf {
  long mtype;
  char mtext[8300];
};
static struct mbuf SND, RCV;
static struct mbuf *msg(long type, const char *text) {
  SND.mtype = type;
  memset(SND.mtext, '.', sizeof SND.mtext);
  memcpy(SND.mtext, text, strlen(text));
  return &SND;
}
/* RECV(label, expr): a msgrcv into RCV, printed with the type and text received. */
#define RECV(label, expr) do { memset(&RCV, 0, sizeof RCV); RCV.mtype = -77; errno = 0; long r_ = (long)(expr); int e_ = errno; report(label, #expr, r_, e_, "mtype=%ld text=%.*s", RCV.mtype, (int)(r_ > 0 ? (r_ < 40 ? r_ : 40) : 0), RCV.mtext); } while (0)
#define QFACTS "qnum=%lu cbytes=%lu qbytes=%lu", (unsigned long)QDS.msg_qnum, (unsigned long)QDS.__msg_cbytes, (unsigned long)QDS.msg_qbytes

static void msg_gets(void) {
  long q, kid, pid_, x;
  CREATE("msg.get.private", q, MSG, sys_msgget(IPC_PRIVATE, 0600));
  CREATE("msg.get.private.excl", x, MSG, sys_msgget(IPC_PRIVATE, IPC_CREAT | IPC_EXCL | 0600));
  FACT("msg.get.private.distinct", "%d", x != q && x != -1);
  rmid(MSG, x);
  CHECKX("msg.stat.fresh", QSTAT(q), "qnum=%lu cbytes=%lu qbytes=%lu mode=%o stime=%d rtime=%d ctime=%d lspid=%s lrpid=%s uid=%d cuid=%d",
         (unsigned long)QDS.msg_qnum, (unsigned long)QDS.__msg_cbytes, (unsigned long)QDS.msg_qbytes, QMODE, QDS.msg_stime != 0,
         QDS.msg_rtime != 0, QDS.msg_ctime != 0, who(QDS.msg_lspid, 0), who(QDS.msg_lrpid, 0), QDS.msg_perm.uid == getuid(),
         QDS.msg_perm.cuid == getuid());
  rmid(MSG, q);
  long k = fresh_key(), k2 = fresh_key();
  CREATE("msg.get.key.create", kid, MSG, sys_msgget(k, IPC_CREAT | IPC_EXCL | 0600));
  SAMEID("msg.get.key.excl.again", MSG, sys_msgget(k, IPC_CREAT | IPC_EXCL | 0600), kid);
  SAMEID("msg.get.key.creat.again", MSG, sys_msgget(k, IPC_CREAT | 0600), kid);
  SAMEID("msg.get.key.lookup", MSG, sys_msgget(k, 0), kid);
  SAMEID("msg.get.key.noent", MSG, sys_msgget(k2, 0600), -1);
  CHECKX("msg.stat.key", QSTAT(kid), "mode=%o key=%s", QMODE, QDS.msg_perm.__key == k ? "same" : "other");
  rmid(MSG, kid);
  long k3 = fresh_key();
  CREATE("msg.perm.create.0400", pid_, MSG, sys_msgget(k3, IPC_CREAT | IPC_EXCL | 0400));
  SAMEID("msg.perm.get.0600", MSG, sys_msgget(k3, 0600), pid_);
  SAMEID("msg.perm.get.0400", MSG, sys_msgget(k3, 0400), pid_);
  CHECK("msg.perm.snd", sys_msgsnd(pid_, msg(1, "x"), 1, IPC_NOWAIT));
  RECV("msg.perm.rcv", sys_msgrcv(pid_, &RCV, 10, 0, IPC_NOWAIT));
  CHECK("msg.perm.stat", QSTAT(pid_));
  QDS.msg_perm.mode = 0200;
  CHECK("msg.perm.set.0200", sys_msgctl(pid_, IPC_SET, &QDS));
  CHECK("msg.perm.snd.0200", sys_msgsnd(pid_, msg(1, "x"), 1, IPC_NOWAIT));
  RECV("msg.perm.rcv.0200", sys_msgrcv(pid_, &RCV, 10, 0, IPC_NOWAIT));
  CHECK("msg.perm.stat.0200", QSTAT(pid_));
  CHECK("msg.perm.rmid", sys_msgctl(pid_, IPC_RMID, NULL));
  CHECK("msg.perm.rmid.again", sys_msgctl(pid_, IPC_RMID, NULL));
}

static void msg_send_receive(void) {
  long q;
  CREATE("msg.create", q, MSG, sys_msgget(IPC_PRIVATE, 0600));
  CHECK("msg.snd.1", sys_msgsnd(q, msg(1, "one"), 3, 0));
  CHECK("msg.snd.2", sys_msgsnd(q, msg(2, "two"), 3, IPC_NOWAIT));
  CHECK("msg.snd.3", sys_msgsnd(q, msg(3, "three"), 5, IPC_NOWAIT));
  CHECK("msg.snd.1b", sys_msgsnd(q, msg(1, "uno"), 3, IPC_NOWAIT));
  CHECK("msg.snd.big.type", sys_msgsnd(q, msg(LONG_MAX, "max"), 3, IPC_NOWAIT));
  CHECKX("msg.stat.sent", QSTAT(q), "qnum=%lu cbytes=%lu qbytes=%lu stime=%d rtime=%d lspid=%s lrpid=%s", (unsigned long)QDS.msg_qnum,
         (unsigned long)QDS.__msg_cbytes, (unsigned long)QDS.msg_qbytes, QDS.msg_stime != 0, QDS.msg_rtime != 0,
         who(QDS.msg_lspid, 0), who(QDS.msg_lrpid, 0));
  RECV("msg.rcv.type2", sys_msgrcv(q, &RCV, 100, 2, IPC_NOWAIT));
  RECV("msg.rcv.type7.none", sys_msgrcv(q, &RCV, 100, 7, IPC_NOWAIT));
  RECV("msg.rcv.lowest.le2", sys_msgrcv(q, &RCV, 100, -2, IPC_NOWAIT));
  RECV("msg.rcv.except1", sys_msgrcv(q, &RCV, 100, 1, MSG_EXCEPT | IPC_NOWAIT));
  RECV("msg.rcv.except0", sys_msgrcv(q, &RCV, 100, 0, MSG_EXCEPT | IPC_NOWAIT));
  RECV("msg.rcv.lowest.min", sys_msgrcv(q, &RCV, 100, LONG_MIN, IPC_NOWAIT));
  RECV("msg.rcv.any", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.rcv.empty", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.rcv.empty.except", sys_msgrcv(q, &RCV, 100, 5, MSG_EXCEPT | IPC_NOWAIT));
  CHECKX("msg.stat.received", QSTAT(q), "qnum=%lu cbytes=%lu rtime=%d lrpid=%s", (unsigned long)QDS.msg_qnum,
         (unsigned long)QDS.__msg_cbytes, QDS.msg_rtime != 0, who(QDS.msg_lrpid, 0));
  /* Lowest type first, then order of arrival within a type. */
  sys_msgsnd(q, msg(3, "c1"), 2, 0);
  sys_msgsnd(q, msg(2, "b1"), 2, 0);
  sys_msgsnd(q, msg(3, "c2"), 2, 0);
  sys_msgsnd(q, msg(2, "b2"), 2, 0);
  RECV("msg.rcv.order.1", sys_msgrcv(q, &RCV, 100, -5, IPC_NOWAIT));
  RECV("msg.rcv.order.2", sys_msgrcv(q, &RCV, 100, -5, IPC_NOWAIT));
  RECV("msg.rcv.order.3", sys_msgrcv(q, &RCV, 100, -5, IPC_NOWAIT));
  RECV("msg.rcv.order.4", sys_msgrcv(q, &RCV, 100, -1, IPC_NOWAIT));
  RECV("msg.rcv.order.5", sys_msgrcv(q, &RCV, 100, 3, MSG_EXCEPT | IPC_NOWAIT));
  RECV("msg.rcv.order.6", sys_msgrcv(q, &RCV, 100, 3, IPC_NOWAIT));

  /* Sizes and types refused. */
  CHECK("msg.snd.mtype0", sys_msgsnd(q, msg(0, "z"), 1, IPC_NOWAIT));
  CHECK("msg.snd.mtypeneg", sys_msgsnd(q, msg(-1, "z"), 1, IPC_NOWAIT));
  CHECK("msg.snd.8193", sys_msgsnd(q, msg(1, ""), 8193, IPC_NOWAIT));
  CHECK("msg.snd.sizeneg", sys_msgsnd(q, msg(1, ""), -1, IPC_NOWAIT));
  CHECK("msg.snd.mtype0.8193", sys_msgsnd(q, msg(0, ""), 8193, IPC_NOWAIT));
  CHECK("msg.snd.8192", sys_msgsnd(q, msg(1, "big"), 8192, IPC_NOWAIT));
  CHECK("msg.snd.0", sys_msgsnd(q, msg(2, ""), 0, IPC_NOWAIT));
  CHECKX("msg.stat.sizes", QSTAT(q), QFACTS);
  RECV("msg.rcv.8192", sys_msgrcv(q, &RCV, 8192, 1, IPC_NOWAIT));
  RECV("msg.rcv.0", sys_msgrcv(q, &RCV, 0, 0, IPC_NOWAIT));
  /* Too small a buffer: E2BIG and the message stays, or MSG_NOERROR cuts it. */
  sys_msgsnd(q, msg(4, "0123456789"), 10, 0);
  RECV("msg.rcv.e2big", sys_msgrcv(q, &RCV, 4, 0, IPC_NOWAIT));
  RECV("msg.rcv.e2big.0", sys_msgrcv(q, &RCV, 0, 4, IPC_NOWAIT));
  CHECKX("msg.stat.e2big", QSTAT(q), QFACTS);
  RECV("msg.rcv.noerror", sys_msgrcv(q, &RCV, 4, 0, MSG_NOERROR | IPC_NOWAIT));
  CHECKX("msg.stat.noerror", QSTAT(q), QFACTS);
  RECV("msg.rcv.sizeneg", sys_msgrcv(q, &RCV, -1, 0, IPC_NOWAIT));
  RECV("msg.rcv.huge", sys_msgrcv(q, &RCV, 1L << 40, 0, IPC_NOWAIT));
  /* Faults: a message whose copy-out faults is lost. */
  CHECK("msg.snd.efault", sys_msgsnd(q, NULL, 4, IPC_NOWAIT));
  CHECK("msg.snd.efault.size0", sys_msgsnd(q, NULL, 0, IPC_NOWAIT));
  char *two = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  mprotect(two + PG, PG, PROT_NONE);
  struct mbuf *edge = (struct mbuf *)(two + PG - 16);
  edge->mtype = 6;
  memcpy(edge->mtext, "abcdefgh", 8);
  CHECK("msg.snd.edge.fits", sys_msgsnd(q, edge, 8, IPC_NOWAIT));
  CHECK("msg.snd.edge.past", sys_msgsnd(q, edge, 9, IPC_NOWAIT));
  CHECKX("msg.stat.edge", QSTAT(q), QFACTS);
  CHECKX("msg.rcv.edge.fits", sys_msgrcv(q, edge, 9, 6, IPC_NOWAIT), "mtype=%ld", edge->mtype);
  sys_msgsnd(q, msg(6, "abcdefghi"), 9, 0);
  CHECK("msg.rcv.edge.past", sys_msgrcv(q, edge, 9, 6, IPC_NOWAIT));
  CHECKX("msg.stat.edge.lost", QSTAT(q), QFACTS);
  munmap(two, 2 * PG);
  sys_msgsnd(q, msg(1, "lost"), 4, 0);
  CHECK("msg.rcv.efault", sys_msgrcv(q, NULL, 100, 0, IPC_NOWAIT));
  CHECKX("msg.stat.rcv.efault", QSTAT(q), QFACTS);
  CHECK("msg.rcv.efault.empty", sys_msgrcv(q, NULL, 100, 0, IPC_NOWAIT));
  CHECK("msg.snd.badid", sys_msgsnd(BADID, msg(1, "x"), 1, IPC_NOWAIT));
  CHECK("msg.snd.negid", sys_msgsnd(-1, msg(1, "x"), 1, IPC_NOWAIT));
  CHECK("msg.snd.badid.efault", sys_msgsnd(BADID, NULL, 1, IPC_NOWAIT));
  CHECK("msg.snd.badid.mtype0", sys_msgsnd(BADID, msg(0, "x"), 1, IPC_NOWAIT));
  RECV("msg.rcv.badid", sys_msgrcv(BADID, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.rcv.negid", sys_msgrcv(-1, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.rcv.badid.sizeneg", sys_msgrcv(BADID, &RCV, -1, 0, IPC_NOWAIT));
  CHECK("msg.snd.unknown.flag", sys_msgsnd(q, msg(1, "f"), 1, IPC_NOWAIT | 0x100000));
  RECV("msg.rcv.unknown.flag", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT | 0x100000));

  /* A full queue: qbytes (lowered by IPC_SET) bounds bytes and messages. */
  QSTAT(q);
  QDS.msg_qbytes = 100;
  CHECK("msg.set.qbytes.100", sys_msgctl(q, IPC_SET, &QDS));
  CHECKX("msg.stat.qbytes.100", QSTAT(q), QFACTS);
  CHECK("msg.full.first", sys_msgsnd(q, msg(1, "a"), 64, IPC_NOWAIT));
  CHECK("msg.full.eagain", sys_msgsnd(q, msg(1, "b"), 64, IPC_NOWAIT));
  CHECK("msg.full.exact", sys_msgsnd(q, msg(1, "c"), 36, IPC_NOWAIT));
  CHECK("msg.full.size0", sys_msgsnd(q, msg(1, ""), 0, IPC_NOWAIT));
  CHECK("msg.full.size1", sys_msgsnd(q, msg(1, "d"), 1, IPC_NOWAIT));
  CHECK("msg.full.toobig", sys_msgsnd(q, msg(1, "e"), 101, IPC_NOWAIT));
  CHECKX("msg.stat.full", QSTAT(q), QFACTS);
  for (int i = 0; i < 3; i++)
    sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT);
  QDS.msg_qbytes = 2;
  CHECK("msg.set.qbytes.2", sys_msgctl(q, IPC_SET, &QDS));
  CHECK("msg.count.1", sys_msgsnd(q, msg(1, ""), 0, IPC_NOWAIT));
  CHECK("msg.count.2", sys_msgsnd(q, msg(1, ""), 0, IPC_NOWAIT));
  CHECK("msg.count.3", sys_msgsnd(q, msg(1, ""), 0, IPC_NOWAIT));
  CHECKX("msg.stat.count", QSTAT(q), QFACTS);
  sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT);
  sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT);
  QDS.msg_qbytes = 0;
  CHECK("msg.set.qbytes.0", sys_msgctl(q, IPC_SET, &QDS));
  CHECKX("msg.stat.qbytes.0", QSTAT(q), QFACTS);
  CHECK("msg.qbytes0.snd", sys_msgsnd(q, msg(1, ""), 0, IPC_NOWAIT));
  QDS.msg_qbytes = 16385;
  CHECK("msg.set.qbytes.above", sys_msgctl(q, IPC_SET, &QDS));
  QDS.msg_qbytes = 16384;
  CHECK("msg.set.qbytes.max", sys_msgctl(q, IPC_SET, &QDS));
  QDS.msg_perm.mode = 0640;
  CHECK("msg.set.mode", sys_msgctl(q, IPC_SET, &QDS));
  CHECKX("msg.set.stat", QSTAT(q), "qbytes=%lu mode=%o ctime=%d", (unsigned long)QDS.msg_qbytes, QMODE, QDS.msg_ctime != 0);
  QDS.msg_perm.mode = 07777;
  QDS.msg_qnum = 55;
  CHECK("msg.set.mode.all", sys_msgctl(q, IPC_SET, &QDS));
  CHECKX("msg.set.mode.all.stat", QSTAT(q), "mode=%o qnum=%lu", QMODE, (unsigned long)QDS.msg_qnum);
  QDS.msg_perm.mode = 0600;
  sys_msgctl(q, IPC_SET, &QDS);
  CHECK("msg.set.efault", sys_msgctl(q, IPC_SET, (void *)8));
  CHECK("msg.stat.efault", sys_msgctl(q, IPC_STAT, (void *)8));
  CHECK("msg.ctl.badcmd", sys_msgctl(q, 99, &QDS));
  CHECK("msg.ctl.negcmd", sys_msgctl(q, -1, &QDS));
  CHECK("msg.ctl.badid", sys_msgctl(BADID, IPC_STAT, &QDS));
  CHECK("msg.ctl.negid", sys_msgctl(-1, IPC_STAT, &QDS));

  /* MSG_COPY: a copy of the message at index msgtyp, left queued (IPC_NOWAIT only). */
  sys_msgsnd(q, msg(1, "a"), 1, 0);
  sys_msgsnd(q, msg(2, "bb"), 2, 0);
  RECV("msg.copy.wait", sys_msgrcv(q, &RCV, 100, 0, MSG_COPY));
  RECV("msg.copy.0", sys_msgrcv(q, &RCV, 100, 0, MSG_COPY | IPC_NOWAIT));
  RECV("msg.copy.1", sys_msgrcv(q, &RCV, 100, 1, MSG_COPY | IPC_NOWAIT));
  RECV("msg.copy.2", sys_msgrcv(q, &RCV, 100, 2, MSG_COPY | IPC_NOWAIT));
  RECV("msg.copy.neg", sys_msgrcv(q, &RCV, 100, -1, MSG_COPY | IPC_NOWAIT));
  RECV("msg.copy.except", sys_msgrcv(q, &RCV, 100, 1, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT));
  RECV("msg.copy.small", sys_msgrcv(q, &RCV, 1, 1, MSG_COPY | IPC_NOWAIT));
  RECV("msg.copy.small.noerror", sys_msgrcv(q, &RCV, 1, 1, MSG_COPY | MSG_NOERROR | IPC_NOWAIT));
  CHECKX("msg.copy.stat", QSTAT(q), QFACTS);
  RECV("msg.copy.after", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.copy.after.2", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  RECV("msg.copy.empty", sys_msgrcv(q, &RCV, 100, 0, MSG_COPY | IPC_NOWAIT));
  CHECK("msg.rmid", sys_msgctl(q, IPC_RMID, NULL));
  CHECK("msg.snd.removed", sys_msgsnd(q, msg(1, "x"), 1, IPC_NOWAIT));
  RECV("msg.rcv.removed", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  CHECK("msg.stat.removed", QSTAT(q));
}

static void msg_processes(void) {
  long q;
  CREATE("msg.proc.create", q, MSG, sys_msgget(IPC_PRIVATE, 0600));
  if (q == -1)
    return;
  /* The parent waits for a type; a child's message of another type does not wake it,
   * one of that type does. */
  pid_t c = child();
  if (c == 0) {
    usleep(30000);
    if (sys_msgsnd(q, msg(4, "other"), 5, 0) == -1)
      _exit(code(-1));
    usleep(30000);
    _exit(code(sys_msgsnd(q, msg(5, "wake"), 4, 0)));
  }
  alarm(5);
  RECV("msg.block.woken", sys_msgrcv(q, &RCV, 100, 5, 0));
  alarm(0);
  FACT("msg.block.sender", "%s", child_end(c, 5000));
  CHECKX("msg.block.stat", QSTAT(q), "qnum=%lu lspid=%s lrpid=%s", (unsigned long)QDS.msg_qnum, who(QDS.msg_lspid, c),
         who(QDS.msg_lrpid, c));
  RECV("msg.block.other", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));
  /* A receiver in a child, woken by the parent. */
  c = child();
  if (c == 0) {
    long r = sys_msgrcv(q, &RCV, 100, -3, 0);
    _exit(r == -1 ? code(r) : r == 2 && RCV.mtype == 3 && memcmp(RCV.mtext, "hi", 2) == 0 ? 0 : 125);
  }
  usleep(100000);
  CHECK("msg.wake.child.snd", sys_msgsnd(q, msg(3, "hi"), 2, 0));
  FACT("msg.wake.child", "%s", child_end(c, 5000));
  CHECKX("msg.wake.stat", QSTAT(q), "qnum=%lu lspid=%s lrpid=%s", (unsigned long)QDS.msg_qnum, who(QDS.msg_lspid, c),
         who(QDS.msg_lrpid, c));
  /* A sender blocked on a full queue, let through by a receive. */
  QSTAT(q);
  QDS.msg_qbytes = 100;
  sys_msgctl(q, IPC_SET, &QDS);
  sys_msgsnd(q, msg(1, "full"), 100, 0);
  c = child();
  if (c == 0)
    _exit(code(sys_msgsnd(q, msg(2, "next"), 10, 0)));
  usleep(100000);
  CHECKX("msg.sndwait.stat", QSTAT(q), QFACTS);
  RECV("msg.sndwait.rcv", sys_msgrcv(q, &RCV, 100, 1, IPC_NOWAIT));
  FACT("msg.sndwait.child", "%s", child_end(c, 5000));
  RECV("msg.sndwait.after", sys_msgrcv(q, &RCV, 100, 0, IPC_NOWAIT));

  /* A signal ends a wait with EINTR, even with SA_RESTART. */
  restart_handler(1);
  c = rescue_msg(q, 1);
  itimer_ms(100);
  RECV("msg.intr.restart", sys_msgrcv(q, &RCV, 100, 0, 0));
  rescued(c);
  restart_handler(0);
  c = rescue_msg(q, 1);
  itimer_ms(100);
  RECV("msg.intr", sys_msgrcv(q, &RCV, 100, 0, 0));
  rescued(c);
  /* A blocked sender interrupted too. */
  sys_msgsnd(q, msg(1, "full"), 100, 0);
  c = rescue_msg(q, 0);
  itimer_ms(100);
  CHECK("msg.intr.snd", sys_msgsnd(q, msg(1, "more"), 10, 0));
  rescued(c);
  CHECKX("msg.intr.stat", QSTAT(q), QFACTS);
  while (sys_msgrcv(q, &RCV, 8192, 0, IPC_NOWAIT | MSG_NOERROR) >= 0)
    ;

  /* IPC_RMID wakes a waiting receiver and a waiting sender with EIDRM. */
  long q2;
  CREATE("msg.rmid.create", q2, MSG, sys_msgget(IPC_PRIVATE, 0600));
  QSTAT(q2);
  QDS.msg_qbytes = 10;
  sys_msgctl(q2, IPC_SET, &QDS);
  sys_msgsnd(q2, msg(1, "0123456789"), 10, 0);
  int ready[2];
  if (pipe(ready) != 0)
    return;
  c = child();
  if (c == 0)
    _exit(write(ready[1], "r", 1) == 1 ? code(sys_msgrcv(q2, &RCV, 100, 2, 0)) : 124);
  pid_t c2 = child();
  if (c2 == 0)
    _exit(write(ready[1], "r", 1) == 1 ? code(sys_msgsnd(q2, msg(1, "x"), 1, 0)) : 124);
  char two[2];
  if (read(ready[0], two, 1) != 1 || read(ready[0], two + 1, 1) != 1)
    perror("read");
  close(ready[0]);
  close(ready[1]);
  usleep(200000);
  CHECK("msg.rmid.waiters", sys_msgctl(q2, IPC_RMID, NULL));
  FACT("msg.rmid.receiver", "%s", child_end(c, 5000));
  FACT("msg.rmid.sender", "%s", child_end(c2, 5000));
  CHECK("msg.proc.rmid", sys_msgctl(q, IPC_RMID, NULL));
}

static void msg_info_stat(void) {
  long q;
  CREATE("msg.info.create", q, MSG, sys_msgget(IPC_PRIVATE, 0600));
  sys_msgsnd(q, msg(1, "abc"), 3, 0);
  sys_msgsnd(q, msg(1, "de"), 2, 0);
  struct msginfo mi;
  memset(&mi, 0, sizeof mi);
  long r = sys_msgctl(0, IPC_INFO, (struct msqid_ds *)&mi);
  int e = errno;
  report("msg.ipc_info", "sys_msgctl(0, IPC_INFO, &mi)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("msg.ipc_info.values", "msgpool=%d msgmap=%d msgmax=%d msgmnb=%d msgmni=%d msgssz=%d msgtql=%d msgseg=%d", mi.msgpool, mi.msgmap,
       mi.msgmax, mi.msgmnb, mi.msgmni, mi.msgssz, mi.msgtql, mi.msgseg);
  long maxidx = r;
  CHECK("msg.ipc_info.efault", sys_msgctl(0, IPC_INFO, (void *)8));
  memset(&mi, 0, sizeof mi);
  r = sys_msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
  e = errno;
  report("msg.msg_info", "sys_msgctl(0, MSG_INFO, &mi)", r < 0 ? r : 0, e, r < 0 ? NULL : "%s", ">=0");
  FACT("msg.msg_info.values", "queues>=1:%d messages>=2:%d bytes>=5:%d same_max_index=%d msgmax=%d msgmnb=%d msgmni=%d", mi.msgpool >= 1,
       mi.msgmap >= 2, mi.msgtql >= 5, r == maxidx, mi.msgmax, mi.msgmnb, mi.msgmni);
  long idx = -1;
  for (long i = 0; i <= maxidx && i < 1 << 16; i++) {
    memset(&QDS, 0, sizeof QDS);
    if (sys_msgctl(i, MSG_STAT, &QDS) == q) {
      idx = i;
      break;
    }
  }
  FACT("msg.msg_stat.scan", "found=%d qnum=%lu cbytes=%lu", idx >= 0, idx >= 0 ? (unsigned long)QDS.msg_qnum : 0,
       idx >= 0 ? (unsigned long)QDS.__msg_cbytes : 0);
  SAMEID("msg.msg_stat.index", MSG, sys_msgctl(idx, MSG_STAT, &QDS), q);
  SAMEID("msg.msg_stat_any.index", MSG, sys_msgctl(idx, MSG_STAT_ANY, &QDS), q);
  CHECK("msg.msg_stat.badindex", sys_msgctl(BADID, MSG_STAT, &QDS));
  CHECK("msg.msg_stat.negindex", sys_msgctl(-1, MSG_STAT, &QDS));
  CHECK("msg.msg_stat.efault", sys_msgctl(idx, MSG_STAT, (void *)8));
  QSTAT(q);
  QDS.msg_perm.mode = 0200;
  sys_msgctl(q, IPC_SET, &QDS);
  SAMEID("msg.msg_stat.noperm", MSG, sys_msgctl(idx, MSG_STAT, &QDS), q);
  SAMEID("msg.msg_stat_any.noperm", MSG, sys_msgctl(idx, MSG_STAT_ANY, &QDS), q);
  CHECK("msg.info.rmid", sys_msgctl(q, IPC_RMID, NULL));
}

/* ==================================================================================== */
/* Random calls, on objects made first: two of each kind (the second with a key). No
 * call blocks (IPC_NOWAIT on every semaphore operation and message), none removes them
 * (no IPC_RMID), none gives an object away (IPC_SET's owner stays), objects a random
 * *get makes are removed at once. Ids, addresses, indexes, pids and times are printed
 * as relations. The memory the kernel reads from is written by the probe only; what
 * it writes to is never read back. */

static long RID[3][2], RIDX[3][2], RKEY[3], RNEWKEY;
static unsigned char *IN, *OUT, *RO1, *NONE1, *AREA;
#define BUF_LEN 65536
#define AREA_PAGES 16
static long ATT[256];
static int NATT;
static struct shmid_ds SETSHM;
static struct semid_ds SETSEM;
static struct msqid_ds SETMSG;

/* A buffer with PROT_NONE after it. */
static unsigned char *guarded(void) {
  unsigned char *m = mmap(NULL, BUF_LEN + PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  mprotect(m + BUF_LEN, PG, PROT_NONE);
  return m;
}
static long find_index(int kind, long id) {
  static char buf[512];
  long max = kind == SHM ? sys_shmctl(0, IPC_INFO, buf) : kind == SEM ? sys_semctl(0, 0, IPC_INFO, (long)buf) : sys_msgctl(0, IPC_INFO, (void *)buf);
  for (long i = 0; i <= max && i < 1 << 16; i++) {
    long r = kind == SHM ? sys_shmctl(i, SHM_STAT_ANY, buf) : kind == SEM ? sys_semctl(i, 0, SEM_STAT_ANY, (long)buf) : sys_msgctl(i, MSG_STAT_ANY, (void *)buf);
    if (r == id)
      return i;
  }
  return -1;
}

/* POSIX message queues, by raw syscall (the C library drops a leading slash). Their
 * names carry the pid; every one is unlinked at the end and on a crash. */
static char MQNAMES[16][64];
static int NMQ;
static const char *mqname(const char *tag) {
  snprintf(MQNAMES[NMQ], sizeof MQNAMES[0], "hsb-mq-%d-%s", (int)MAIN_PID, tag);
  return MQNAMES[NMQ++];
}
static void mq_cleanup(void) {
  if (getpid() != MAIN_PID)
    return;
  for (int i = 0; i < NMQ; i++)
    SYS(SYS_mq_unlink, MQNAMES[i]);
}
struct mqa {
  long flags, maxmsg, msgsize, curmsgs, pad[4];
};
static volatile sig_atomic_t MQSIG, MQCODE, MQPIDOK;
static volatile long MQVAL;
static void on_mq_signal(int sig, siginfo_t *si, void *u) {
  (void)u;
  MQSIG = sig;
  MQCODE = si->si_code;
  MQVAL = (long)si->si_value.sival_ptr;
  MQPIDOK = si->si_pid == getpid();
}

static void mqueues(void) {
  atexit(mq_cleanup);
  const char *a = mqname("a"), *small = mqname("small"), *bad = mqname("bad");
  struct mqa at = {0}, got;
  char big[300];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = 0;
  CHECK("mq.open.missing", SYS(SYS_mq_open, a, O_RDONLY, 0600, NULL));
  CHECK("mq.open.empty", SYS(SYS_mq_open, "", O_RDWR | O_CREAT, 0600, NULL));
  CHECK("mq.open.slash", SYS(SYS_mq_open, "x/y", O_RDWR | O_CREAT, 0600, NULL));
  CHECK("mq.open.dot", SYS(SYS_mq_open, ".", O_RDWR | O_CREAT, 0600, NULL));
  CHECK("mq.open.long", SYS(SYS_mq_open, big, O_RDWR | O_CREAT, 0600, NULL));
  CHECK("mq.open.efault.attr", SYS(SYS_mq_open, bad, O_RDWR | O_CREAT, 0600, (void *)8));
  at.maxmsg = 0, at.msgsize = 16;
  CHECK("mq.open.maxmsg0", SYS(SYS_mq_open, bad, O_RDWR | O_CREAT, 0600, &at));
  at.maxmsg = 11;
  CHECK("mq.open.maxmsg11", SYS(SYS_mq_open, bad, O_RDWR | O_CREAT, 0600, &at));
  at.maxmsg = 2, at.msgsize = 8193;
  CHECK("mq.open.msgsize", SYS(SYS_mq_open, bad, O_RDWR | O_CREAT, 0600, &at));
  int q = SYS(SYS_mq_open, a, O_RDWR | O_CREAT | O_CLOEXEC, 0640, NULL);
  CHECKX("mq.open.create", q >= 0 ? 0 : -1, "cloexec=%d", (fcntl(q, F_GETFD) & FD_CLOEXEC) != 0);
  memset(&got, 0, sizeof got);
  CHECKX("mq.attr.default", SYS(SYS_mq_getsetattr, q, NULL, &got), "flags=%ld maxmsg=%ld msgsize=%ld cur=%ld",
         got.flags, got.maxmsg, got.msgsize, got.curmsgs);
  struct stat st;
  CHECKX("mq.fstat", fstat(q, &st), "reg=%d mode=%o", S_ISREG(st.st_mode), st.st_mode & 07777);
  char link[128] = "", path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", q);
  ssize_t ln = readlink(path, link, sizeof link - 1);
  FACT("mq.fd.link", "%s", ln > 0 && strcmp(link + 1, a) == 0 && link[0] == '/' ? "/name" : link);
  CHECK("mq.open.excl", SYS(SYS_mq_open, a, O_RDWR | O_CREAT | O_EXCL, 0600, NULL));
  CHECK("mq.open.accmode3", SYS(SYS_mq_open, a, 3, 0, NULL));
  int wr = SYS(SYS_mq_open, a, O_WRONLY, 0, NULL), rd = SYS(SYS_mq_open, a, O_RDONLY, 0, NULL);
  CHECK("mq.open.existing", (wr >= 0 && rd >= 0) ? 0 : -1);

  /* Priorities: highest first, oldest first within one. */
  const char *texts[] = {"a5", "b1", "c9", "d5"};
  unsigned prios[] = {5, 1, 9, 5};
  for (int i = 0; i < 4; i++)
    SYS(SYS_mq_timedsend, wr, texts[i], 2, prios[i], NULL);
  char rb[8192];
  ssize_t rn = read(q, rb, sizeof rb - 1);
  rb[rn > 0 ? rn : 0] = 0;
  FACT("mq.read.status", "%.200s", rb);
  CHECK("mq.write", write(q, "x", 1));
  CHECK("mq.receive.small", SYS(SYS_mq_timedreceive, q, rb, 100, NULL, NULL));
  CHECK("mq.receive.wronly", SYS(SYS_mq_timedreceive, wr, rb, sizeof rb, NULL, NULL));
  CHECK("mq.send.rdonly", SYS(SYS_mq_timedsend, rd, "x", 1, 0, NULL));
  CHECK("mq.send.notmq", SYS(SYS_mq_timedsend, 1, "x", 1, 0, NULL));
  CHECK("mq.send.prio", SYS(SYS_mq_timedsend, wr, "x", 1, 32768, NULL));
  CHECK("mq.send.big", SYS(SYS_mq_timedsend, wr, rb, 8193, 0, NULL));
  CHECK("mq.send.efault", SYS(SYS_mq_timedsend, wr, (void *)8, 4, 0, NULL));
  for (int i = 0; i < 4; i++) {
    unsigned pr = 99;
    char lab[32];
    snprintf(lab, sizeof lab, "mq.receive.%d", i);
    memset(rb, 0, 8);
    CHECKX(lab, SYS(SYS_mq_timedreceive, rd, rb, sizeof rb, &pr, NULL), "text=%s prio=%u", rb, pr);
  }
  CHECK("mq.receive.efault.prio", (SYS(SYS_mq_timedsend, wr, "z", 1, 0, NULL),
                                   SYS(SYS_mq_timedreceive, rd, rb, sizeof rb, (void *)8, NULL)));
  memset(&got, 0, sizeof got);
  SYS(SYS_mq_getsetattr, q, NULL, &got);
  FACT("mq.receive.efault.after", "cur=%ld", got.curmsgs);

  /* A full queue, timeouts, non-blocking descriptors. */
  at.maxmsg = 2, at.msgsize = 64;
  int s = SYS(SYS_mq_open, small, O_RDWR | O_CREAT | O_NONBLOCK, 0600, &at);
  CHECK("mq.small.open", s >= 0 ? 0 : -1);
  SYS(SYS_mq_timedsend, s, "1", 1, 0, NULL);
  SYS(SYS_mq_timedsend, s, "2", 1, 0, NULL);
  CHECK("mq.small.full", SYS(SYS_mq_timedsend, s, "3", 1, 0, NULL));
  struct mqa nb = {0};
  CHECK("mq.setattr.bad", (nb.flags = O_APPEND, SYS(SYS_mq_getsetattr, s, &nb, NULL)));
  nb.flags = 0;
  memset(&got, 0, sizeof got);
  CHECKX("mq.setattr.block", SYS(SYS_mq_getsetattr, s, &nb, &got), "was=%ld", got.flags);
  struct timespec past = {1, 0}, badts = {0, 2000000000L}, soon;
  CHECK("mq.small.timeout.past", SYS(SYS_mq_timedsend, s, "3", 1, 0, &past));
  CHECK("mq.small.badts", SYS(SYS_mq_timedsend, s, "3", 1, 0, &badts));
  CHECK("mq.receive.badts", SYS(SYS_mq_timedreceive, s, rb, 64, NULL, &badts));
  SYS(SYS_mq_timedreceive, s, rb, 64, NULL, NULL);
  SYS(SYS_mq_timedreceive, s, rb, 64, NULL, NULL);
  clock_gettime(CLOCK_REALTIME, &soon);
  soon.tv_nsec += 20000000;
  if (soon.tv_nsec >= 1000000000L)
    soon.tv_sec++, soon.tv_nsec -= 1000000000L;
  CHECK("mq.small.receive.timeout", SYS(SYS_mq_timedreceive, s, rb, 64, NULL, &soon));

  /* A receiver waiting for a child's message. */
  pid_t c = child();
  if (c == 0) {
    usleep(50000);
    _exit(SYS(SYS_mq_timedsend, s, "kid", 3, 7, NULL) == 0 ? 0 : 1);
  }
  unsigned pr = 0;
  memset(rb, 0, 8);
  CHECKX("mq.receive.wait", SYS(SYS_mq_timedreceive, s, rb, 64, &pr, NULL), "text=%s prio=%u", rb, pr);
  FACT("mq.receive.wait.child", "%s", child_end(c, 5000));

  /* Notification: one process, a signal when a message reaches the empty queue. */
  struct sigaction sa = {0};
  sa.sa_sigaction = on_mq_signal;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  struct sigevent ev = {0};
  ev.sigev_notify = SIGEV_SIGNAL;
  ev.sigev_signo = SIGUSR1;
  ev.sigev_value.sival_ptr = (void *)0x1234;
  CHECK("mq.notify.set", SYS(SYS_mq_notify, s, &ev));
  CHECK("mq.notify.busy", SYS(SYS_mq_notify, s, &ev));
  rn = read(s, rb, sizeof rb - 1);
  rb[rn > 0 ? rn : 0] = 0;
  char *np = strstr(rb, "NOTIFY_PID:");
  if (np)
    snprintf(np, 32, "NOTIFY_PID:%s", atoi(np + 11) == getpid() ? "self" : "other");
  FACT("mq.notify.status", "%.200s", rb);
  SYS(SYS_mq_timedsend, s, "n", 1, 0, NULL);
  FACT("mq.notify.sent", "sig=%d code=%d value=%#lx self=%d", MQSIG, MQCODE, MQVAL, MQPIDOK);
  MQSIG = 0;
  SYS(SYS_mq_timedsend, s, "m", 1, 0, NULL);
  FACT("mq.notify.once", "sig=%d", MQSIG);
  CHECK("mq.notify.again", SYS(SYS_mq_notify, s, &ev));
  CHECK("mq.notify.clear", SYS(SYS_mq_notify, s, NULL));
  ev.sigev_notify = 99;
  CHECK("mq.notify.badkind", SYS(SYS_mq_notify, s, &ev));
  ev.sigev_notify = SIGEV_SIGNAL, ev.sigev_signo = 0;
  CHECK("mq.notify.badsig", SYS(SYS_mq_notify, s, &ev));
  ev.sigev_notify = SIGEV_NONE;
  CHECK("mq.notify.none", SYS(SYS_mq_notify, s, &ev));
  CHECK("mq.notify.notmq", SYS(SYS_mq_notify, 1, NULL));
  signal(SIGUSR1, SIG_DFL);

  /* Unlinked: gone by name, alive through its descriptors. */
  CHECK("mq.unlink", SYS(SYS_mq_unlink, a));
  CHECK("mq.unlink.again", SYS(SYS_mq_unlink, a));
  CHECK("mq.open.unlinked", SYS(SYS_mq_open, a, O_RDWR, 0, NULL));
  CHECK("mq.send.unlinked", SYS(SYS_mq_timedsend, wr, "u", 1, 0, NULL));
  CHECK("mq.unlink.slash", SYS(SYS_mq_unlink, "x/y"));
  close(q), close(wr), close(rd), close(s);
  SYS(SYS_mq_unlink, small);

  /* RLIMIT_MSGQUEUE: Linux counts each queue's size. */
  int made = 0, last = 0;
  for (int i = 0; i < 12; i++) {
    char tag[8];
    snprintf(tag, sizeof tag, "l%d", i);
    int fd = SYS(SYS_mq_open, mqname(tag), O_RDWR | O_CREAT, 0600, NULL);
    if (fd < 0) {
      last = errno;
      break;
    }
    close(fd);
    made++;
  }
  FACT("mq.rlimit", "made=%d then %s", made, last ? errname(last) : "none");
}

static void random_setup(void) {
  IN = guarded();
  OUT = guarded();
  RO1 = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  NONE1 = mmap(NULL, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  AREA = mmap(NULL, AREA_PAGES * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (int i = 0; i < BUF_LEN; i++)
    IN[i] = (unsigned char)(i * 7);
  for (int k = 0; k < 3; k++)
    RKEY[k] = fresh_key();
  RNEWKEY = fresh_key();
  RID[SHM][0] = track(SHM, sys_shmget(IPC_PRIVATE, PG, 0600));
  RID[SHM][1] = track(SHM, sys_shmget(RKEY[SHM], 3 * PG, IPC_CREAT | IPC_EXCL | 0600));
  RID[SEM][0] = track(SEM, sys_semget(IPC_PRIVATE, 3, 0600));
  RID[SEM][1] = track(SEM, sys_semget(RKEY[SEM], 1, IPC_CREAT | IPC_EXCL | 0600));
  RID[MSG][0] = track(MSG, sys_msgget(IPC_PRIVATE, 0600));
  RID[MSG][1] = track(MSG, sys_msgget(RKEY[MSG], IPC_CREAT | IPC_EXCL | 0600));
  for (int k = 0; k < 3; k++)
    for (int j = 0; j < 2; j++)
      RIDX[k][j] = find_index(k, RID[k][j]);
  sys_shmctl(RID[SHM][0], IPC_STAT, &SETSHM);
  sys_semctl(RID[SEM][0], 0, IPC_STAT, (long)&SETSEM);
  sys_msgctl(RID[MSG][0], IPC_STAT, &SETMSG);
}

/* Which object (or a bad id); `index`: as the *_STAT commands take it. */
static long rnd_obj(int kind, int index) {
  switch (rnd_below(8)) {
  case 0: case 1: case 2: desc("obj0"); return index ? RIDX[kind][0] : RID[kind][0];
  case 3: case 4: case 5: desc("obj1"); return index ? RIDX[kind][1] : RID[kind][1];
  case 6: desc("badid"); return BADID;
  default: desc("-1"); return -1;
  }
}
/* A buffer the kernel writes to. */
static long rnd_out(void) {
  switch (rnd_below(11)) {
  case 0: desc("NULL"); return 0;
  case 1: desc("out_end-8"); return (long)(OUT + BUF_LEN - 8);
  case 2: desc("ro"); return (long)RO1;
  case 3: desc("none"); return (long)NONE1;
  case 4: desc("kernel"); return KADDR;
  default: desc("out"); return (long)OUT;
  }
}
/* A pointer whose contents must not be read at all. */
static long rnd_bad(void) {
  switch (rnd_below(3)) {
  case 0: desc("NULL"); return 0;
  case 1: desc("none"); return (long)NONE1;
  default: desc("kernel"); return KADDR;
  }
}
static long rnd_mode(void) { return PICK(0600, 0600, 0600, 0400, 0200, 0, 0777, 0640); }
/* Flags of a *get: IPC_CREAT, IPC_EXCL, a mode, sometimes a bit nothing uses. */
static long rnd_getflags(void) {
  static const long modes[] = {0600, 0400, 0200, 0, 0777, 0640};
  long f = (rnd_below(2) ? IPC_CREAT : 0) | (rnd_below(4) ? 0 : IPC_EXCL);
  f |= modes[rnd_below(6)];
  if (rnd_below(8) == 0)
    f |= 1L << 20;
  desc("%#lo", f);
  return f;
}
static long rnd_key(int kind) {
  switch (rnd_below(3)) {
  case 0: desc("IPC_PRIVATE"); return IPC_PRIVATE;
  case 1: desc("key1"); return RKEY[kind];
  default: desc("newkey"); return RNEWKEY;
  }
}
/* A *get's answer: an object of ours, or a new one (removed at once). */
static const char *got_id(int kind, long *r) {
  if (*r < 0)
    return NULL;
  for (int j = 0; j < 2; j++)
    if (*r == RID[kind][j]) {
      *r = 0;
      return j ? "obj1" : "obj0";
    }
  rmid(kind, *r);
  *r = 0;
  return "a new object (removed)";
}
/* A *ctl's answer for commands returning an id (the *_STAT commands: which object it
 * is) or the highest index in use (the *_INFO commands: it varies, and may equal an id
 * by chance). */
static const char *varies(int kind, long *r, int is_stat) {
  if (*r < 0)
    return NULL;
  for (int j = 0; j < 2 && is_stat; j++)
    if (*r == RID[kind][j]) {
      *r = 0;
      return j ? "obj1" : "obj0";
    }
  *r = 0;
  return "value varies";
}
/* Keeps AREA free of holes (so that the kernel never places an attach in it): every
 * page not mapped any more is mapped PROT_NONE again. */
static void refill_area(void) {
  for (int i = 0; i < AREA_PAGES; i++) {
    unsigned char *p = AREA + i * PG;
    if (msync(p, PG, MS_ASYNC) == -1 && errno == ENOMEM)
      mmap(p, PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  }
}
static void forget_attach(long addr) {
  int n = 0;
  for (int i = 0; i < NATT; i++)
    if (ATT[i] != addr)
      ATT[n++] = ATT[i];
  NATT = n;
}
static struct sembuf BIGOPS[501];
/* Semaphore operations (always IPC_NOWAIT), or a pointer not to read. */
static long rnd_sops(long *nsops) {
  *nsops = PICK(1, 1, 1, 2, 3, 0, 501);
  if (rnd_below(6) == 0)
    return rnd_bad();
  if (*nsops == 501) {
    for (int i = 0; i < 501; i++)
      BIGOPS[i] = (struct sembuf){0, 0, IPC_NOWAIT};
    desc("501x{0,0,nowait}");
    return (long)BIGOPS;
  }
  for (long i = 0; i < *nsops; i++) {
    int num = (int)rnd_below(4);
    static const int ops[] = {-2, -1, 0, 1, 2, 32767, -32768};
    int op = ops[rnd_below(7)];
    int flg = IPC_NOWAIT | (rnd_below(3) == 0 ? SEM_UNDO : 0);
    OPS[i] = (struct sembuf){(unsigned short)num, (short)op, (short)flg};
    desc("{%d,%d,%s}", num, op, flg & SEM_UNDO ? "undo" : "nowait");
  }
  return (long)OPS;
}

static void one(int i) {
  long r = 0, nsops;
  const char *w, *extra = NULL;
  errno = 0;
  int e = 0;
  switch (rnd_below(12)) {
  case 0: {
    w = "shmget";
    long key = rnd_key(SHM);
    long size = PICK(0, 1, 4096, 3 * 4096, 3 * 4096 + 1, 1 << 20, -1);
    long flg = rnd_getflags();
    r = sys_shmget(key, size, flg);
    e = errno;
    extra = got_id(SHM, &r);
    break;
  }
  case 1: {
    w = "shmat";
    long id = rnd_obj(SHM, 0), addr;
    switch (rnd_below(8)) {
    case 0: case 1: case 2: desc("NULL"); addr = 0; break;
    case 3: desc("area"); addr = (long)AREA; break;
    case 4: desc("area+1"); addr = (long)AREA + 1; break;
    case 5: desc("area+8192"); addr = (long)AREA + 8192; break;
    case 6: desc("area+8197"); addr = (long)AREA + 8197; break;
    default: desc("kernel"); addr = KADDR; break;
    }
    long flg = 0;
    flg |= rnd_below(3) == 0 ? SHM_RDONLY : 0;
    flg |= rnd_below(3) == 0 ? SHM_RND : 0;
    flg |= rnd_below(3) == 0 ? SHM_REMAP : 0;
    flg |= rnd_below(5) == 0 ? SHM_EXEC : 0;
    flg |= rnd_below(8) == 0 ? 1L << 20 : 0;
    desc("%#lo", flg);
    r = sys_shmat(id, addr, flg);
    e = errno;
    if (r != -1) {
      if (NATT < 256)
        ATT[NATT++] = r;
      extra = !addr ? "an address" : r == addr ? "at the address asked" : r == (addr & ~(PG - 1)) ? "at the address rounded down" : "at another address";
      r = 0;
    }
    break;
  }
  case 2: {
    w = "shmdt";
    long addr;
    switch (rnd_below(9)) {
    case 0: case 1: desc("last"); addr = NATT ? ATT[NATT - 1] : 0; break;
    case 2: case 3: desc("first"); addr = NATT ? ATT[0] : 0; break;
    case 4: desc("area"); addr = (long)AREA; break;
    case 5: desc("area+8192"); addr = (long)AREA + 8192; break;
    case 6: desc("area+1"); addr = (long)AREA + 1; break;
    case 7: desc("in"); addr = (long)IN; break;
    default: desc("NULL"); addr = 0; break;
    }
    r = sys_shmdt(addr);
    e = errno;
    if (r == 0)
      forget_attach(addr);
    refill_area();
    break;
  }
  case 3: {
    w = "shmctl";
    long cmd = (long[]){IPC_STAT, IPC_STAT, IPC_SET, IPC_INFO, SHM_INFO, SHM_STAT, SHM_STAT_ANY, 99, -1}[rnd_below(9)];
    int index = cmd == SHM_STAT || cmd == SHM_STAT_ANY;
    long id = rnd_obj(SHM, index);
    desc("%ld", cmd);
    long buf;
    if (cmd == IPC_SET && rnd_below(4)) {
      SETSHM.shm_perm.mode = (unsigned short)rnd_mode();
      buf = (long)&SETSHM;
    } else {
      buf = cmd == IPC_SET ? rnd_bad() : rnd_out();
    }
    r = sys_shmctl(id, cmd, (void *)buf);
    e = errno;
    if (cmd == IPC_INFO || cmd == SHM_INFO || index)
      extra = varies(SHM, &r, index);
    break;
  }
  case 4: {
    w = "semget";
    long key = rnd_key(SEM);
    long nsems = PICK(0, 1, 3, 4, 32000, 32001, -1);
    long flg = rnd_getflags();
    r = sys_semget(key, nsems, flg);
    e = errno;
    extra = got_id(SEM, &r);
    break;
  }
  case 5: {
    w = "semop";
    long id = rnd_obj(SEM, 0);
    long sops = rnd_sops(&nsops);
    r = sys_semop(id, (void *)sops, nsops);
    e = errno;
    break;
  }
  case 6: {
    w = "semtimedop";
    long id = rnd_obj(SEM, 0);
    long sops = rnd_sops(&nsops);
    static struct timespec t;
    long tp;
    switch (rnd_below(6)) {
    case 0: desc("NULL"); tp = 0; break;
    case 1: desc("{0,0}"); t = (struct timespec){0, 0}; tp = (long)&t; break;
    case 2: desc("{0,10ms}"); t = (struct timespec){0, 10000000}; tp = (long)&t; break;
    case 3: desc("{0,1e9}"); t = (struct timespec){0, 1000000000}; tp = (long)&t; break;
    case 4: desc("{-1,0}"); t = (struct timespec){-1, 0}; tp = (long)&t; break;
    default: tp = rnd_bad(); break;
    }
    r = sys_semtimedop(id, (void *)sops, nsops, (void *)tp);
    e = errno;
    break;
  }
  case 7: {
    w = "semctl";
    long cmd = (long[]){GETVAL, GETVAL, SETVAL, SETVAL, GETPID, GETNCNT, GETZCNT, GETALL, SETALL, SETALL, IPC_STAT, IPC_SET, IPC_INFO,
                        SEM_INFO, SEM_STAT, SEM_STAT_ANY, 99, -1}[rnd_below(18)];
    int index = cmd == SEM_STAT || cmd == SEM_STAT_ANY;
    long id = rnd_obj(SEM, index);
    long num = PICK(0, 0, 1, 2, 3, -1);
    desc("%ld", cmd);
    long arg;
    if (cmd == SETVAL) {
      arg = PICK(0, 1, 2, 5, 32767, 32768, -1);
    } else if (cmd == SETALL && rnd_below(4)) {
      static unsigned short v[3];
      for (int j = 0; j < 3; j++)
        v[j] = (unsigned short)PICK(0, 1, 2, 3, 32767, 32768);
      arg = (long)v;
    } else if (cmd == IPC_SET && rnd_below(4)) {
      SETSEM.sem_perm.mode = (unsigned short)rnd_mode();
      arg = (long)&SETSEM;
    } else if (cmd == SETALL || cmd == IPC_SET) {
      arg = rnd_bad();
    } else {
      arg = rnd_out();
    }
    r = sys_semctl(id, num, cmd, arg);
    e = errno;
    if (cmd == GETPID && r >= 0) {
      extra = r == getpid() ? "pid==self" : r == 0 ? "pid 0" : "another pid";
      r = 0;
    } else if (cmd == IPC_INFO || cmd == SEM_INFO || index) {
      extra = varies(SEM, &r, index);
    }
    break;
  }
  case 8: {
    w = "msgget";
    long key = rnd_key(MSG);
    r = sys_msgget(key, rnd_getflags());
    e = errno;
    extra = got_id(MSG, &r);
    break;
  }
  case 9: {
    w = "msgsnd";
    long id = rnd_obj(MSG, 0);
    static const long types[] = {1, 1, 2, 3, 0, -1, LONG_MAX};
    long type = types[rnd_below(7)];
    desc("type=%ld", type);
    long p;
    switch (rnd_below(8)) {
    case 0: desc("in_end-8"); p = (long)(IN + BUF_LEN - 8); break;
    case 1: desc("ro"); p = (long)RO1; break;
    case 2: p = rnd_bad(); break;
    default: desc("in"); p = (long)IN; break;
    }
    if (p == (long)IN || p == (long)(IN + BUF_LEN - 8))
      *(long *)p = type;
    long sz = PICK(0, 1, 16, 100, 1000, 8192, 8193, -1);
    long flg = IPC_NOWAIT | (rnd_below(4) == 0 ? MSG_NOERROR : 0);
    desc("%#lo", flg);
    r = sys_msgsnd(id, (void *)p, sz, flg);
    e = errno;
    break;
  }
  case 10: {
    w = "msgrcv";
    long id = rnd_obj(MSG, 0);
    long p = rnd_out();
    long sz = PICK(0, 1, 8, 16, 100, 8192, -1);
    long typ = PICK(0, 0, 1, 2, 3, -1, -3, LONG_MIN);
    long flg = IPC_NOWAIT;
    flg |= rnd_below(3) == 0 ? MSG_NOERROR : 0;
    flg |= rnd_below(4) == 0 ? MSG_EXCEPT : 0;
    flg |= rnd_below(5) == 0 ? MSG_COPY : 0;
    desc("%#lo", flg);
    r = sys_msgrcv(id, (void *)p, sz, typ, flg);
    e = errno;
    break;
  }
  default: {
    w = "msgctl";
    long cmd = (long[]){IPC_STAT, IPC_STAT, IPC_SET, IPC_SET, IPC_INFO, MSG_INFO, MSG_STAT, MSG_STAT_ANY, 99, -1}[rnd_below(10)];
    int index = cmd == MSG_STAT || cmd == MSG_STAT_ANY;
    long id = rnd_obj(MSG, index);
    desc("%ld", cmd);
    long buf;
    if (cmd == IPC_SET && rnd_below(4)) {
      SETMSG.msg_perm.mode = (unsigned short)rnd_mode();
      SETMSG.msg_qbytes = (msglen_t)PICK(0, 1, 100, 8192, 16384, 16384, 16385);
      buf = (long)&SETMSG;
    } else {
      buf = cmd == IPC_SET ? rnd_bad() : rnd_out();
    }
    r = sys_msgctl(id, cmd, (void *)buf);
    e = errno;
    if (cmd == IPC_INFO || cmd == MSG_INFO || index)
      extra = varies(MSG, &r, index);
    break;
  }
  }
  report_random(i, w, r, e, extra);
}

int main(int argc, char **argv) {
  FAMILY = "ipc";
  scratch();
  MAIN_PID = getpid();
  KEYBASE = 0x40000000L | ((long)(getpid() & 0x3fffff) << 8);
  atexit(cleanup);
  int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTERM, SIGINT, SIGHUP, SIGPIPE};
  for (unsigned j = 0; j < sizeof fatal / sizeof fatal[0]; j++) {
    struct sigaction sa = {0};
    sa.sa_handler = on_crash;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(fatal[j], &sa, NULL);
  }
  restart_handler(0);
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  shm_sizes_keys();
  shm_attaches();
  shm_info();
  sem_gets();
  sem_values_ops();
  sem_processes();
  sem_info_stat();
  msg_gets();
  msg_send_receive();
  msg_processes();
  msg_info_stat();
  mqueues();
  int left = 0;
  for (int j = 0; j < NOBJS; j++)
    left += exists(OBJS[j].kind, OBJS[j].id);
  FACT("cleanup", "objects left before the final cleanup: %d", left);
  return 0;
}
