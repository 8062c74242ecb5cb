/* Descriptors, pipes, fcntl, readiness (poll, select, epoll, eventfd), copies between
 * files (sendfile, splice, copy_file_range). */
#include "probe.h"

#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>

static void on_alarm(int s) { (void)s; }

static long fill(int fd, long n) {
  static char buf[1 << 16];
  memset(buf, 'x', sizeof buf);
  long done = 0;
  while (done < n) {
    long k = write(fd, buf, n - done < (long)sizeof buf ? n - done : (long)sizeof buf);
    if (k <= 0)
      break;
    done += k;
  }
  return done;
}

static void pipes(void) {
  int p[2];
  CHECK("pipe2.badflags", pipe2(p, 0x12345));
  CHECK("pipe2", pipe2(p, O_NONBLOCK));
  CHECK("pipe.getsz", fcntl(p[0], F_GETPIPE_SZ));
  CHECK("pipe.setsz.1", fcntl(p[1], F_SETPIPE_SZ, 1));
  CHECK("pipe.setsz.0", fcntl(p[1], F_SETPIPE_SZ, 0));
  CHECK("pipe.setsz.100000", fcntl(p[0], F_SETPIPE_SZ, 100000));
  CHECK("pipe.getsz.after", fcntl(p[1], F_GETPIPE_SZ));
  {
    char max[32] = "";
    int m = open("/proc/sys/fs/pipe-max-size", O_RDONLY);
    CHECKX("pipe.maxsize.file", read(m, max, sizeof max - 1) > 0, "%s", strtok(max, "\n"));
    close(m);
  }
  CHECK("pipe.setsz.2M", fcntl(p[1], F_SETPIPE_SZ, 2 << 20));
  CHECK("pipe.setsz.huge", fcntl(p[1], F_SETPIPE_SZ, -1));
  CHECKX("pipe.fill.131072", fill(p[1], 200000), "");
  CHECK("pipe.full.eagain", write(p[1], "y", 1));
  CHECK("pipe.setsz.busy", fcntl(p[1], F_SETPIPE_SZ, 4096));
  int n = 0;
  CHECKX("pipe.fionread", ioctl(p[0], FIONREAD, &n), "n=%d", n);
  char buf[8];
  CHECK("pipe.read.ro.write", write(p[0], "y", 1));
  CHECK("pipe.read", read(p[0], buf, sizeof buf));
  close(p[0]);
  close(p[1]);

  /* A pipe of one page: what a non-blocking write larger than it, and one within
   * PIPE_BUF that does not fit, do. */
  CHECK("pipe2.small", pipe2(p, O_NONBLOCK));
  CHECK("pipe.small.setsz", fcntl(p[1], F_SETPIPE_SZ, 4096));
  CHECK("pipe.small.write5000", write(p[1], memset(malloc(5000), 'a', 5000), 5000));
  CHECK("pipe.small.write1", write(p[1], "b", 1));
  CHECK("pipe.small.read100", read(p[0], malloc(100), 100));
  CHECK("pipe.small.write200.atomic", write(p[1], memset(malloc(200), 'c', 200), 200));
  CHECK("pipe.small.write50", write(p[1], "0123456789012345678901234567890123456789012345678", 50));
  close(p[0]);
  close(p[1]);

  /* EOF, EAGAIN, EPIPE. */
  CHECK("pipe2.eof", pipe2(p, O_NONBLOCK));
  CHECK("pipe.empty.eagain", read(p[0], buf, 1));
  /* The buffer is looked at only when there is something to copy. */
  CHECK("pipe.empty.badbuf", read(p[0], (void *)8, 1));
  write(p[1], "q", 1);
  CHECK("pipe.queued.badbuf", read(p[0], (void *)8, 1));
  CHECKX("pipe.queued.kept", read(p[0], buf, 1), "%.1s", buf);
  close(p[1]);
  CHECK("pipe.eof", read(p[0], buf, 1));
  CHECK("pipe.eof.badbuf", read(p[0], (void *)8, 1));
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  CHECK("pipe2.epipe", pipe2(p, 0));
  close(p[0]);
  CHECK("pipe.epipe", write(p[1], "z", 1));
  CHECK("pipe.epipe.badbuf", write(p[1], (void *)8, 1));
  CHECK("pipe.epipe.empty", write(p[1], "z", 0));
  close(p[1]);

  /* Named pipes: a non-blocking write-only open without a reader, a non-blocking
   * read-only open before any writer (reads end the file, poll sees nothing), a
   * writer coming and going, and O_RDWR (a reader and a writer of its own). */
  CHECK("fifo.mkfifo", mkfifo("fifo-io", 0600));
  CHECK("fifo.wronly.nonblock.noreader", open("fifo-io", O_WRONLY | O_NONBLOCK));
  int fr = open("fifo-io", O_RDONLY | O_NONBLOCK);
  CHECK("fifo.rdonly.nonblock", fr >= 0);
  CHECK("fifo.read.nowriter", read(fr, buf, sizeof buf));
  struct pollfd fp = {fr, POLLIN, 0};
  CHECKX("fifo.poll.nowriter", poll(&fp, 1, 0), "revents=%#x", fp.revents);
  int fw = open("fifo-io", O_WRONLY | O_NONBLOCK);
  CHECK("fifo.wronly.nonblock.reader", fw >= 0);
  CHECK("fifo.read.writer.eagain", read(fr, buf, sizeof buf));
  CHECK("fifo.write", write(fw, "hi", 2));
  CHECK("fifo.read", read(fr, buf, sizeof buf));
  close(fw);
  fp.revents = 0;
  CHECKX("fifo.poll.writer.gone", poll(&fp, 1, 0), "revents=%#x", fp.revents);
  CHECK("fifo.read.writer.gone", read(fr, buf, sizeof buf));
  close(fr);
  int frw = open("fifo-io", O_RDWR);
  CHECK("fifo.rdwr", frw >= 0);
  CHECK("fifo.rdwr.write", write(frw, "abc", 3));
  fp = (struct pollfd){frw, POLLIN | POLLOUT, 0};
  CHECKX("fifo.rdwr.poll", poll(&fp, 1, 0), "revents=%#x", fp.revents);
  CHECK("fifo.rdwr.read", read(frw, buf, sizeof buf));
  CHECK("fifo.rdwr.setfl", fcntl(frw, F_SETFL, O_NONBLOCK));
  CHECK("fifo.rdwr.empty.eagain", read(frw, buf, sizeof buf));
  close(frw);
  unlink("fifo-io");

  /* A blocking write larger than the pipe waits until a reader takes it all. */
  CHECK("pipe2.big", pipe2(p, 0));
  pid_t c = fork();
  if (c == 0) {
    close(p[1]);
    usleep(50000);
    long got = 0, k;
    char b[4096];
    while ((k = read(p[0], b, sizeof b)) > 0)
      got += k;
    _exit(got == 300000 ? 0 : 1);
  }
  close(p[0]);
  CHECK("pipe.bigwrite.blocks.until.all", write(p[1], memset(malloc(300000), 'd', 300000), 300000));
  close(p[1]);
  int st = 0;
  waitpid(c, &st, 0);
  FACT("pipe.bigwrite.reader", "reader got all: %s", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "yes" : "no");

  /* A signal interrupts a blocking write: the bytes written so far, or EINTR when
   * none were. */
  struct sigaction sa = {0};
  sa.sa_handler = on_alarm;
  sigaction(SIGALRM, &sa, NULL);
  CHECK("pipe2.intr", pipe2(p, 0));
  struct itimerval it = {{0, 0}, {0, 100000}};
  setitimer(ITIMER_REAL, &it, NULL);
  CHECK("pipe.intr.partial", write(p[1], memset(malloc(100000), 'e', 100000), 100000));
  setitimer(ITIMER_REAL, &it, NULL);
  CHECK("pipe.intr.none", write(p[1], "f", 1));
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  CHECK("pipe.intr.drain", read(p[0], malloc(65536), 65536));
  setitimer(ITIMER_REAL, &it, NULL);
  CHECK("pipe.intr.restart.partial", write(p[1], memset(malloc(100000), 'g', 100000), 100000));
  close(p[0]);
  close(p[1]);
}

static void fcntls(void) {
  int fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK("fcntl.dupfd.huge", fcntl(fd, F_DUPFD, 1 << 20));
  CHECK("fcntl.dupfd.neg", fcntl(fd, F_DUPFD, -1));
  CHECK("fcntl.dupfd.10", fcntl(fd, F_DUPFD, 10));
  CHECK("fcntl.dupfd_cloexec", fcntl(fd, F_DUPFD_CLOEXEC, 10));
  CHECK("fcntl.getfd", fcntl(11, F_GETFD));
  CHECK("fcntl.setfd", fcntl(11, F_SETFD, 0));
  CHECK("fcntl.getfd.after", fcntl(11, F_GETFD));
  CHECK("fcntl.getfl", fcntl(fd, F_GETFL));
  CHECK("fcntl.setfl", fcntl(fd, F_SETFL, O_APPEND | O_NONBLOCK | O_RDONLY));
  CHECK("fcntl.getfl.after", fcntl(fd, F_GETFL));
  CHECK("fcntl.badcmd", fcntl(fd, 12345));
  CHECK("fcntl.badfd", fcntl(999, F_GETFD));
  CHECK("fcntl.setpipe.file", fcntl(fd, F_SETPIPE_SZ, 4096));
  CHECK("fcntl.getpipe.file", fcntl(fd, F_GETPIPE_SZ));
  CHECK("fcntl.notify.file", fcntl(fd, F_NOTIFY, DN_CREATE));
  int d = open(".", O_RDONLY | O_DIRECTORY);
  CHECK("fcntl.notify.dir", fcntl(d, F_NOTIFY, DN_CREATE | DN_MULTISHOT));
  CHECK("fcntl.notify.dir.off", fcntl(d, F_NOTIFY, 0));
  struct flock l = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
  CHECK("fcntl.setlk", fcntl(fd, F_SETLK, &l));
  l.l_type = F_RDLCK;
  CHECKX("fcntl.getlk", fcntl(fd, F_GETLK, &l), "type=%d", l.l_type);
  CHECK("fcntl.getlk.efault", fcntl(fd, F_GETLK, (void *)8));
  CHECK("fcntl.seals", fcntl(fd, F_GET_SEALS));
  CHECK("fcntl.getown", fcntl(fd, F_GETOWN));
  CHECK("fcntl.getsig", fcntl(fd, F_GETSIG));
  CHECK("fcntl.getlease", fcntl(fd, F_GETLEASE));
  close(d);
  close(fd);
  close(10);
  close(11);
}

/* A lock request: type, start and length from the file's start. */
static struct flock lk(short type, off_t start, off_t len) {
  struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
  return l;
}

/* A child's exit, as the parent saw it. */
static void child_status(const char *label, pid_t c) {
  int st = 0;
  waitpid(c, &st, 0);
  FACT(label, "%s", WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "exited 0" : "failed or killed");
}

/* POSIX record locks (process-owned), as another process meets them: conflicts, what
 * F_GETLK reports (merged and cut ranges), the release by closing any descriptor of the
 * file, and F_SETLKW waiting until then. */
static void record_locks(void) {
  int a = open("lk", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK("lock.fill", write(a, "0123456789abcdefghijklmnopqrstuvwxyz0123", 40));
  struct flock l = lk(F_WRLCK, 0, 10);
  CHECK("lock.set.w0-9", fcntl(a, F_SETLK, &l));
  l = lk(F_RDLCK, 10, 5);
  CHECK("lock.set.r10-14", fcntl(a, F_SETLK, &l));
  l = lk(F_RDLCK, 20, 10);
  CHECK("lock.set.r20-29", fcntl(a, F_SETLK, &l));
  l = lk(F_RDLCK, 30, 10);
  CHECK("lock.set.r30-39.merges", fcntl(a, F_SETLK, &l));
  l = lk(F_WRLCK, 24, 2);
  CHECK("lock.set.w24-25.cuts", fcntl(a, F_SETLK, &l));
  l = lk(F_UNLCK, 0, 10);
  CHECK("lock.getlk.unlck", fcntl(a, F_GETLK, &l));
  l = lk(F_WRLCK, -1, 1);
  CHECK("lock.set.before0", fcntl(a, F_SETLK, &l));
  l = lk(F_WRLCK, 5, -10);
  CHECK("lock.set.neglen.before0", fcntl(a, F_SETLK, &l));
  l = lk(F_WRLCK, 1, 0x7fffffffffffffffL);
  CHECK("lock.set.overflow", fcntl(a, F_SETLK, &l));
  l = lk(F_WRLCK, 0, 1);
  l.l_whence = 3;
  CHECK("lock.set.badwhence", fcntl(a, F_SETLK, &l));
  /* The process's own locks never conflict with it. */
  l = lk(F_WRLCK, 0, 0);
  CHECKX("lock.getlk.own", fcntl(a, F_GETLK, &l), "type=%d", l.l_type);

  int ready[2];
  if (pipe(ready) != 0)
    return;
  pid_t c = fork();
  if (c == 0) {
    alarm(10); /* a wait that never ends fails the check instead of hanging it */
    int b = open("lk", O_RDWR);
    struct flock x = lk(F_WRLCK, 5, 1);
    CHECK("lock.child.w5.conflict", fcntl(b, F_SETLK, &x));
    x = lk(F_RDLCK, 0, 0);
    CHECKX("lock.child.getlk.r", fcntl(b, F_GETLK, &x), "type=%d whence=%d start=%ld len=%ld pid=%s",
           x.l_type, x.l_whence, (long)x.l_start, (long)x.l_len, x.l_pid == getppid() ? "parent" : "other");
    x = lk(F_WRLCK, 10, 1);
    CHECKX("lock.child.getlk.w10", fcntl(b, F_GETLK, &x), "type=%d start=%ld len=%ld", x.l_type,
           (long)x.l_start, (long)x.l_len);
    x = lk(F_WRLCK, 35, 1);
    CHECKX("lock.child.getlk.merged", fcntl(b, F_GETLK, &x), "type=%d start=%ld len=%ld", x.l_type,
           (long)x.l_start, (long)x.l_len);
    x = lk(F_WRLCK, 22, 10);
    CHECKX("lock.child.getlk.cut", fcntl(b, F_GETLK, &x), "type=%d start=%ld len=%ld", x.l_type,
           (long)x.l_start, (long)x.l_len);
    x = lk(F_RDLCK, 12, 2);
    CHECK("lock.child.r12.shared", fcntl(b, F_SETLK, &x));
    x = lk(F_WRLCK, 40, 0);
    CHECK("lock.child.w40-eof", fcntl(b, F_SETLK, &x));
    x = lk(F_RDLCK, 36, 0);
    CHECK("lock.child.r36.conflict", fcntl(b, F_SETLK, &x));
    CHECK("lock.child.ready", write(ready[1], "r", 1));
    /* Waits until the parent closes some descriptor of the file. */
    x = lk(F_WRLCK, 0, 1);
    CHECK("lock.child.setlkw", fcntl(b, F_SETLKW, &x));
    x = lk(F_WRLCK, 0, 0);
    CHECK("lock.child.all", fcntl(b, F_SETLK, &x));
    _exit(0);
  }
  char r;
  CHECK("lock.parent.ready", read(ready[0], &r, 1));
  usleep(50000);
  /* Closing another descriptor of the file drops all the parent's locks on it. */
  int d = open("lk", O_RDONLY);
  close(d);
  child_status("lock.child.status", c);
  /* The child's locks went with it. */
  l = lk(F_WRLCK, 0, 0);
  CHECK("lock.after.child", fcntl(a, F_SETLK, &l));
  l = lk(F_UNLCK, 0, 0);
  CHECK("lock.unlock.all", fcntl(a, F_SETLK, &l));

  /* Two processes each waiting for the other's lock: the second wait to come fails with
   * EDEADLK (which one depends on timing: the check is that exactly one does), the
   * other is granted once the first gives its lock up. */
  l = lk(F_WRLCK, 0, 1);
  CHECK("lock.deadlock.parent.set", fcntl(a, F_SETLK, &l));
  c = fork();
  if (c == 0) {
    alarm(10);
    int b = open("lk", O_RDWR);
    struct flock x = lk(F_WRLCK, 1, 1);
    fcntl(b, F_SETLK, &x);
    write(ready[1], "r", 1);
    x = lk(F_WRLCK, 0, 1);
    int r = fcntl(b, F_SETLKW, &x);
    _exit(r == 0 ? 0 : errno == EDEADLK ? 3 : 4);
  }
  read(ready[0], &r, 1);
  usleep(50000);
  l = lk(F_WRLCK, 1, 1);
  int pr = fcntl(a, F_SETLKW, &l), perr = errno;
  /* Whichever was refused, the parent gives byte 0 up: the child (granted or refused)
   * ends, and its byte 1 with it. */
  l = lk(F_UNLCK, 0, 1);
  fcntl(a, F_SETLK, &l);
  int st = 0;
  waitpid(c, &st, 0);
  int child = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  int refused = (pr == -1 && perr == EDEADLK) + (child == 3);
  int granted = (pr == 0) + (child == 0);
  FACT("lock.deadlock", "refused=%d granted=%d", refused, granted);
  l = lk(F_UNLCK, 0, 0);
  fcntl(a, F_SETLK, &l);

  /* Open-file-description locks: owned by the open, conflicting with other opens and
   * with POSIX locks, gone with the last descriptor of their open. */
  int o1 = open("lk", O_RDWR), o2 = open("lk", O_RDWR);
  l = lk(F_WRLCK, 100, 10);
  CHECK("lock.ofd.set", fcntl(o1, F_OFD_SETLK, &l));
  CHECK("lock.ofd.other", fcntl(o2, F_OFD_SETLK, &l));
  l = lk(F_RDLCK, 0, 0);
  CHECKX("lock.ofd.getlk", fcntl(o2, F_OFD_GETLK, &l), "type=%d start=%ld len=%ld pid=%d", l.l_type,
         (long)l.l_start, (long)l.l_len, l.l_pid);
  l = lk(F_WRLCK, 105, 1);
  CHECK("lock.ofd.vs.posix", fcntl(a, F_SETLK, &l));
  l = lk(F_RDLCK, 0, 1);
  l.l_pid = 1;
  CHECK("lock.ofd.pid", fcntl(o1, F_OFD_SETLK, &l));
  int o3 = dup(o1);
  close(o1);
  l = lk(F_WRLCK, 100, 10);
  CHECK("lock.ofd.dup.holds", fcntl(o2, F_OFD_SETLK, &l));
  close(o3);
  CHECK("lock.ofd.last.close", fcntl(o2, F_OFD_SETLK, &l));
  close(o2);
  close(a);
  close(ready[0]);
  close(ready[1]);
}

/* flock(2): owned by the open file description, shared by its dups, conflicting
 * between opens (even in one process), converted by dropping first, waited for. */
static void flocks(void) {
  int f1 = open("fl", O_RDWR | O_CREAT | O_TRUNC, 0644), f2 = open("fl", O_RDONLY);
  CHECK("flock.ex", flock(f1, LOCK_EX | LOCK_NB));
  CHECK("flock.other.sh", flock(f2, LOCK_SH | LOCK_NB));
  int f3 = dup(f1);
  CHECK("flock.dup.same", flock(f3, LOCK_EX | LOCK_NB));
  CHECK("flock.badop", flock(f1, 3));
  CHECK("flock.badop.nb", flock(f1, LOCK_NB));
  CHECK("flock.badfd", flock(999, LOCK_SH));
  int p = open("fl", O_PATH);
  CHECK("flock.opath", flock(p, LOCK_SH | LOCK_NB));
  close(p);
  close(f1);
  CHECK("flock.dup.holds", flock(f2, LOCK_SH | LOCK_NB));
  close(f3);
  CHECK("flock.last.close", flock(f2, LOCK_SH | LOCK_NB));
  int f4 = open("fl", O_RDONLY);
  CHECK("flock.sh.sh", flock(f4, LOCK_SH | LOCK_NB));
  CHECK("flock.convert.blocked", flock(f4, LOCK_EX | LOCK_NB));
  /* The failed conversion dropped f4's shared lock. */
  CHECK("flock.convert.dropped", flock(f2, LOCK_EX | LOCK_NB));
  /* flock and POSIX locks do not meet. */
  int f5 = open("fl", O_RDWR);
  struct flock l = lk(F_WRLCK, 0, 0);
  CHECK("flock.vs.posix", fcntl(f5, F_SETLK, &l));
  close(f5);
  int ready[2];
  if (pipe(ready) != 0)
    return;
  pid_t c = fork();
  if (c == 0) {
    alarm(10);
    int g = open("fl", O_RDONLY);
    CHECK("flock.child.nb", flock(g, LOCK_SH | LOCK_NB));
    CHECK("flock.child.ready", write(ready[1], "r", 1));
    CHECK("flock.child.wait", flock(g, LOCK_SH));
    _exit(0);
  }
  char r;
  CHECK("flock.parent.ready", read(ready[0], &r, 1));
  usleep(50000);
  CHECK("flock.unlock", flock(f2, LOCK_UN));
  child_status("flock.child.status", c);
  close(f2);
  close(f4);
  close(ready[0]);
  close(ready[1]);
}

static void dups(void) {
  int fd = open("f", O_RDWR);
  CHECK("dup2.same", dup2(fd, fd));
  CHECK("dup3.same", dup3(fd, fd, 0));
  CHECK("dup3.badflags", dup3(fd, 20, 1));
  CHECK("dup2.badold", dup2(999, 20));
  CHECK("dup2.badnew", dup2(fd, -1));
  CHECK("dup2.huge", dup2(fd, 1 << 20));
  CHECK("dup3.cloexec", dup3(fd, 20, O_CLOEXEC));
  CHECK("dup3.cloexec.flag", fcntl(20, F_GETFD));
  CHECK("close.twice", close(20) + close(20));
  CHECK("close.neg", close(-1));
  CHECK("close_range.bad", SYS(SYS_close_range, 10, 5, 0));
  CHECK("close_range.flags", SYS(SYS_close_range, 100, 200, 0x80));
  CHECK("close_range.ok", SYS(SYS_close_range, 100, ~0U, 0));
  close(fd);
}

static void seeks(void) {
  int fd = open("s", O_RDWR | O_CREAT | O_TRUNC, 0644);
  CHECK("write.s", write(fd, "hello world", 11));
  CHECK("lseek.end", lseek(fd, 0, SEEK_END));
  CHECK("lseek.neg", lseek(fd, -100, SEEK_CUR));
  CHECK("lseek.badwhence", lseek(fd, 0, 7));
  CHECK("lseek.data", lseek(fd, 3, SEEK_DATA));
  CHECK("lseek.hole", lseek(fd, 3, SEEK_HOLE));
  CHECK("lseek.data.past", lseek(fd, 11, SEEK_DATA));
  CHECK("lseek.beyond", lseek(fd, 100, SEEK_SET));
  CHECK("write.beyond", write(fd, "x", 1));
  struct stat st;
  CHECKX("fstat.size", fstat(fd, &st), "size=%ld", (long)st.st_size);
  char b[16] = {0};
  CHECKX("pread.hole", pread(fd, b, 4, 50), "%02x%02x", b[0], b[1]);
  CHECK("pread.neg", pread(fd, b, 4, -1));
  CHECK("pwrite.neg", pwrite(fd, b, 4, -1));
  CHECK("ftruncate.neg", ftruncate(fd, -1));
  CHECK("ftruncate.5", ftruncate(fd, 5));
  CHECK("read.after.trunc", pread(fd, b, 16, 0));
  int ro = open("s", O_RDONLY);
  CHECK("write.ro", write(ro, "x", 1));
  CHECK("ftruncate.ro", ftruncate(ro, 0));
  /* Not writable (or not a regular file) is EINVAL before any size limit is looked at. */
  CHECK("ftruncate.ro.huge", ftruncate(ro, 1L << 40));
  int pp[2];
  pipe(pp);
  CHECK("ftruncate.pipe.huge", ftruncate(pp[1], 1L << 40));
  close(pp[0]);
  close(pp[1]);
  int pa = open("s", O_PATH);
  CHECK("read.opath", read(pa, b, 1));
  CHECK("fstat.opath", fstat(pa, &st));
  CHECK("lseek.opath", lseek(pa, 0, SEEK_SET));
  int d = open(".", O_RDONLY);
  CHECK("read.dir", read(d, b, 1));
  CHECK("write.dir.open", open(".", O_WRONLY));
  CHECK("lseek.dir", lseek(d, 0, SEEK_SET));
  struct iovec iov[2] = {{b, 2}, {b + 2, 2}};
  CHECK("readv", preadv(fd, iov, 2, 0));
  CHECK("readv.1025", SYS(SYS_readv, fd, iov, 1025));
  CHECK("readv.neg", SYS(SYS_readv, fd, iov, -1));
  CHECK("readv.0", readv(fd, iov, 0));
  struct iovec big[2] = {{b, 1L << 62}, {b, 1L << 62}};
  CHECK("readv.overflow", readv(fd, big, 2));
  CHECK("read.efault", read(fd, (void *)8, 4));
  CHECK("read.efault.len0", read(fd, (void *)8, 0));
  CHECK("write.efault", write(fd, (void *)8, 4));
  close(pa);
  close(ro);
  close(d);
  close(fd);
}

static void readiness(void) {
  int p[2];
  pipe(p);
  struct pollfd f[3] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {999, POLLIN, 0}};
  CHECKX("poll", poll(f, 3, 0), "%x %x %x", f[0].revents, f[1].revents, f[2].revents);
  CHECK("poll.efault", poll((void *)8, 1, 0));
  CHECK("poll.toomany", poll(f, 1 << 24, 0));
  close(p[1]);
  CHECKX("poll.hup", poll(f, 1, 0), "%x", f[0].revents);
  pipe(p);
  close(p[0]);
  f[0].fd = p[1];
  f[0].events = POLLOUT;
  CHECKX("poll.err", poll(f, 1, 0), "%x", f[0].revents);
  close(p[1]);
  struct timeval tv = {0, 0};
  CHECK("select.none", select(0, NULL, NULL, NULL, &tv));
  CHECK("select.2000", select(2000, NULL, NULL, NULL, &tv));
  CHECK("select.neg", select(-1, NULL, NULL, NULL, &tv));
  tv.tv_usec = 2000000;
  CHECK("select.badtv", select(0, NULL, NULL, NULL, &tv));
  fd_set r;
  FD_ZERO(&r);
  FD_SET(900, &r);
  tv.tv_usec = 0;
  CHECK("select.badfd", select(901, &r, NULL, NULL, &tv));
  int ep = epoll_create1(0);
  CHECK("epoll_create.0", epoll_create(0));
  CHECK("epoll_create1.bad", epoll_create1(1));
  int fd = open("f", O_RDWR);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 7};
  CHECK("epoll_ctl.file", epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev));
  pipe(p);
  CHECK("epoll_ctl.add", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
  CHECK("epoll_ctl.add.again", epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev));
  CHECK("epoll_ctl.mod.absent", epoll_ctl(ep, EPOLL_CTL_MOD, p[1], &ev));
  CHECK("epoll_ctl.self", epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev));
  CHECK("epoll_ctl.badop", epoll_ctl(ep, 9, p[0], &ev));
  CHECK("epoll_ctl.notepoll", epoll_ctl(fd, EPOLL_CTL_ADD, p[0], &ev));
  CHECK("epoll_wait.0max", epoll_wait(ep, &ev, 0, 0));
  CHECK("epoll_wait.none", epoll_wait(ep, &ev, 1, 0));
  write(p[1], "x", 1);
  CHECKX("epoll_wait.one", epoll_wait(ep, &ev, 1, 0), "ev=%x data=%lu", ev.events, (unsigned long)ev.data.u64);
  CHECK("epoll_ctl.del", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
  CHECK("epoll_ctl.del.again", epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL));
  /* Edge-triggered: a file is reported again only after something happened to it. */
  int q[2], et = epoll_create1(0), sp[2];
  pipe(q);
  ev.events = EPOLLIN | EPOLLET;
  CHECK("epoll_et.add", epoll_ctl(et, EPOLL_CTL_ADD, q[0], &ev));
  CHECK("epoll_et.empty", epoll_wait(et, &ev, 1, 0));
  write(q[1], "ab", 2);
  CHECKX("epoll_et.first", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.again", epoll_wait(et, &ev, 1, 0));
  char c2;
  read(q[0], &c2, 1);
  CHECK("epoll_et.after_read", epoll_wait(et, &ev, 1, 0));
  write(q[1], "c", 1);
  CHECKX("epoll_et.more", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.more.again", epoll_wait(et, &ev, 1, 0));
  ev.events = EPOLLIN | EPOLLET;
  CHECK("epoll_et.mod", epoll_ctl(et, EPOLL_CTL_MOD, q[0], &ev));
  CHECKX("epoll_et.rearmed", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.del", epoll_ctl(et, EPOLL_CTL_DEL, q[0], NULL));
  ev.events = EPOLLOUT | EPOLLET;
  CHECK("epoll_et.out.add", epoll_ctl(et, EPOLL_CTL_ADD, q[1], &ev));
  CHECKX("epoll_et.out.first", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.out.again", epoll_wait(et, &ev, 1, 0));
  CHECK("epoll_et.out.del", epoll_ctl(et, EPOLL_CTL_DEL, q[1], NULL));
  socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
  ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
  epoll_ctl(et, EPOLL_CTL_ADD, sp[0], &ev);
  CHECKX("epoll_et.sock.first", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.sock.again", epoll_wait(et, &ev, 1, 0));
  write(sp[1], "z", 1);
  CHECKX("epoll_et.sock.data", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  CHECK("epoll_et.sock.data.again", epoll_wait(et, &ev, 1, 0));
  close(sp[1]);
  CHECKX("epoll_et.sock.hup", epoll_wait(et, &ev, 1, 0), "ev=%x", ev.events);
  close(sp[0]);
  close(q[0]);
  close(q[1]);
  close(et);
  /* A socket pair's end is writable whatever its peer did (unix_poll). */
  socketpair(AF_UNIX, SOCK_STREAM, 0, sp);
  shutdown(sp[0], SHUT_WR);
  struct pollfd pp = {sp[0], POLLIN | POLLOUT, 0};
  CHECKX("poll.sockpair.shut_wr", poll(&pp, 1, 0), "revents=%#x", pp.revents);
  close(sp[1]);
  CHECKX("poll.sockpair.peer_closed", poll(&pp, 1, 0), "revents=%#x", pp.revents);
  close(sp[0]);
  int e = eventfd(3, EFD_NONBLOCK);
  uint64_t v = 0;
  CHECK("eventfd.read.short", read(e, &v, 4));
  CHECKX("eventfd.read", read(e, &v, 8), "v=%lu", (unsigned long)v);
  CHECK("eventfd.read.empty", read(e, &v, 8));
  v = ~0ULL;
  CHECK("eventfd.write.max", write(e, &v, 8));
  v = ~0ULL - 1;
  CHECK("eventfd.write.big", write(e, &v, 8));
  CHECK("eventfd.write.overflow", write(e, &v, 8));
  CHECK("eventfd.badflags", eventfd(0, 0x12345));
  int s = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
  CHECKX("eventfd.sem", read(s, &v, 8), "v=%lu", (unsigned long)v);
  close(s);
  close(e);
  close(p[0]);
  close(p[1]);
  close(fd);
  close(ep);
}

static void copies(void) {
  int a = open("ca", O_RDWR | O_CREAT | O_TRUNC, 0644);
  write(a, "0123456789abcdef", 16);
  int b = open("cb", O_RDWR | O_CREAT | O_TRUNC, 0644);
  loff_t oi = 2, oo = 0;
  CHECKX("copy_file_range", copy_file_range(a, &oi, b, &oo, 8, 0), "in=%ld out=%ld", (long)oi, (long)oo);
  char buf[32] = {0};
  CHECKX("copy_file_range.data", pread(b, buf, 32, 0), "%s", buf);
  CHECK("copy_file_range.flags", copy_file_range(a, NULL, b, NULL, 4, 1));
  lseek(a, 10, SEEK_SET);
  CHECKX("copy_file_range.pos", copy_file_range(a, NULL, b, NULL, 100, 0), "posin=%ld posout=%ld", (long)lseek(a, 0, SEEK_CUR), (long)lseek(b, 0, SEEK_CUR));
  oi = 16;
  CHECK("copy_file_range.eof", copy_file_range(a, &oi, b, NULL, 4, 0));
  oi = 0;
  oo = 4;
  CHECK("copy_file_range.overlap", copy_file_range(a, &oi, a, &oo, 8, 0));
  int p[2];
  pipe(p);
  CHECK("copy_file_range.pipe", copy_file_range(a, NULL, p[1], NULL, 4, 0));
  int ro = open("ca", O_RDONLY);
  CHECK("copy_file_range.ro.out", copy_file_range(a, NULL, ro, NULL, 4, 0));
  int ap = open("cb", O_WRONLY | O_APPEND);
  CHECK("copy_file_range.append", copy_file_range(a, NULL, ap, NULL, 4, 0));
  int d = open(".", O_RDONLY);
  CHECK("copy_file_range.dir", copy_file_range(d, NULL, b, NULL, 4, 0));
  oi = -1;
  CHECK("copy_file_range.negoff", copy_file_range(a, &oi, b, NULL, 4, 0));
  off_t so = 0;
  CHECKX("sendfile.file", sendfile(p[1], a, &so, 5), "off=%ld", (long)so);
  CHECK("sendfile.badoff", sendfile(p[1], a, (off_t *)8, 5));
  CHECK("splice.nopipe", splice(a, NULL, b, NULL, 4, 0));
  CHECK("splice.pipe.to.file", splice(p[0], NULL, b, NULL, 5, 0));
  /* splice into a file at an offset: written there, the offset advanced, the file's
   * position left alone; a pipe has no offset (ESPIPE). */
  write(p[1], "SPLICED", 7);
  loff_t at = 3;
  off_t before = lseek(b, 0, SEEK_CUR);
  CHECKX("splice.pipe.to.file.offset", splice(p[0], NULL, b, &at, 7, 0), "at=%ld pos_kept=%d",
         (long)at, lseek(b, 0, SEEK_CUR) == before);
  char got[8] = {0};
  CHECKX("splice.pipe.to.file.offset.read", pread(b, got, 7, 3), "data=%s", got);
  loff_t zero = 0;
  CHECK("splice.pipe.offset.espipe", splice(a, NULL, p[1], &zero, 4, 0));
  CHECK("splice.pipe.in.offset.espipe", splice(p[0], &zero, b, NULL, 4, 0));
  /* A pipe's bytes leave it only for where they went: into a full pipe, splice waits
     (here: EAGAIN, the output non-blocking) and sendfile too, and both leave the input
     as it was; sendfile from a pipe into a pipe with room is EINVAL (no splice_read). */
  int in[2], out[2];
  pipe(in);
  pipe2(out, O_NONBLOCK);
  write(in[1], "0123456789", 10);
  CHECK("sendfile.pipe.room.einval", sendfile(out[1], in[0], NULL, 4));
  long filled = 0, k;
  static char page[4096];
  while ((k = write(out[1], page, sizeof page)) > 0)
    filled += k;
  CHECKX("splice.pipe.full.eagain", splice(in[0], NULL, out[1], NULL, 4, 0), "filled=%ld", filled);
  CHECK("sendfile.pipe.full.eagain", sendfile(out[1], in[0], NULL, 4));
  int fl = fcntl(in[0], F_GETFL);
  fcntl(in[0], F_SETFL, fl | O_NONBLOCK);
  char kept[16] = {0};
  CHECKX("splice.pipe.full.input.kept", read(in[0], kept, sizeof kept), "%.10s", kept);
  /* Through a partly drained pipe: what did not fit stays in the input, in order. */
  write(in[1], "abcdefghij", 10);
  while (read(out[0], page, sizeof page) > 0) {
  }
  write(out[1], page, sizeof page - 4); /* 4 bytes of room in its last page */
  long moved = 0;
  CHECKX("splice.pipe.to.pipe", moved = splice(in[0], NULL, out[1], NULL, 10, 0), "");
  memset(kept, 0, sizeof kept);
  CHECKX("splice.pipe.to.pipe.rest", read(in[0], kept, sizeof kept), "%s moved_and_rest=%d", kept,
         moved > 0 && (long)strlen(kept) == 10 - moved);
  close(in[0]);
  close(in[1]);
  close(out[0]);
  close(out[1]);
  close(d);
  close(ap);
  close(ro);
  close(p[0]);
  close(p[1]);
  close(a);
  close(b);
}

/* Random calls over a fixed pool of descriptors (never 0, 1, 2: stdout is the report). */
static int POOL[12];
static void pool(void) {
  int p[2], s[2];
  POOL[0] = open("r1", O_RDWR | O_CREAT | O_TRUNC, 0644);
  write(POOL[0], "random file contents", 20);
  POOL[1] = open("r1", O_RDONLY);
  POOL[2] = open(".", O_RDONLY | O_DIRECTORY);
  pipe2(p, O_NONBLOCK);
  POOL[3] = p[0];
  POOL[4] = p[1];
  POOL[5] = eventfd(1, EFD_NONBLOCK);
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, s);
  POOL[6] = s[0];
  POOL[7] = s[1];
  POOL[8] = open("/dev/null", O_RDWR);
  POOL[9] = -1;
  POOL[10] = 999;
  POOL[11] = open("r1", O_PATH);
}
static long rnd_fd(void) { long i = (long)rnd_below(12); desc("fd%ld", i); return POOL[i]; }

static void one(int i) {
  char extra[32] = "";
  long fd = rnd_fd(), r;
  const char *what;
  errno = 0;
  switch (rnd_below(14)) {
  case 0: what = "read"; r = read(fd, (void *)rnd_ptr(), rnd_len() & 0xffff); break;
  case 1: what = "write"; r = write(fd, (void *)rnd_ptr(), rnd_len() & 0xffff); break;
  case 2: what = "pread"; r = pread(fd, (void *)rnd_ptr(), rnd_len() & 0xffff, PICK(0, 5, 100, -1)); break;
  case 3: what = "pwrite"; r = pwrite(fd, (void *)rnd_ptr(), rnd_len() & 0xff, PICK(0, 5, 100, -1)); break;
  case 4: what = "lseek"; r = lseek(fd, PICK(0, 1, -1, 100, 1L << 62), (int)rnd_num(6)); break;
  case 5: {
    long cmd = PICK(F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD, F_GETPIPE_SZ, F_SETPIPE_SZ, F_NOTIFY, F_GETLK, F_SETLK, 9999);
    long arg = (cmd == F_GETLK || cmd == F_SETLK) ? rnd_ptr() : PICK(0, 1, 64, 4096, O_NONBLOCK | O_APPEND, -1);
    if (cmd == F_SETFL)
      arg |= O_NONBLOCK; /* a blocking descriptor would hang the probe */
    what = "fcntl";
    r = fcntl(fd, cmd, arg);
    if (r >= 0 && cmd == F_DUPFD)
      close(r);
    break;
  }
  case 6: what = "ioctl"; r = ioctl(fd, PICK(FIONREAD, FIOCLEX, FIONCLEX, TCGETS, 0x1234), rnd_ptr()); break;
  case 7: {
    struct pollfd f[2] = {{(int)fd, (short)rnd_flags(0x3f), 0}, {(int)rnd_fd(), POLLIN | POLLOUT, 0}};
    what = "poll";
    r = poll(f, 2, 0);
    if (r >= 0)
      snprintf(extra, sizeof extra, "revents=%x", f[0].revents);
    break;
  }
  case 8: {
    struct iovec v[2] = {{(void *)rnd_ptr(), (size_t)rnd_len() & 0xfff}, {(void *)rnd_ptr(), (size_t)rnd_len() & 0xfff}};
    what = rnd_below(2) ? "readv" : "writev";
    r = what[0] == 'r' ? readv(fd, v, (int)PICK(0, 1, 2, 1025)) : writev(fd, v, (int)PICK(0, 1, 2, 1025));
    break;
  }
  case 9: what = "ftruncate"; r = ftruncate(fd, PICK(0, 20, -1, 1L << 40)); break;
  case 10: what = "fstat"; { struct stat st; r = fstat(fd, (void *)(rnd_below(3) ? (long)&st : rnd_ptr())); } break;
  case 11: what = "dup3"; r = dup3(fd, (int)PICK(30, 31, 999999), (int)PICK(0, O_CLOEXEC, 1)); if (r >= 0) close(r); break;
  case 12: what = "fsync"; r = fsync(fd); break;
  default: what = "fadvise"; r = posix_fadvise(fd, 0, 0, (int)rnd_num(8)); if (r > 0) { errno = (int)r; r = -1; } break;
  }
  report_random(i, what, r, errno, extra);
}

/* The path of descriptor `fd` under `dir` ("/dev/fd" or "/proc/self/fd"). */
static const char *fdpath(const char *dir, int fd) {
  static char path[64];
  snprintf(path, sizeof path, "%s/%d", dir, fd);
  return path;
}

/* /dev/fd, /dev/stdin...: links into /proc/self/fd, whose links are magic: opening
 * one opens the file itself anew (a new open file description: its own offset and
 * flags), a pipe by its inode whatever end the descriptor is, a socket never. */
static void devfd(void) {
  char link[64] = "", buf[16] = "";
  CHECKX("devfd.readlink", readlink("/dev/fd", link, sizeof link - 1), "%s", link);
  memset(link, 0, sizeof link);
  CHECKX("devfd.stdin.readlink", readlink("/dev/stdin", link, sizeof link - 1), "%s", link);
  memset(link, 0, sizeof link);
  CHECKX("devfd.stderr.readlink", readlink("/dev/stderr", link, sizeof link - 1), "%s", link);
  struct stat st;
  CHECKX("devfd.stat", stat("/dev/fd/", &st), "dir=%d", S_ISDIR(st.st_mode));

  int p[2];
  if (pipe(p) != 0)
    return;
  write(p[1], "hi", 2);
  int r = open(fdpath("/dev/fd", p[0]), O_RDONLY | O_NONBLOCK);
  CHECKX("devfd.pipe.open.read", r < 0 ? -1 : 0, "");
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.pipe.read", read(r, buf, sizeof buf - 1), "%s", buf);
  CHECKX("devfd.pipe.own.flags", 0, "new=%d old=%d", !!(fcntl(r, F_GETFL) & O_NONBLOCK),
         !!(fcntl(p[0], F_GETFL) & O_NONBLOCK));
  /* The write end opened to read reads the pipe; the read end opened to write writes it. */
  int wr = open(fdpath("/proc/self/fd", p[1]), O_RDONLY);
  CHECKX("devfd.pipe.writeend.rdonly", wr < 0 ? -1 : 0, "");
  int rw = open(fdpath("/proc/self/fd", p[0]), O_WRONLY);
  CHECKX("devfd.pipe.readend.wronly", rw < 0 ? -1 : 0, "");
  CHECK("devfd.pipe.write.through", write(rw, "ab", 2));
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.pipe.read.through", read(wr, buf, sizeof buf - 1), "%s", buf);
  /* As bash's `> /dev/fd/N` opens it: O_CREAT and O_TRUNC on a pipe. */
  int cw = open(fdpath("/dev/fd", p[1]), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECKX("devfd.pipe.creat", cw < 0 ? -1 : 0, "");
  CHECK("devfd.pipe.creat.write", write(cw, "cd", 2));
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.pipe.creat.read", read(p[0], buf, sizeof buf - 1), "%s", buf);
  CHECK("devfd.pipe.excl", open(fdpath("/dev/fd", p[1]), O_WRONLY | O_CREAT | O_EXCL, 0644));
  struct stat a, b;
  fstat(p[0], &a);
  CHECKX("devfd.pipe.stat", stat(fdpath("/dev/fd", p[1]), &b), "fifo=%d same=%d",
         S_ISFIFO(b.st_mode), a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  int pathfd = open(fdpath("/dev/fd", p[0]), O_PATH);
  CHECKX("devfd.pipe.opath.fstat", fstat(pathfd, &b), "fifo=%d same=%d", S_ISFIFO(b.st_mode),
         a.st_ino == b.st_ino);
  close(pathfd);
  /* The end of file once every write end is closed, the reopened ones too. */
  close(p[1]);
  close(cw);
  CHECK("devfd.pipe.writer.left", read(r, buf, 1));
  close(rw);
  CHECK("devfd.pipe.eof", read(r, buf, 1));
  close(wr);
  close(r);
  close(p[0]);
  CHECK("devfd.closed", open(fdpath("/dev/fd", p[0]), O_RDONLY));

  /* A regular file: its own offset; still the file once renamed or unlinked. */
  int f = open("devfd.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
  write(f, "0123456789", 10);
  int g = open(fdpath("/proc/self/fd", f), O_RDONLY);
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.file.offset", read(g, buf, 3), "%s", buf);
  close(g);
  rename("devfd.txt", "devfd2.txt");
  g = open(fdpath("/dev/fd", f), O_RDONLY);
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.file.renamed", read(g, buf, 3), "%s", buf);
  close(g);
  unlink("devfd2.txt");
  g = open(fdpath("/dev/fd", f), O_RDONLY);
  memset(buf, 0, sizeof buf);
  CHECKX("devfd.file.unlinked", read(g, buf, 3), "%s", buf);
  close(g);
  close(f);
  /* A directory: a path may go on through it. */
  mkdir("devfd.d", 0755);
  close(open("devfd.d/x", O_CREAT | O_WRONLY, 0644));
  int d = open("devfd.d", O_PATH | O_DIRECTORY);
  char sub[80];
  snprintf(sub, sizeof sub, "%s/x", fdpath("/dev/fd", d));
  g = open(sub, O_RDONLY);
  CHECKX("devfd.dir.through", g < 0 ? -1 : 0, "");
  close(g);
  close(d);
  unlink("devfd.d/x");
  rmdir("devfd.d");

  /* Sockets and anonymous inodes are not opened again (an anonymous inode is root's,
   * mode 0600: EACCES first for others). */
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
    CHECK("devfd.socket", open(fdpath("/proc/self/fd", sv[0]), O_RDWR));
    close(sv[0]);
    close(sv[1]);
  }
  int e = eventfd(0, 0);
  CHECK("devfd.eventfd", open(fdpath("/dev/fd", e), O_RDWR));
  close(e);
}

int main(int argc, char **argv) {
  FAMILY = "io";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    /* Random calls may write past a sandbox's file-size limit (SIGXFSZ) or make a
       descriptor O_ASYNC (SIGIO): both would end the run instead of answering. */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGIO, SIG_IGN);
    areas();
    pool();
    random_calls(argc, argv, one);
    return 0;
  }
  pipes();
  fcntls();
  record_locks();
  flocks();
  dups();
  seeks();
  readiness();
  copies();
  devfd();
  return 0;
}
