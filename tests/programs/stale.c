/* Old translations: after every change to a page's mapping, the next access must see
 * the new one. Each check first reads (or runs) the page, so that the CPU and the
 * VMM's shadow page tables hold a translation of it, then changes the mapping and
 * tries the access again: a right taken away (mprotect, munmap, a mapping replaced, a
 * fork's copy-on-write, mremap) must fault or show the new contents; a right given
 * (mprotect widening a page on the same frame) must work at once. Repeated, so that
 * translations of many ages are tried. Prints "ok NAME" or "BAD NAME ..." and finally
 * "done N checks, M bad". Run in both backends: the container's answers are the host
 * kernel's. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static sigjmp_buf env;
static volatile sig_atomic_t armed;
static int checks, bad;

static void on_segv(int sig) {
  (void)sig;
  if (armed)
    siglongjmp(env, 1);
  _exit(99);
}

static void check(const char *name, int good, long detail) {
  checks++;
  if (good) {
    printf("ok %s\n", name);
  } else {
    bad++;
    printf("BAD %s (%ld)\n", name, detail);
  }
}

/* 1 when the statement faults (SIGSEGV or SIGBUS), else 0. */
#define FAULTS(stmt)                                                           \
  ({                                                                           \
    int faulted_ = 1;                                                          \
    armed = 1;                                                                 \
    if (!sigsetjmp(env, 1)) {                                                  \
      stmt;                                                                    \
      faulted_ = 0;                                                            \
    }                                                                          \
    armed = 0;                                                                 \
    faulted_;                                                                  \
  })

static int read_faults(volatile char *p, char *out) { return FAULTS(*out = *p); }
static int write_faults(volatile char *p, char v) { return FAULTS(*p = v); }
/* Runs the code at p (a function returning 42). */
static int call_faults(void *p, int *out) { return FAULTS(*out = ((int (*)(void))p)()); }

/* mov $42, %eax; ret */
static const unsigned char RET42[] = {0xb8, 42, 0, 0, 0, 0xc3};

static char *anon(long pages, int prot) {
  char *p = mmap(NULL, pages * 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    perror("mmap");
    exit(2);
  }
  return p;
}

static void round_of_checks(const char *self, int round) {
  char c = 0;
  int v = 0;
  int verbose = round == 0;
  char name[64];
#define CHECK(n, cond, detail)                                                 \
  do {                                                                         \
    if (verbose || !(cond)) {                                                  \
      snprintf(name, sizeof name, "%s.%d", n, round);                          \
      check(name, cond, detail);                                               \
    } else {                                                                   \
      checks++;                                                                \
    }                                                                          \
  } while (0)

  /* A right taken away: the old writable translation must not survive. */
  char *p = anon(2, PROT_READ | PROT_WRITE);
  p[0] = 'a';
  p[4096] = 'a';
  mprotect(p, 2 * 4096, PROT_READ);
  CHECK("narrowed.write", write_faults(p, 'x') && write_faults(p + 4096, 'x'), 0);
  CHECK("narrowed.kept", p[0] == 'a' && p[4096] == 'a', p[0]);

  /* A right given on the same frame: works at once, and writes land there. */
  (void)read_faults(p, &c);
  mprotect(p, 2 * 4096, PROT_READ | PROT_WRITE);
  CHECK("widened.write", !write_faults(p, 'b') && !write_faults(p + 4096, 'b'), 0);
  CHECK("widened.seen", !read_faults(p, &c) && c == 'b' && p[4096] == 'b', c);

  /* Execute given, then taken. */
  memcpy(p, RET42, sizeof RET42);
  mprotect(p, 4096, PROT_READ);
  (void)read_faults(p, &c);
  mprotect(p, 4096, PROT_READ | PROT_EXEC);
  CHECK("widened.exec", !call_faults(p, &v) && v == 42, v);
  mprotect(p, 4096, PROT_READ | PROT_WRITE);
  CHECK("narrowed.exec", call_faults(p, &v), v);

  /* Unmapped: faults. */
  munmap(p, 2 * 4096);
  CHECK("unmapped.read", read_faults(p, &c) && read_faults(p + 4096, &c), c);

  /* A file's pages mapped again over themselves (as a loader maps a library over
   * its reservation) with more rights: same contents; then replaced by anonymous
   * memory: zeros, never the file's bytes. */
  int fd = open(self, O_RDONLY);
  if (fd < 0) {
    perror(self);
    exit(2);
  }
  char *f = mmap(NULL, 4 * 4096, PROT_READ, MAP_PRIVATE, fd, 0);
  if (f == MAP_FAILED) {
    perror("mmap file");
    exit(2);
  }
  char first[4];
  memcpy(first, f, 4);
  for (int i = 0; i < 4; i++)
    (void)read_faults(f + i * 4096, &c);
  char *g = mmap(f, 2 * 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_FIXED, fd, 0);
  CHECK("remapped.same", g == f && memcmp(g, first, 4) == 0 && memcmp(first, "\177ELF", 4) == 0, (long)(g - f));
  char *z = mmap(f, 4 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECK("replaced.zeros", z == f && f[0] == 0 && f[1] == 0 && f[4096] == 0 && f[3 * 4096] == 0, f[0]);
  munmap(f, 4 * 4096);
  g = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0);
  mprotect(g, 4096, PROT_NONE);
  CHECK("file.none", read_faults(g, &c), c);
  munmap(g, 4096);
  close(fd);

  /* A fork: neither side sees the other's writes after it. */
  p = anon(1, PROT_READ | PROT_WRITE);
  p[0] = 1;
  int to_child[2], to_parent[2];
  if (pipe(to_child) || pipe(to_parent)) {
    perror("pipe");
    exit(2);
  }
  pid_t pid = fork();
  if (pid == 0) {
    char go;
    if (read(to_child[0], &go, 1) != 1)
      _exit(3);
    char seen = p[0];
    p[0] = 7;
    if (write(to_parent[1], &seen, 1) != 1)
      _exit(3);
    _exit(0);
  }
  p[0] = 2;
  if (write(to_child[1], "g", 1) != 1)
    exit(2);
  char seen = 0;
  if (read(to_parent[0], &seen, 1) != 1)
    exit(2);
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK("fork.child", seen == 1, seen);
  CHECK("fork.parent", p[0] == 2 && WIFEXITED(st) && WEXITSTATUS(st) == 0, p[0]);
  close(to_child[0]);
  close(to_child[1]);
  close(to_parent[0]);
  close(to_parent[1]);
  munmap(p, 4096);

  /* Moved (grown where it cannot grow in place): the old place faults, the new one
   * has the data. */
  p = anon(4, PROT_READ | PROT_WRITE);
  p[0] = 'm';
  p[4096] = 'n';
  mprotect(p + 2 * 4096, 2 * 4096, PROT_NONE);
  char *q = mremap(p, 2 * 4096, 8 * 4096, MREMAP_MAYMOVE);
  CHECK("moved.new", q != MAP_FAILED && q != p && q[0] == 'm' && q[4096] == 'n', (long)(q - p));
  CHECK("moved.old", read_faults(p, &c) && read_faults(p + 4096, &c), c);
  if (q != MAP_FAILED)
    munmap(q, 8 * 4096);
  munmap(p + 2 * 4096, 2 * 4096);
#undef CHECK
}

int main(int argc, char **argv) {
  (void)argc;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_segv;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  const char *self = argv[0];
  for (int round = 0; round < 40; round++)
    round_of_checks(self, round);
  printf("done %d checks, %d bad\n", checks, bad);
  return bad != 0;
}
