/*
 * The differential probes' shared library. A probe calls syscalls and prints one line
 * per check: "<family>.<label> <what> = <result>", where <result> is the return value,
 * or "-1 <ERRNO NAME>", optionally followed by " | <observed side effects>". The same
 * static binary runs natively, in the container and in the micro-VM; the harness
 * (tests/tests/differential.rs) compares the lines by label. Anything that legitimately
 * differs between hosts (pids, times, inode numbers) must be printed as a relation
 * ("pid>0", "same"), never as a raw value.
 *
 *   probe            the fixed checks of the family
 *   probe random S N N calls with random arguments from seed S (see rnd_*)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *FAMILY = "?";

static const char *errname(int e) {
  switch (e) {
#define E(x) case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF)
    E(ECHILD) E(EAGAIN) E(ENOMEM) E(EACCES) E(EFAULT) E(ENOTBLK) E(EBUSY) E(EEXIST)
    E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR) E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY)
    E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK) E(EPIPE) E(EDOM) E(ERANGE)
    E(EDEADLK) E(ENAMETOOLONG) E(ENOLCK) E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENOMSG)
    E(EIDRM) E(ENODATA) E(ETIME) E(EOVERFLOW) E(EBADFD) E(EILSEQ) E(ENOTSOCK)
    E(EDESTADDRREQ) E(EMSGSIZE) E(EPROTOTYPE) E(ENOPROTOOPT) E(EPROTONOSUPPORT)
    E(ESOCKTNOSUPPORT) E(EOPNOTSUPP) E(EPFNOSUPPORT) E(EAFNOSUPPORT) E(EADDRINUSE)
    E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNABORTED) E(ECONNRESET) E(ENOBUFS)
    E(EISCONN) E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY)
    E(EINPROGRESS) E(ESTALE) E(EDQUOT) E(ECANCELED) E(EOWNERDEAD) E(ENOTRECOVERABLE)
#undef E
  default: {
    static char buf[32];
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
  }
  }
}

/* One result line: label, what was called, its value (or -1 and errno), extra facts. */
static void report(const char *label, const char *what, long r, int err, const char *fmt, ...) {
  char extra[512] = "";
  if (fmt && *fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(extra, sizeof extra, fmt, ap);
    va_end(ap);
  }
  if (r == -1)
    printf("%s.%s %s = -1 %s%s%s\n", FAMILY, label, what, errname(err), *extra ? " | " : "", extra);
  else
    printf("%s.%s %s = %ld%s%s\n", FAMILY, label, what, r, *extra ? " | " : "", extra);
  fflush(stdout);
}

/* CHECK(label, expr): runs expr (a call returning -1 and errno on failure), prints it. */
#define CHECK(label, expr) do { errno = 0; long r_ = (long)(expr); report(label, #expr, r_, errno, NULL); } while (0)
/* CHECKX(label, expr, fmt, ...): the same with observed facts after " | ". */
#define CHECKX(label, expr, ...) do { errno = 0; long r_ = (long)(expr); int e_ = errno; report(label, #expr, r_, e_, __VA_ARGS__); } while (0)
/* CHECKV(label, expr): a call whose value differs between hosts: only ok/-1 errno. */
#define CHECKV(label, expr) do { errno = 0; long r_ = (long)(expr); int e_ = errno; report(label, #expr, r_ == -1 ? -1 : 0, e_, r_ == -1 ? NULL : "value varies"); } while (0)
/* FACT(label, fmt, ...): an observation that is not a call. */
#define FACT(label, ...) do { char b_[512]; snprintf(b_, sizeof b_, __VA_ARGS__); printf("%s.%s %s\n", FAMILY, label, b_); fflush(stdout); } while (0)

/* A raw syscall, as the probes call what libc may wrap or refuse to pass through. */
#define SYS(...) syscall(__VA_ARGS__)

/* A fresh scratch directory "pd" in the current directory, made the cwd. */
static void scratch(void) {
  char cmd[64];
  snprintf(cmd, sizeof cmd, "pd");
  mkdir(cmd, 0777);
  if (chdir(cmd) != 0) {
    perror("chdir pd");
    exit(2);
  }
}

/* Memory the random calls may point at: a read-write area, then an unmapped page, a
 * read-only page and a PROT_NONE page. */
static unsigned char *RW, *RO, *NONE, *HOLE;
#define RW_LEN 65536
static void areas(void) {
  unsigned char *m = mmap(NULL, RW_LEN + 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  RW = m;
  HOLE = m + RW_LEN;
  RO = HOLE + 4096;
  NONE = RO + 4096;
  munmap(HOLE, 4096);
  mprotect(RO, 4096, PROT_READ);
  mprotect(NONE, 4096, PROT_NONE);
}

/* The arguments the random helpers chose for the current call, for its report line. */
static char DESC[256];
static void desc(const char *fmt, ...) {
  size_t n = strlen(DESC);
  if (n + 2 >= sizeof DESC)
    return;
  if (n)
    DESC[n++] = ',';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(DESC + n, sizeof DESC - n, fmt, ap);
  va_end(ap);
}

/* xorshift64*: the same sequence everywhere for one seed. */
static uint64_t RNG = 88172645463325252ull;
static uint64_t rnd(void) {
  RNG ^= RNG >> 12;
  RNG ^= RNG << 25;
  RNG ^= RNG >> 27;
  return RNG * 2685821657736338717ull;
}
static uint64_t rnd_below(uint64_t n) { return n ? rnd() % n : 0; }
/* One of the values given (recorded in DESC). */
#define PICK(...) ({ const long v_[] = {__VA_ARGS__}; long p_ = v_[rnd_below(sizeof v_ / sizeof v_[0])]; desc("%ld", p_); p_; })
/* A pointer argument: NULL, into RW (at its start or near its end), the hole, the
 * read-only or PROT_NONE page, a kernel address. */
static long rnd_ptr(void) {
  switch (rnd_below(8)) {
  case 0: desc("NULL"); return 0;
  case 1: case 2: case 3: desc("rw"); return (long)RW;
  case 4: desc("rw_end-8"); return (long)(RW + RW_LEN - 8);
  case 5: desc("hole"); return (long)HOLE;
  case 6: desc("ro"); return (long)RO;
  default: desc("kernel"); return (long)0xffff800000000000ull;
  }
}
/* A pointer that is not to usable memory, for arguments whose contents matter (a
 * sleep's duration): NULL, the hole, the read-only page (zeros), a kernel address. */
static long rnd_badptr(void) {
  switch (rnd_below(4)) {
  case 0: desc("NULL"); return 0;
  case 1: desc("hole"); return (long)HOLE;
  case 2: desc("ro"); return (long)RO;
  default: desc("kernel"); return (long)0xffff800000000000ull;
  }
}
/* A length: small, odd, page-sized, huge, negative. */
static long rnd_len(void) { return PICK(0, 1, 7, 8, 16, 64, 4096, 4097, RW_LEN, 1L << 40, -1); }
/* Flags: a random subset of `known` bits, sometimes with an unknown bit. */
static long rnd_flags(long known) {
  long f = (long)(rnd() & (uint64_t)known);
  if (rnd_below(6) == 0)
    f |= 1L << rnd_below(32);
  desc("%#lx", f);
  return f;
}
/* A number from 0 to n-1 (recorded). */
static long rnd_num(long n) {
  long v = (long)rnd_below((uint64_t)n);
  desc("%ld", v);
  return v;
}

/* Reports random call `i`: `name(DESC)` under the label "random.I.NAME". */
static void report_random(int i, const char *name, long r, int err, const char *extra) {
  char label[64], what[320];
  snprintf(label, sizeof label, "random.%d.%s", i, name);
  snprintf(what, sizeof what, "%s(%s)", name, DESC);
  report(label, what, r, err, extra && *extra ? "%s" : NULL, extra);
  DESC[0] = 0;
}

/* Runs `n` random calls: the probe's `one(i)` makes call i (and prints it). */
static void random_calls(int argc, char **argv, void (*one)(int)) {
  if (argc < 4)
    return;
  RNG = strtoull(argv[2], NULL, 0) * 2654435761ull + 1;
  long n = strtol(argv[3], NULL, 0);
  for (long i = 0; i < n; i++) {
    DESC[0] = 0;
    /* A string read at rw_end-8 runs into the unmapped page (EFAULT) unless earlier
       calls left a NUL there; what they wrote (random bytes, times) differs between
       runs, so the tail is made the same before every call. */
    if (RW)
      memset(RW + RW_LEN - 16, 'x', 16);
    one((int)i);
  }
}
