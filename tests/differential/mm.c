/* Memory: mmap and its argument checks, munmap, mprotect, msync, madvise, mremap,
 * mincore, brk, shared mappings between processes, mlock. */
#include "probe.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Memory locks (VM_LOCKED) under a small RLIMIT_MEMLOCK of 16 pages: limits, holes,
 * what a lock refuses (MS_INVALIDATE, MADV_DONTNEED), splits, fork, mlockall. */
static void locks(long pg) {
  struct rlimit old, rl = {16 * 4096, 16 * 4096};
  getrlimit(RLIMIT_MEMLOCK, &old);
  CHECK("mlock.setlimit", setrlimit(RLIMIT_MEMLOCK, &rl));
  char *l = mmap(NULL, 8 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(l, 1, 8 * pg);
  CHECK("mlock.range", mlock(l + 2 * pg, 2 * pg));
  CHECK("mlock.msync.invalidate", msync(l, 8 * pg, MS_INVALIDATE));
  CHECK("mlock.msync.before", msync(l, 2 * pg, MS_INVALIDATE));
  CHECK("mlock.msync.sync", msync(l, 8 * pg, MS_SYNC));
  CHECK("mlock.dontneed", madvise(l + pg, 2 * pg, MADV_DONTNEED));
  FACT("mlock.dontneed.kept", "%d %d", l[pg], l[2 * pg]);
  CHECK("mlock.dontneed.locked", madvise(l + 2 * pg, pg, 24 /* MADV_DONTNEED_LOCKED */));
  FACT("mlock.dontneed.locked.zeroed", "%d", l[2 * pg]);
  CHECK("mlock.free", madvise(l + 3 * pg, pg, MADV_FREE));
  CHECK("mlock.cold", madvise(l + 3 * pg, pg, 20 /* MADV_COLD */));
  CHECK("mlock.willneed", madvise(l + 3 * pg, pg, MADV_WILLNEED));
  /* A split: the locked middle cannot grow in place, nor can its neighbour into it. */
  CHECK("mlock.mremap.grow", (long)mremap(l + 2 * pg, 2 * pg, 3 * pg, 0));
  CHECK("mlock.mremap.neighbour", (long)mremap(l, 2 * pg, 3 * pg, 0));
  /* The limit: 16 pages, 2 locked; relocking them counts once. */
  CHECK("mlock.limit", mlock(l, 8 * pg) == 0 && mlock(l, 8 * pg) == 0);
  char *big = mmap(NULL, 16 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("mlock.over", mlock(big, 9 * pg));
  CHECK("mlock.fits", mlock(big, 8 * pg));
  CHECK("mlock.full", mlock(big + 8 * pg, pg));
  CHECK("mlock.grow.over", (long)mremap(big, 8 * pg, 9 * pg, MREMAP_MAYMOVE));
  CHECK("munlock.big", munlock(big, 16 * pg));
  CHECK("mlock.grow.fits", mremap(big, 8 * pg, 9 * pg, 0) == big);
  CHECK("munlock.unaligned", munlock(l + 1, 1));
  CHECK("mlock.zero", mlock(l, 0));
  CHECK("mlock.overflow", mlock(l, (size_t)-1));
  CHECK("mlock2.badflags", SYS(SYS_mlock2, l, pg, 2));
  CHECK("mlock2.onfault", SYS(SYS_mlock2, l, pg, 1));
  CHECK("mlock2.onfault.invalidate", msync(l, pg, MS_INVALIDATE));
  /* A hole: what comes before it is locked, the call says ENOMEM. */
  char *h = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(h + pg, pg);
  CHECK("mlock.hole", mlock(h, 3 * pg));
  CHECK("mlock.hole.first", msync(h, pg, MS_INVALIDATE));
  CHECK("mlock.hole.last", msync(h + 2 * pg, pg, MS_INVALIDATE));
  CHECK("mlock.hole.start", mlock(h + pg, 2 * pg));
  CHECK("munlock.hole", munlock(h, 3 * pg));
  CHECK("munlock.hole.first", msync(h, pg, MS_INVALIDATE));
  /* No access: locked, but not populated (ENOMEM). */
  char *n = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("mlock.none", mlock(n, pg));
  CHECK("mlock.none.locked", msync(n, pg, MS_INVALIDATE));
  CHECK("munlock.none", munlock(n, pg));
  /* A child has nothing locked. */
  CHECK("mlock.again", mlock(l + 4 * pg, pg));
  pid_t c = fork();
  if (c == 0)
    _exit(msync(l + 4 * pg, pg, MS_INVALIDATE) == 0 ? 0 : errno);
  int st;
  waitpid(c, &st, 0);
  FACT("mlock.fork.child", "exited=%d %d", WIFEXITED(st), WEXITSTATUS(st));
  CHECK("mlock.fork.parent", msync(l + 4 * pg, pg, MS_INVALIDATE));
  /* mlockall: MCL_FUTURE locks new mappings; MCL_CURRENT over the limit is ENOMEM. */
  CHECK("munlockall", munlockall());
  CHECK("munlockall.unlocked", msync(l, 8 * pg, MS_INVALIDATE));
  CHECK("mlockall.current.over", mlockall(MCL_CURRENT));
  CHECK("mlockall.future", mlockall(MCL_FUTURE));
  char *fut = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("mlockall.future.mapped", fut != MAP_FAILED);
  CHECK("mlockall.future.locked", msync(fut, 2 * pg, MS_INVALIDATE));
  CHECK("mlockall.future.over", (long)mmap(NULL, 32 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK("munlockall.again", munlockall());
  CHECK("mmap.locked", msync(fut, 2 * pg, MS_INVALIDATE));
  char *ml = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0);
  CHECK("mmap.maplocked", ml != MAP_FAILED && msync(ml, 2 * pg, MS_INVALIDATE) == -1 && errno == EBUSY);
  CHECK("mmap.maplocked.over", (long)mmap(NULL, 32 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0));
  rl.rlim_cur = 0;
  CHECK("mlock.nolimit.set", setrlimit(RLIMIT_MEMLOCK, &rl));
  CHECK("mlock.nolimit", mlock(l, pg));
  CHECK("mlockall.nolimit", mlockall(MCL_FUTURE));
  CHECK("mmap.maplocked.nolimit", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_LOCKED, -1, 0));
  CHECK("munlock.nolimit", munlock(l, 8 * pg));
  munlockall();
  munmap(l, 8 * pg);
  munmap(big, 16 * pg);
  munmap(h, 3 * pg);
  munmap(n, pg);
  munmap(fut, 2 * pg);
  if (ml != MAP_FAILED)
    munmap(ml, 2 * pg);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_MEMLOCK, &rl);
}

static void maps(void) {
  long pg = 4096;
  CHECK("mmap.zero.len", (long)mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK("mmap.badprot", mmap(NULL, pg, 0x100, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) != MAP_FAILED);
  CHECK("mmap.noflags", (long)mmap(NULL, pg, PROT_READ, MAP_ANONYMOUS, -1, 0));
  CHECK("mmap.badoff", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 5));
  CHECK("mmap.badfd", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE, 999, 0));
  CHECK("mmap.huge", (long)mmap(NULL, 1L << 50, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK("mmap.fixed.unaligned", (long)mmap((void *)0x10000001, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
  int fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0600);
  write(fd, "hello", 5);
  int ro = open("f", O_RDONLY);
  CHECK("mmap.shared.write.rofd", (long)mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0));
  CHECK("mmap.private.write.rofd", mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, ro, 0) != MAP_FAILED);
  int wo = open("f", O_WRONLY);
  CHECK("mmap.wronly", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE, wo, 0));
  int d = open(".", O_RDONLY);
  CHECK("mmap.dir", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE, d, 0));
  int p[2];
  pipe(p);
  CHECK("mmap.pipe", (long)mmap(NULL, pg, PROT_READ, MAP_PRIVATE, p[0], 0));
  char *m = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("munmap.unaligned", munmap(m + 1, pg));
  CHECK("munmap.zero", munmap(m, 0));
  CHECK("munmap.middle", munmap(m + pg, pg));
  CHECK("munmap.again", munmap(m + pg, pg));
  CHECK("mprotect.unmapped", mprotect(m + pg, pg, PROT_READ));
  CHECK("mprotect.unaligned", mprotect(m + 1, pg, PROT_READ));
  CHECK("mprotect.badprot", mprotect(m, pg, 0x100));
  CHECK("mprotect.ok", mprotect(m, pg, PROT_READ));
  CHECK("mprotect.grows", mprotect(m, pg, PROT_READ | PROT_GROWSDOWN));
  CHECK("msync.ok", msync(m, pg, MS_SYNC));
  CHECK("msync.unaligned", msync(m + 1, pg, MS_SYNC));
  CHECK("msync.both", msync(m, pg, MS_SYNC | MS_ASYNC));
  CHECK("msync.badflags", msync(m, pg, 0x100));
  CHECK("msync.unmapped", msync(m + pg, pg, MS_SYNC));
  CHECK("msync.span.hole", msync(m, 3 * pg, MS_SYNC));
  CHECK("msync.zero", msync(m + pg, 0, MS_SYNC));
  CHECK("msync.invalidate", msync(m, pg, MS_INVALIDATE));
  CHECK("madvise.unaligned", madvise(m + 1, pg, MADV_DONTNEED));
  CHECK("madvise.bad", madvise(m, pg, 999));
  CHECK("madvise.unmapped", madvise(m + pg, pg, MADV_DONTNEED));
  CHECK("madvise.willneed", madvise(m, pg, MADV_WILLNEED));
  m[2 * pg] = 'x';
  CHECK("madvise.dontneed", madvise(m + 2 * pg, pg, MADV_DONTNEED));
  FACT("madvise.dontneed.zeroed", "%d", m[2 * pg]);
  unsigned char vec[8];
  CHECK("mincore.ok", mincore(m, pg, vec));
  CHECK("mincore.unaligned", mincore(m + 1, pg, vec));
  CHECK("mincore.unmapped", mincore(m + pg, pg, vec));
  CHECK("mincore.efault", mincore(m, pg, (void *)8));
  CHECK("mremap.badflags", (long)mremap(m, pg, pg, 0x100));
  CHECK("mremap.unaligned", (long)mremap(m + 1, pg, pg, 0));
  CHECK("mremap.zero.new", (long)mremap(m, pg, 0, MREMAP_MAYMOVE));
  CHECK("mremap.fixed.nomaymove", (long)mremap(m, pg, pg, MREMAP_FIXED, m + 8 * pg));
  char *moved = mremap(m + 2 * pg, 2 * pg, 64 * pg, MREMAP_MAYMOVE);
  CHECK("mremap.maymove", moved != MAP_FAILED);
  FACT("mremap.kept", "%d", moved != MAP_FAILED && moved[0] == 0);
  CHECK("mlock", mlock(m, pg));
  CHECK("munlock", munlock(m, pg));
  CHECK("mlockall.bad", mlockall(0));
  /* A file mapping: contents, its end, and bytes past it read as zero. */
  char *f = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
  FACT("mmap.file.contents", "%.5s tail=%d", f, f[100]);
  char *ff = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  CHECK("mmap.shared.file", ff != MAP_FAILED);
  if (ff != MAP_FAILED) {
    memcpy(ff, "HE", 2);
    CHECK("msync.shared", msync(ff, pg, MS_SYNC));
    char b[8] = {0};
    pread(fd, b, 5, 0);
    FACT("mmap.shared.file.written", "%s", b);
  }
  /* MAP_SHARED anonymous memory is shared with a child; MAP_PRIVATE is copied. */
  int *sh = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  int *pr = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  *sh = 1;
  *pr = 1;
  pid_t c = fork();
  if (c == 0) {
    *sh = 2;
    *pr = 2;
    _exit(0);
  }
  int st;
  waitpid(c, &st, 0);
  FACT("mmap.shared.fork", "shared=%d private=%d", *sh, *pr);
  /* Fork advice: MADV_DONTFORK leaves nothing mapped in a child, MADV_WIPEONFORK
   * (private anonymous memory only) gives it zeros; the parent keeps its data. */
  char *fa = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  memset(fa, 7, 4 * pg);
  CHECK("madvise.dontfork", madvise(fa + pg, pg, MADV_DONTFORK));
  CHECK("madvise.wipeonfork", madvise(fa + 2 * pg, pg, MADV_WIPEONFORK));
  CHECK("madvise.wipeonfork.file", madvise(f, pg, MADV_WIPEONFORK));
  CHECK("madvise.wipeonfork.shared", madvise(sh, pg, MADV_WIPEONFORK));
  CHECK("madvise.dontfork.file", madvise(f, pg, MADV_DONTFORK));
  CHECK("madvise.dofork.file", madvise(f, pg, MADV_DOFORK));
  CHECK("madvise.keeponfork.shared", madvise(sh, pg, MADV_KEEPONFORK));
  char *hz = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(hz + pg, pg);
  CHECK("madvise.wipeonfork.hole", madvise(hz, 3 * pg, MADV_WIPEONFORK));
  CHECK("madvise.keeponfork.hole", madvise(hz, 3 * pg, MADV_KEEPONFORK));
  CHECK("madvise.dontfork.hole", madvise(hz, 3 * pg, MADV_DONTFORK));
  for (int round = 0; round < 2; round++) {
    pid_t k = fork();
    if (k == 0) {
      int gone = mincore(fa + pg, pg, vec) == -1 && errno == ENOMEM;
      int bits = (fa[0] == 7) | (fa[2 * pg] == 0) << 1 | (fa[3 * pg] == 7) << 2 | gone << 3;
      if (!gone)
        bits |= (fa[pg] == 7) << 4;
      fa[2 * pg] = 1; /* the wiped page is the child's own, writable */
      /* The child's mapping still wipes in its own children. */
      pid_t g = fork();
      if (g == 0)
        _exit(fa[2 * pg] == 0 ? 0 : 1);
      int gs;
      waitpid(g, &gs, 0);
      bits |= (WIFEXITED(gs) && WEXITSTATUS(gs) == 0) << 5;
      _exit(bits);
    }
    waitpid(k, &st, 0);
    FACT(round ? "madvise.fork.undone" : "madvise.fork.child", "exited=%d bits=%#x", WIFEXITED(st), WEXITSTATUS(st));
    FACT(round ? "madvise.fork.undone.parent" : "madvise.fork.parent", "%d %d %d %d", fa[0], fa[pg], fa[2 * pg], fa[3 * pg]);
    CHECK("madvise.dofork", madvise(fa, 4 * pg, MADV_DOFORK));
    CHECK("madvise.keeponfork", madvise(fa, 4 * pg, MADV_KEEPONFORK));
  }
  locks(pg);
  /* MADV_REMOVE punches shared anonymous memory (zeros for every sharer), refuses
   * private memory; a hole before it makes the answer ENOMEM once it is done. */
  char *sa = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(sa, 5, 3 * pg);
  pid_t rk = fork();
  if (rk == 0) {
    madvise(sa + pg, pg, MADV_REMOVE);
    _exit(0);
  }
  waitpid(rk, &st, 0);
  FACT("madvise.remove.shared.child", "%d %d %d", sa[0], sa[pg], sa[2 * pg]);
  CHECK("madvise.remove.shared", madvise(sa, 3 * pg, MADV_REMOVE));
  FACT("madvise.remove.shared.zeroed", "%d %d", sa[0], sa[2 * pg]);
  CHECK("madvise.remove.private", madvise(fa, pg, MADV_REMOVE));
  munmap(sa + pg, pg);
  CHECK("madvise.remove.hole", madvise(sa, 3 * pg, MADV_REMOVE));
  CHECK("madvise.remove.none", madvise(sa + pg, pg, MADV_REMOVE));
  /* MADV_REMOVE on a shared mapping of a file punches a hole in the file: zeros in
   * every mapping of it (another process's too) and in reads, the size kept. A
   * private mapping, or a shared one of a file opened read-only, is EACCES; a sealed
   * memfd's read-only mapping too. An in-memory file (memfd) and a file of the
   * current directory. */
  for (int which = 0; which < 2; which++) {
    const char *w = which ? "cwd" : "memfd";
    char label[64];
    int rf = which ? open("rm", O_RDWR | O_CREAT | O_TRUNC, 0600) : memfd_create("rm", 0);
    ftruncate(rf, 4 * pg);
    char *ms = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, rf, 0);
    char *ms2 = mmap(NULL, 4 * pg, PROT_READ, MAP_SHARED, rf, 0);
    memset(ms, 7, 4 * pg);
    pid_t pk = fork();
    if (pk == 0) {
      _exit(madvise(ms + pg, pg, MADV_REMOVE) == 0 ? 0 : errno);
    }
    waitpid(pk, &st, 0);
    snprintf(label, sizeof label, "madvise.remove.%s.child", w);
    FACT(label, "exit=%d %d %d %d %d", WEXITSTATUS(st), ms[0], ms[pg], ms2[pg], ms[2 * pg]);
    snprintf(label, sizeof label, "madvise.remove.%s", w);
    CHECK(label, madvise(ms + 2 * pg, pg + pg / 2, MADV_REMOVE));
    char rb[4] = {9, 9, 9, 9};
    pread(rf, rb, 1, 2 * pg);
    pread(rf, rb + 1, 1, 4 * pg - 1);
    pread(rf, rb + 2, 1, pg - 1);
    snprintf(label, sizeof label, "madvise.remove.%s.zeroed", w);
    FACT(label, "%d %d %d %d %d %d %d %ld", ms[2 * pg], ms[4 * pg - 1], ms2[3 * pg], rb[0], rb[1],
         rb[2], ms[pg - 1], (long)lseek(rf, 0, SEEK_END));
    /* A write after the hole lands in the file again. */
    ms[2 * pg] = 3;
    pread(rf, rb, 1, 2 * pg);
    snprintf(label, sizeof label, "madvise.remove.%s.rewritten", w);
    FACT(label, "%d %d", rb[0], ms2[2 * pg]);
    char *mp = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, rf, 0);
    snprintf(label, sizeof label, "madvise.remove.%s.private", w);
    CHECK(label, madvise(mp, pg, MADV_REMOVE));
    munmap(mp, pg);
    munmap(ms, 4 * pg);
    munmap(ms2, 4 * pg);
    close(rf);
  }
  int rof = open("rm", O_RDONLY);
  char *mro = mmap(NULL, pg, PROT_READ, MAP_SHARED, rof, 0);
  CHECK("madvise.remove.rofd", madvise(mro, pg, MADV_REMOVE));
  munmap(mro, pg);
  close(rof);
  int sealed = memfd_create("sealed", MFD_ALLOW_SEALING);
  ftruncate(sealed, pg);
  fcntl(sealed, F_ADD_SEALS, F_SEAL_WRITE);
  char *msl = mmap(NULL, pg, PROT_READ, MAP_SHARED, sealed, 0);
  CHECK("madvise.remove.sealed", madvise(msl, pg, MADV_REMOVE));
  munmap(msl, pg);
  close(sealed);
  /* mincore answers a mapping at a time: a bad vector is EFAULT before a later hole. */
  CHECK("mincore.badvec.hole", mincore(sa, 3 * pg, (unsigned char *)(sa + pg)));
  CHECK("mincore.hole.first", mincore(sa + pg, 2 * pg, vec));
  /* Growing protections: no mapping here grows; the first mapping decides. */
  CHECK("mprotect.growsup.hole", mprotect(sa + pg, 2 * pg, PROT_READ | PROT_GROWSUP));
  CHECK("mprotect.growsup.mapped", mprotect(sa, 2 * pg, PROT_READ | PROT_GROWSUP));
  CHECK("mprotect.growsdown.hole", mprotect(sa + pg, 2 * pg, PROT_READ | PROT_GROWSDOWN));
  CHECK("mprotect.growsdown.none", mprotect(sa + pg, pg, PROT_READ | PROT_GROWSDOWN));
  CHECK("mprotect.grows.both", mprotect(sa, pg, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP));
  CHECK("mlock.empty.none", mlock(sa + pg, 0));
  /* Read-ahead, dump and huge-page advice are flags of the mapping: they split it
   * (a growth across the split is EFAULT) until taken back. */
  char *hr = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK("madvise.random", madvise(hr + pg, pg, MADV_RANDOM));
  CHECK("madvise.random.split", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  CHECK("madvise.sequential", madvise(hr + pg, pg, MADV_SEQUENTIAL));
  CHECK("madvise.sequential.split", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  CHECK("madvise.normal", madvise(hr, 3 * pg, MADV_NORMAL));
  CHECK("madvise.normal.merged", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  CHECK("madvise.dontdump", madvise(hr + pg, pg, MADV_DONTDUMP));
  CHECK("madvise.dontdump.split", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  CHECK("madvise.dodump", madvise(hr, 3 * pg, MADV_DODUMP));
  CHECK("madvise.dodump.merged", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  CHECK("madvise.nohugepage", madvise(hr + pg, pg, MADV_NOHUGEPAGE));
  CHECK("madvise.nohugepage.split", (long)mremap(hr, 2 * pg, 3 * pg, 0));
  munmap(hr, 3 * pg);
  void *b0 = sbrk(0);
  CHECK("brk.grow", brk((char *)b0 + 8192));
  CHECK("brk.query", sbrk(0) == (char *)b0 + 8192);
  CHECK("brk.low", SYS(SYS_brk, 4096) == (long)sbrk(0));
}


/* Random memory calls inside an arena of 8208 pages, none of the probe's own memory:
 * calls start in its first 16 pages and reach at most 4097 pages further. */
static char *ARENA;
static void random_setup(void) {
  ARENA = mmap(NULL, 8208L * 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(ARENA, 8208L * 4096);
}
static char *rnd_at(void) { long p = (long)rnd_below(16); long off = rnd_below(8) == 0 ? 1 : 0; desc("arena+%ldp%s", p, off ? "+1" : ""); return ARENA + p * 4096 + off; }
/* Pages: none to a few, and more than the arena (16 MiB: within any memory limit). */
static long rnd_pages(void) { return PICK(0, 1, 2, 3, 4096, 4097); }
static void one(int i) {
  long r;
  const char *w;
  errno = 0;
  switch (rnd_below(8)) {
  case 0: { char *a = rnd_at(); long n = rnd_pages() * (rnd_below(2) ? 4096 : 1); w = "mmap"; void *m = mmap(a, n, (int)rnd_flags(7), (int)PICK(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, MAP_ANONYMOUS | MAP_FIXED), -1, 0); r = m == MAP_FAILED ? -1 : (m == a ? 1 : 2); if (m != MAP_FAILED && m != a) munmap(m, n); break; }
  case 1: w = "munmap"; r = munmap(rnd_at(), rnd_pages() * 4096); break;
  case 2: w = "mprotect"; r = mprotect(rnd_at(), rnd_pages() * 4096, (int)rnd_flags(7)); break;
  case 3: w = "msync"; r = msync(rnd_at(), rnd_pages() * 4096, (int)rnd_flags(7)); break;
  case 4: w = "madvise"; r = madvise(rnd_at(), rnd_pages() * 4096, (int)PICK(0, 1, 2, 3, 4, 8, 9, 10, 999)); break;
  case 5: { unsigned char v[32]; w = "mincore"; r = mincore(rnd_at(), (size_t)rnd_pages() * 4096 % (33 * 4096), rnd_below(4) ? v : (void *)rnd_ptr()); break; }
  case 6: { char *a = rnd_at(); w = "mremap"; void *m = mremap(a, (size_t)rnd_pages() * 4096, (size_t)rnd_pages() * 4096, (int)rnd_flags(1)); r = m == MAP_FAILED ? -1 : (m == a ? 1 : 2); if (m != MAP_FAILED && m != a) munmap(m, 4096); break; }
  default: w = "mlock"; r = mlock(rnd_at(), rnd_pages() * 4096); break;
  }
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "mm";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  maps();
  return 0;
}
