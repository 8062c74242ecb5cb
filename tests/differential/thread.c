/* Threads and futexes: clone's flag checks, thread ids, futex operations and their
 * errors, per-thread state (nice, signal masks, CPU time), exits. */
#include "probe.h"

#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>

static long futex(int *u, int op, int val, const struct timespec *t, int *u2, int val3) {
  return SYS(SYS_futex, u, op, val, t, u2, val3);
}

static int word;
static void *waiter(void *arg) {
  (void)arg;
  long r = futex(&word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
  return (void *)r;
}

static pid_t child_tid;
static void *ids(void *arg) {
  (void)arg;
  child_tid = (pid_t)SYS(SYS_gettid);
  return NULL;
}

static void *nice_thread(void *arg) {
  (void)arg;
  setpriority(PRIO_PROCESS, 0, 7);
  return (void *)(long)getpriority(PRIO_PROCESS, 0);
}

static void *blocker(void *arg) {
  (void)arg;
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &s, NULL);
  int sig = 0;
  sigwait(&s, &sig);
  return (void *)(long)sig;
}

static void futexes(void) {
  int w = 1;
  CHECK("futex.wait.mismatch", futex(&w, FUTEX_WAIT, 0, NULL, NULL, 0));
  struct timespec t = {0, 1000000};
  CHECK("futex.wait.timeout", futex(&w, FUTEX_WAIT, 1, &t, NULL, 0));
  t.tv_nsec = 2000000000;
  CHECK("futex.wait.badtime", futex(&w, FUTEX_WAIT, 1, &t, NULL, 0));
  CHECK("futex.wake.none", futex(&w, FUTEX_WAKE, 1, NULL, NULL, 0));
  CHECK("futex.badop", futex(&w, 99, 0, NULL, NULL, 0));
  CHECK("futex.efault", futex((int *)8, FUTEX_WAIT, 0, NULL, NULL, 0));
  CHECK("futex.unaligned", futex((int *)((char *)&w + 1), FUTEX_WAIT, 0, NULL, NULL, 0));
  CHECK("futex.bitset.zero", futex(&w, FUTEX_WAIT_BITSET, 1, NULL, NULL, 0));
  CHECK("futex.wake.bitset.zero", futex(&w, FUTEX_WAKE_BITSET, 1, NULL, NULL, 0));
  int w2 = 0;
  CHECK("futex.cmp_requeue.mismatch", futex(&w, FUTEX_CMP_REQUEUE, 1, (void *)1, &w2, 5));
  CHECK("futex.wake_op", futex(&w, FUTEX_WAKE_OP, 1, (void *)1, &w2, FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 0)));
  FACT("futex.wake_op.result", "w2=%d", w2);
  int pi = 0;
  CHECK("futex.lock_pi", futex(&pi, FUTEX_LOCK_PI, 0, NULL, NULL, 0));
  CHECK("futex.unlock_pi", futex(&pi, FUTEX_UNLOCK_PI, 0, NULL, NULL, 0));
  pthread_t th;
  pthread_create(&th, NULL, waiter, NULL);
  /* The word stays 0: a wake before the waiter sleeps finds nobody and is retried, a
     wake after finds it; setting the word first raced a late waiter into EAGAIN on a
     loaded machine. */
  long woken = 0;
  for (int i = 0; i < 2000 && woken == 0; i++) {
    usleep(5000);
    woken = futex(&word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  }
  void *r;
  pthread_join(th, &r);
  FACT("futex.wake.one", "woken=%ld waiter=%ld", woken, (long)r);
}

static void threads(void) {
  pthread_t t;
  pthread_create(&t, NULL, ids, NULL);
  pthread_join(t, NULL);
  FACT("thread.tid", "differs=%d pid_same=%d", child_tid != (pid_t)SYS(SYS_gettid), 1);
  CHECK("gettid.is.pid", SYS(SYS_gettid) == getpid());
  pthread_create(&t, NULL, nice_thread, NULL);
  void *r;
  pthread_join(t, &r);
  FACT("thread.nice", "thread=%ld main=%d", (long)r, getpriority(PRIO_PROCESS, 0));
  pthread_create(&t, NULL, blocker, NULL);
  usleep(20000);
  CHECK("pthread_kill", pthread_kill(t, SIGUSR1));
  pthread_join(t, &r);
  FACT("thread.sigwait", "sig=%ld", (long)r);
  char stack[16384];
  CHECK("clone.thread.nosighand", SYS(SYS_clone, CLONE_THREAD | CLONE_VM, stack + sizeof stack, 0, 0, 0));
  CHECK("clone.sighand.novm", SYS(SYS_clone, CLONE_SIGHAND, stack + sizeof stack, 0, 0, 0));
  CHECK("clone.newpid", SYS(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0));
  CHECK("clone.newuser.sighand", SYS(SYS_clone, CLONE_NEWUSER | CLONE_SIGHAND, 0, 0, 0, 0));
  CHECK("clone.fs.newns", SYS(SYS_clone, CLONE_FS | CLONE_NEWNS, 0, 0, 0, 0));
  CHECK("set_tid_address", SYS(SYS_set_tid_address, &word) == getpid());
  struct robust_list_head *h;
  size_t len;
  CHECKX("get_robust_list", SYS(SYS_get_robust_list, 0, &h, &len), "len=%zu", len);
  CHECK("get_robust_list.noent", SYS(SYS_get_robust_list, 999999, &h, &len));
  CHECK("set_robust_list.badlen", SYS(SYS_set_robust_list, h, 5));
  pid_t c = fork();
  if (c == 0) {
    pthread_t t2;
    pthread_create(&t2, NULL, ids, NULL);
    pthread_join(t2, NULL);
    SYS(SYS_exit, 3); /* one thread: the process ends with it */
  }
  int st;
  waitpid(c, &st, 0);
  FACT("exit.last.thread", "code=%d", WEXITSTATUS(st));
  c = fork();
  if (c == 0) {
    pthread_create(&t, NULL, waiter, NULL);
    usleep(10000);
    _exit(4); /* exit_group takes the other thread */
  }
  waitpid(c, &st, 0);
  FACT("exit_group.threads", "code=%d", WEXITSTATUS(st));
  c = vfork();
  if (c == 0)
    _exit(5);
  FACT("vfork", "ok=%d", c > 0);
  waitpid(c, &st, 0);
  FACT("vfork.exit", "code=%d", WEXITSTATUS(st));
  CHECK("clone3", SYS(SYS_clone3, NULL, 0));
}


static int FW[2];
static void random_setup(void) {}
static void one(int i) {
  long r;
  const char *w = "futex";
  struct timespec t = {0, PICK(0, 1000, -1)};
  /* Each argument is chosen in order (a call's arguments are evaluated in no set
   * order), and the fourth is a timeout only for FUTEX_WAIT_BITSET: for the others it
   * is a number (val2), which must not be an address (it would vary run to run). */
  long uaddr = rnd_below(4) ? (long)&FW[rnd_below(2)] : rnd_ptr();
  long op = PICK(FUTEX_WAKE, FUTEX_WAKE_PRIVATE, FUTEX_WAIT_BITSET, FUTEX_WAKE_BITSET, FUTEX_WAKE_OP, FUTEX_CMP_REQUEUE, 99);
  long val = PICK(0, 1, 2);
  long arg4 = op == FUTEX_WAIT_BITSET ? (rnd_below(2) ? (long)&t : 1) : PICK(0, 1, -1);
  long val3 = PICK(0, 1, -1);
  errno = 0;
  r = SYS(SYS_futex, uaddr, op, val, arg4, (long)&FW[1], val3);
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "thread";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  futexes();
  threads();
  return 0;
}
