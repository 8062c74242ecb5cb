/* Paths and files: open flags, stat, directories, renames, links, permissions,
 * ownership, times, listing, extended attributes. */
#include "probe.h"

#include <dirent.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <linux/openat2.h>
#include <sys/statfs.h>
#include <linux/falloc.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <linux/openat2.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

/* The names in directory `fd`, sorted, as one string. */
static const char *listing(int fd) {
  static char out[512];
  char buf[4096], *names[64];
  int n = 0;
  long k;
  lseek(fd, 0, SEEK_SET);
  while ((k = SYS(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < k;) {
      struct dirent64 *d = (void *)(buf + off);
      if (n < 64)
        names[n++] = strdup(d->d_name);
      off += d->d_reclen;
    }
  }
  qsort(names, n, sizeof names[0], cmp);
  out[0] = 0;
  for (int i = 0; i < n; i++) {
    strncat(out, names[i], sizeof out - strlen(out) - 2);
    strcat(out, " ");
  }
  return out;
}

static void opens(void) {
  umask(022);
  CHECK("open.creat", open("a", O_RDWR | O_CREAT, 0666));
  struct stat st;
  CHECKX("stat.mode.umask", stat("a", &st), "mode=%o", st.st_mode);
  CHECK("open.excl", open("a", O_RDWR | O_CREAT | O_EXCL, 0600));
  CHECK("open.directory.file", open("a", O_RDONLY | O_DIRECTORY));
  CHECK("open.noent", open("nope", O_RDONLY));
  CHECK("open.notdir.component", open("a/b", O_RDONLY));
  CHECK("open.empty", open("", O_RDONLY));
  char longname[300];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK("open.nametoolong", open(longname, O_RDONLY | O_CREAT, 0600));
  CHECK("symlink", symlink("a", "l"));
  CHECK("open.nofollow", open("l", O_RDONLY | O_NOFOLLOW));
  CHECK("open.path.nofollow", open("l", O_PATH | O_NOFOLLOW));
  CHECK("openat.badfd", openat(999, "a", O_RDONLY));
  int f = open("a", O_RDONLY);
  CHECK("openat.filefd", openat(f, "x", O_RDONLY));
  CHECK("openat.filefd.abs", openat(f, "/", O_RDONLY | O_DIRECTORY) >= 0);
  close(f);
  CHECK("open.trunc.rdonly", open("a", O_RDONLY | O_TRUNC));
  CHECK("open.badaccmode", open("a", O_WRONLY | O_RDWR));
  CHECK("open.creat.dirslash", open("newdir/", O_RDWR | O_CREAT, 0600));
  CHECK("open.tmpfile", open(".", O_TMPFILE | O_RDWR, 0600) >= 0);
  CHECK("open.tmpfile.nodir", open("a", O_TMPFILE | O_RDWR, 0600));
  struct open_how how = {.flags = O_RDONLY, .resolve = RESOLVE_BENEATH};
  CHECK("openat2.beneath.up", SYS(SYS_openat2, AT_FDCWD, "../x", &how, sizeof how));
  CHECK("openat2.beneath.abs", SYS(SYS_openat2, AT_FDCWD, "/", &how, sizeof how));
  how.resolve = RESOLVE_NO_SYMLINKS;
  CHECK("openat2.nosymlinks", SYS(SYS_openat2, AT_FDCWD, "l", &how, sizeof how));
  how.resolve = 0;
  how.mode = 0600;
  CHECK("openat2.mode.nocreat", SYS(SYS_openat2, AT_FDCWD, "a", &how, sizeof how));
  CHECK("openat2.small", SYS(SYS_openat2, AT_FDCWD, "a", &how, 8));
  /* A mode needs O_CREAT or __O_TMPFILE itself (O_DIRECTORY is part of O_TMPFILE). */
  how.flags = O_DIRECTORY;
  CHECK("openat2.mode.directory", SYS(SYS_openat2, AT_FDCWD, ".", &how, sizeof how));
  /* O_CREAT through a dangling link with RESOLVE_NO_SYMLINKS: ELOOP, nothing made. */
  CHECK("symlink.dangling.o2", symlink("nowhere-o2", "dangle-o2"));
  how = (struct open_how){.flags = O_CREAT | O_WRONLY, .mode = 0600, .resolve = RESOLVE_NO_SYMLINKS};
  CHECK("openat2.creat.nosymlinks", SYS(SYS_openat2, AT_FDCWD, "dangle-o2", &how, sizeof how));
  CHECK("openat2.creat.nosymlinks.made", access("nowhere-o2", F_OK));
  unlink("dangle-o2");
  CHECK("symlink.loop1", symlink("loop2", "loop1"));
  CHECK("symlink.loop2", symlink("loop1", "loop2"));
  CHECK("open.loop", open("loop1", O_RDONLY));
  CHECK("symlink.dangling", symlink("missing", "dangling"));
  CHECK("open.dangling", open("dangling", O_RDONLY));
  CHECK("open.dangling.creat", open("dangling", O_RDWR | O_CREAT, 0600) >= 0);
  CHECK("unlink.made", unlink("missing"));
}

static void stats(void) {
  struct stat st;
  int fd = open("s", O_RDWR | O_CREAT | O_TRUNC, 0640);
  write(fd, "12345", 5);
  CHECKX("fstat", fstat(fd, &st), "size=%ld mode=%o nlink=%ld blksize=%ld blocks>0=%d",
         (long)st.st_size, st.st_mode, (long)st.st_nlink, (long)st.st_blksize, st.st_blocks > 0);
  CHECKX("lstat.link", lstat("l", &st), "mode=%o size=%ld", st.st_mode, (long)st.st_size);
  CHECKX("stat.link", stat("l", &st), "mode=%o", st.st_mode);
  mkdir("d", 0755);
  mkdir("d/sub", 0755);
  CHECKX("stat.dir", stat("d", &st), "mode=%o nlink=%ld", st.st_mode, (long)st.st_nlink);
  CHECK("stat.empty", stat("", &st));
  CHECK("stat.efault", stat("s", (void *)8));
  CHECK("fstatat.emptypath", fstatat(fd, "", &st, AT_EMPTY_PATH));
  CHECK("fstatat.badflags", fstatat(AT_FDCWD, "s", &st, 0x4));
  struct statx sx;
  CHECKX("statx", statx(AT_FDCWD, "s", 0, STATX_BASIC_STATS, &sx), "mask&basic=%x size=%llu mode=%o",
         sx.stx_mask & STATX_BASIC_STATS, (unsigned long long)sx.stx_size, sx.stx_mode);
  CHECK("statx.badflags", statx(AT_FDCWD, "s", 0x80000000, STATX_BASIC_STATS, &sx));
  CHECK("statx.badmask", statx(AT_FDCWD, "s", 0, 0x80000000, &sx));
  struct statfs sf;
  CHECKX("statfs", statfs(".", &sf), "type=%lx bsize=%ld namelen=%ld", (long)sf.f_type, (long)sf.f_bsize, (long)sf.f_namelen);
  CHECK("statfs.noent", statfs("nope", &sf));
  close(fd);
}

static void dirs(void) {
  CHECK("mkdir.exists", mkdir("d", 0755));
  CHECK("mkdir.parent.missing", mkdir("x/y", 0755));
  CHECK("rmdir.nonempty", rmdir("d"));
  CHECK("rmdir.dot", rmdir("d/sub/."));
  CHECK("rmdir.dotdot", rmdir("d/sub/.."));
  CHECK("rmdir.file", rmdir("s"));
  CHECK("unlink.dir", unlink("d/sub"));
  CHECK("unlinkat.badflags", unlinkat(AT_FDCWD, "s", 0x1));
  CHECK("mkdir.trailing.slash", mkdir("t/", 0755));
  CHECK("rmdir.trailing.slash", rmdir("t/"));
  int fd = open("d", O_RDONLY | O_DIRECTORY);
  FACT("getdents", "%s", listing(fd));
  char small[16];
  lseek(fd, 0, SEEK_SET);
  CHECK("getdents.small", SYS(SYS_getdents64, fd, small, sizeof small));
  int f = open("s", O_RDONLY);
  CHECK("getdents.notdir", SYS(SYS_getdents64, f, small, sizeof small));
  lseek(fd, 0, SEEK_SET);
  CHECK("getdents.efault", SYS(SYS_getdents64, fd, 8, 4096));
  close(f);
  close(fd);
  char cwd[8];
  CHECK("getcwd.small", SYS(SYS_getcwd, cwd, 2));
  CHECK("getcwd.zero", SYS(SYS_getcwd, cwd, 0));
  char big[4096];
  CHECKX("getcwd", SYS(SYS_getcwd, big, sizeof big) > 0, "ends with /pd: %d", strlen(big) >= 3 && strcmp(big + strlen(big) - 3, "/pd") == 0);
  CHECK("chdir.file", chdir("s"));
  CHECK("chdir.noent", chdir("nope"));
  CHECK("fchdir.file", fchdir(0));
}

static void renames(void) {
  int fd = open("r1", O_RDWR | O_CREAT, 0600);
  close(fd);
  mkdir("rd", 0755);
  mkdir("rd2", 0755);
  mkdir("rd2/x", 0755);
  CHECK("rename.same", rename("r1", "r1"));
  CHECK("rename.file.over.dir", rename("r1", "rd"));
  CHECK("rename.dir.over.file", rename("rd", "r1"));
  CHECK("rename.dir.over.nonempty", rename("rd", "rd2"));
  CHECK("rename.dir.into.self", rename("rd2", "rd2/x/y"));
  CHECK("rename.dir.over.parent", rename("rd2/x", "rd2"));
  fd = open("rd2/f", O_RDWR | O_CREAT, 0600);
  close(fd);
  CHECK("rename.file.over.parent", rename("rd2/f", "rd2"));
  unlink("rd2/f");
  CHECK("rename.noent", rename("nope", "x"));
  CHECK("rename.dot", rename(".", "x"));
  CHECK("renameat2.noreplace", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "s", 1));
  CHECK("renameat2.exchange", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "s", 2));
  struct stat st;
  CHECKX("renameat2.exchanged", stat("r1", &st), "size=%ld", (long)st.st_size);
  CHECK("renameat2.exchange.missing", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "nope", 2));
  CHECK("renameat2.badflags", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "s", 3));
  CHECK("renameat2.whiteout", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "w", 4));
  /* Exchanges: checks in Linux's order, a directory and a file across parents (the
     parents' link counts follow the directory), ancestors, trailing slashes. */
  CHECK("renameat2.noreplace.slash", SYS(SYS_renameat2, AT_FDCWD, "r1/", AT_FDCWD, "s", 1));
  CHECK("renameat2.exchange.self", SYS(SYS_renameat2, AT_FDCWD, "r1", AT_FDCWD, "r1", 2));
  CHECK("renameat2.exchange.noent", SYS(SYS_renameat2, AT_FDCWD, "nope", AT_FDCWD, "r1", 2));
  CHECK("renameat2.exchange.slash.src", SYS(SYS_renameat2, AT_FDCWD, "r1/", AT_FDCWD, "s", 2));
  CHECK("renameat2.exchange.slash.dst", SYS(SYS_renameat2, AT_FDCWD, "s", AT_FDCWD, "r1/", 2));
  mkdir("xa", 0755);
  mkdir("xa/sub", 0755);
  mkdir("xa/sub/deep", 0755);
  mkdir("xb", 0755);
  fd = open("xb/file", O_RDWR | O_CREAT, 0600);
  close(fd);
  CHECK("renameat2.exchange.dir.file", SYS(SYS_renameat2, AT_FDCWD, "xa/sub", AT_FDCWD, "xb/file", 2));
  CHECKX("renameat2.exchange.nlink.a", stat("xa", &st), "nlink=%ld", (long)st.st_nlink);
  CHECKX("renameat2.exchange.nlink.b", stat("xb", &st), "nlink=%ld", (long)st.st_nlink);
  CHECKX("renameat2.exchange.moved", stat("xb/file/deep", &st), "dir=%d", S_ISDIR(st.st_mode));
  CHECKX("renameat2.exchange.other", lstat("xa/sub", &st), "reg=%d", S_ISREG(st.st_mode));
  CHECK("renameat2.exchange.ancestor", SYS(SYS_renameat2, AT_FDCWD, "xb", AT_FDCWD, "xb/file/deep", 2));
  CHECK("renameat2.exchange.descendant", SYS(SYS_renameat2, AT_FDCWD, "xb/file/deep", AT_FDCWD, "xb", 2));
  CHECK("renameat2.exchange.dirs", SYS(SYS_renameat2, AT_FDCWD, "xa", AT_FDCWD, "xb/file/", 2));
  CHECKX("renameat2.exchange.dirs.after", stat("xa/deep", &st), "dir=%d", S_ISDIR(st.st_mode));
  CHECK("rename.dir.over.empty", rename("rd", "rd3"));
  CHECK("rename.back", rename("rd3", "rd"));
}

static void links(void) {
  CHECK("link", link("s", "s2"));
  struct stat st;
  CHECKX("link.nlink", stat("s", &st), "nlink=%ld", (long)st.st_nlink);
  CHECK("link.exists", link("s", "s2"));
  CHECK("link.dir", link("d", "d2"));
  CHECK("link.noent", link("nope", "x"));
  CHECK("linkat.follow", linkat(AT_FDCWD, "l", AT_FDCWD, "lf", AT_SYMLINK_FOLLOW));
  CHECKX("linkat.follow.kind", lstat("lf", &st), "mode=%o", st.st_mode);
  CHECK("linkat.nofollow", linkat(AT_FDCWD, "l", AT_FDCWD, "ln", 0));
  CHECKX("linkat.nofollow.kind", lstat("ln", &st), "mode=%o", st.st_mode);
  CHECK("linkat.badflags", linkat(AT_FDCWD, "s", AT_FDCWD, "x", 0x1));
  CHECK("symlink.empty", symlink("", "e"));
  CHECK("symlink.exists", symlink("a", "s"));
  char buf[64] = {0};
  CHECKX("readlink", readlink("l", buf, sizeof buf), "%s", buf);
  CHECKX("readlink.trunc", readlink("l", buf, 0) == -1 ? -1 : readlink("dangling", buf, 3), "%.3s", buf);
  CHECK("readlink.notlink", readlink("s", buf, sizeof buf));
  CHECK("readlink.zero", readlink("l", buf, 0));
  CHECK("readlink.noent", readlink("nope", buf, sizeof buf));
}

static void perms(void) {
  int fd = open("p", O_RDWR | O_CREAT | O_TRUNC, 0600);
  struct stat st;
  CHECK("chmod", chmod("p", 0444));
  CHECKX("chmod.mode", stat("p", &st), "mode=%o", st.st_mode);
  CHECK("access.w.ro", access("p", W_OK));
  CHECK("access.r", access("p", R_OK));
  CHECK("access.x", access("p", X_OK));
  CHECK("access.f", access("p", F_OK));
  CHECK("access.badmode", access("p", 8));
  CHECK("faccessat2.eaccess", SYS(SYS_faccessat2, AT_FDCWD, "p", R_OK, AT_EACCESS));
  CHECK("faccessat2.badflags", SYS(SYS_faccessat2, AT_FDCWD, "p", R_OK, 0x1));
  CHECK("open.ro.forwrite", open("p", O_WRONLY));
  CHECK("fchmod", fchmod(fd, 0640));
  CHECK("chmod.setuid", chmod("p", 04755));
  CHECKX("chmod.setuid.mode", stat("p", &st), "mode=%o", st.st_mode);
  CHECK("chmod.sticky", chmod("p", 01644));
  CHECK("fchmodat.nofollow", fchmodat(AT_FDCWD, "l", 0644, AT_SYMLINK_NOFOLLOW));
  CHECK("chmod.noent", chmod("nope", 0644));
  uid_t u = getuid();
  gid_t g = getgid();
  CHECK("chown.self", chown("p", u, g));
  CHECK("chown.unchanged", chown("p", -1, -1));
  CHECK("chown.root", chown("p", 0, -1));
  CHECK("chown.rootgroup", chown("p", -1, 0));
  CHECK("fchown.self", fchown(fd, u, g));
  CHECK("fchown.bad", fchown(999, u, g));
  CHECK("lchown.dangling", lchown("dangling2", u, g));
  symlink("missing2", "dangling2");
  CHECK("lchown.dangling2", lchown("dangling2", u, g));
  CHECK("chown.dangling2", chown("dangling2", u, g));
  CHECK("fchownat.nofollow", fchownat(AT_FDCWD, "dangling2", u, g, AT_SYMLINK_NOFOLLOW));
  CHECK("fchownat.badflags", fchownat(AT_FDCWD, "p", u, g, 0x1));
  CHECK("fchownat.emptypath", fchownat(fd, "", u, g, AT_EMPTY_PATH));
  CHECK("truncate.dir", truncate("d", 0));
  CHECK("truncate.neg", truncate("p", -1));
  CHECK("truncate.noent", truncate("nope", 0));
  CHECK("truncate.ro", truncate("p", 0));
  CHECK("umask", umask(077));
  CHECK("umask.back", umask(022));
  CHECK("mknod.fifo", mknod("fifo", S_IFIFO | 0600, 0));
  CHECK("mknod.chr", mknod("chr", S_IFCHR | 0600, makedev(1, 3)));
  CHECK("mknod.sock", mknod("sock", S_IFSOCK | 0600, 0));
  CHECK("mknod.reg", mknod("reg", S_IFREG | 0600, 0));
  CHECK("mknod.bad", mknod("bad", 0170000 | 0600, 0));
  CHECK("mknod.exists", mknod("reg", S_IFREG | 0600, 0));
  close(fd);
}

static void times(void) {
  int fd = open("t", O_RDWR | O_CREAT, 0600);
  struct timespec ts[2] = {{1000, 5}, {2000, 7}};
  struct stat st;
  CHECK("utimensat", utimensat(AT_FDCWD, "t", ts, 0));
  CHECKX("utimensat.read", stat("t", &st), "atime=%ld.%ld mtime=%ld.%ld", (long)st.st_atim.tv_sec,
         st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = 3000;
  CHECK("utimensat.omit", utimensat(AT_FDCWD, "t", ts, 0));
  CHECKX("utimensat.omit.read", stat("t", &st), "atime=%ld mtime=%ld", (long)st.st_atim.tv_sec, (long)st.st_mtim.tv_sec);
  ts[0].tv_nsec = 1000000000;
  CHECK("utimensat.badnsec", utimensat(AT_FDCWD, "t", ts, 0));
  ts[0].tv_nsec = 0;
  ts[0].tv_sec = -5;
  CHECK("utimensat.negative", utimensat(AT_FDCWD, "t", ts, 0));
  CHECKX("utimensat.negative.read", stat("t", &st), "atime=%ld", (long)st.st_atim.tv_sec);
  CHECK("utimensat.nullpath", SYS(SYS_utimensat, AT_FDCWD, 0, 0, 0));
  CHECK("utimensat.fd", SYS(SYS_utimensat, fd, 0, 0, 0));
  CHECK("utimensat.badflags", utimensat(AT_FDCWD, "t", NULL, 0x1));
  CHECK("utimensat.nofollow", utimensat(AT_FDCWD, "dangling", NULL, AT_SYMLINK_NOFOLLOW));
  struct timeval tv[2] = {{100, 1}, {200, 2}};
  CHECK("utimes", utimes("t", tv));
  CHECKX("utimes.read", stat("t", &st), "atime=%ld.%ld mtime=%ld.%ld", (long)st.st_atim.tv_sec,
         st.st_atim.tv_nsec, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  tv[0].tv_usec = 1000000;
  CHECK("utimes.badusec", utimes("t", tv));
  CHECK("futimesat.null", SYS(SYS_futimesat, AT_FDCWD, 0, 0));
  close(fd);
}

static void xattrs(void) {
  CHECK("setxattr.user", setxattr("s", "user.k", "v", 1, 0));
  char v[16] = {0};
  CHECK("getxattr.missing", getxattr("s", "user.none", v, sizeof v));
  CHECKX("getxattr.user", getxattr("s", "user.k", v, sizeof v), "%s", v);
  CHECK("listxattr", listxattr("s", v, sizeof v));
  CHECK("setxattr.trusted", setxattr("s", "trusted.k", "v", 1, 0));
  CHECK("setxattr.badns", setxattr("s", "bogus.k", "v", 1, 0));
  CHECK("removexattr.missing", removexattr("s", "user.none"));
  CHECK("getxattr.noent", getxattr("nope", "user.k", v, sizeof v));
}

static void appends(void) {
  int fd = open("ap", O_RDWR | O_CREAT | O_TRUNC | O_APPEND, 0600);
  write(fd, "abc", 3);
  CHECK("pwrite.append", pwrite(fd, "XY", 2, 0));
  char b[16] = {0};
  CHECKX("pwrite.append.read", pread(fd, b, sizeof b, 0), "%s", b);
  CHECK("lseek.append", lseek(fd, 0, SEEK_CUR));
  close(fd);
  CHECK("fsync.dir", fsync(open(".", O_RDONLY)));
  CHECK("syncfs", syncfs(open(".", O_RDONLY)));
}


/* A hole costs no space (tmpfs counts the pages written): a write far past the end of
 * a file in a small in-memory filesystem works, and the hole reads as zeros. */
static void sparse(void) {
  int fd = open("sparse", O_RDWR | O_CREAT | O_TRUNC, 0600);
  off_t far = (off_t)96 << 20;
  CHECK("sparse.pwrite", pwrite(fd, "xyz", 3, far));
  struct stat st;
  fstat(fd, &st);
  FACT("sparse.stat", "size=%lld few_blocks=%d", (long long)st.st_size, st.st_blocks > 0 && st.st_blocks <= 16);
  char b[4] = {9, 9, 9, 9};
  CHECKX("sparse.hole", pread(fd, b, 4, far - 2), "%d %d %c %c", b[0], b[1], b[2], b[3]);
  CHECK("sparse.shrink", ftruncate(fd, 2));
  CHECK("sparse.grow", ftruncate(fd, 8192));
  fstat(fd, &st);
  FACT("sparse.regrown", "size=%lld blocks=%lld", (long long)st.st_size, (long long)st.st_blocks);
  close(fd);
  unlink("sparse");
  /* Three files of 200 MiB each, mostly holes: more than a 256 MiB /tmp holds if the
   * holes cost space (and within a 256 MiB file size limit). */
  int f[3];
  for (int i = 0; i < 3; i++) {
    char name[16], label[32];
    snprintf(name, sizeof name, "sparse%d", i);
    f[i] = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    snprintf(label, sizeof label, "sparse.many.%d", i);
    CHECK(label, pwrite(f[i], "x", 1, (off_t)200 << 20));
  }
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "sparse%d", i);
    close(f[i]);
    unlink(name);
  }
}

/* fallocate on tmpfs: Linux's order of checks (lengths, modes, the descriptor, the
 * file's kind), then what tmpfs does: allocation grows the file, KEEP_SIZE keeps its
 * size, PUNCH_HOLE zeroes a range and gives its whole pages back, other modes are not
 * supported; a sealed memfd refuses a punch. */
static void falloc(void) {
  int fd = open("fa", O_RDWR | O_CREAT | O_TRUNC, 0600);
  char buf[12288];
  memset(buf, 'a', sizeof buf);
  CHECK("falloc.write", write(fd, buf, sizeof buf));
  CHECK("falloc.len0", fallocate(fd, 0, 0, 0));
  CHECK("falloc.lenneg", fallocate(fd, 0, 0, -5));
  CHECK("falloc.offneg", fallocate(fd, 0, -1, 10));
  CHECK("falloc.badmode", fallocate(fd, 0x100, 0, 10));
  CHECK("falloc.punch.nokeep", fallocate(fd, FALLOC_FL_PUNCH_HOLE, 0, 10));
  CHECK("falloc.punch.zero", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 0, 10));
  CHECK("falloc.collapse.keep", fallocate(fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK("falloc.insert.keep", fallocate(fd, FALLOC_FL_INSERT_RANGE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK("falloc.unshare.punch", fallocate(fd, FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK("falloc.zero", fallocate(fd, FALLOC_FL_ZERO_RANGE, 0, 10));
  CHECK("falloc.collapse", fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, 4096));
  CHECK("falloc.insert", fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, 4096));
  CHECK("falloc.huge", fallocate(fd, 0, 1, 0x7fffffffffffffffL));
  struct stat st;
  fstat(fd, &st);
  FACT("falloc.before", "size=%lld blocks=%lld", (long long)st.st_size, (long long)st.st_blocks);
  CHECK("falloc.punch.part", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 100, 5000));
  char b[4] = {9, 9, 9, 9};
  pread(fd, b, 2, 98);
  pread(fd, b + 2, 2, 5099);
  fstat(fd, &st);
  FACT("falloc.punch.part.after", "size=%lld blocks=%lld bytes=%d,%d,%d,%d", (long long)st.st_size,
       (long long)st.st_blocks, b[0], b[1], b[2], b[3]);
  CHECK("falloc.punch.page", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 4096));
  CHECK("falloc.punch.past", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1 << 20, 4096));
  CHECK("falloc.punch.tail", fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8000, 1 << 20));
  char c[3] = {9, 9, 9};
  pread(fd, c, 1, 7999);
  pread(fd, c + 1, 1, 8000);
  pread(fd, c + 2, 1, 12287);
  fstat(fd, &st);
  FACT("falloc.punch.after", "size=%lld blocks=%lld bytes=%d,%d,%d", (long long)st.st_size,
       (long long)st.st_blocks, c[0], c[1], c[2]);
  int t = open("fb", O_RDWR | O_CREAT | O_TRUNC, 0600);
  write(t, buf, 8192 + 100);
  CHECK("falloc.punch.eof", fallocate(t, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192));
  fstat(t, &st);
  FACT("falloc.punch.eof.after", "size=%lld blocks=%lld", (long long)st.st_size, (long long)st.st_blocks);
  close(t);
  unlink("fb");
  CHECK("falloc.grow", fallocate(fd, 0, 10000, 10000));
  fstat(fd, &st);
  FACT("falloc.grown", "size=%lld", (long long)st.st_size);
  CHECK("falloc.within", fallocate(fd, 0, 0, 100));
  CHECK("falloc.keep", fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536));
  fstat(fd, &st);
  FACT("falloc.kept", "size=%lld", (long long)st.st_size);
  close(fd);
  unlink("fa");
  int ro = open("fro", O_RDONLY | O_CREAT, 0600);
  CHECK("falloc.ro", fallocate(ro, 0, 0, 10));
  CHECK("falloc.ro.badmode", fallocate(ro, 0x100, 0, 10));
  close(ro);
  unlink("fro");
  int pp[2];
  pipe(pp);
  CHECK("falloc.pipe", fallocate(pp[1], 0, 0, 10));
  close(pp[0]);
  close(pp[1]);
  int null = open("/dev/null", O_WRONLY);
  CHECK("falloc.devnull", fallocate(null, 0, 0, 10));
  close(null);
  int m = memfd_create("sealed", MFD_ALLOW_SEALING);
  write(m, buf, 8192);
  fcntl(m, F_ADD_SEALS, F_SEAL_WRITE);
  CHECK("falloc.sealed.punch", fallocate(m, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096));
  CHECK("falloc.sealed.within", fallocate(m, 0, 0, 4096));
  close(m);
  int g = memfd_create("nogrow", MFD_ALLOW_SEALING);
  fcntl(g, F_ADD_SEALS, F_SEAL_GROW);
  CHECK("falloc.sealed.grow", fallocate(g, 0, 0, 4096));
  close(g);
}

/* Random path calls over a few names (files, directories, links, missing ones). */
static const char *NAMES[] = {"ra", "rb", "rd", "rd/x", "rl", "rdangle", "missing", "", "rd/../ra", "rd/", "ra/x"};
static const char *rnd_name(void) { long i = (long)rnd_below(11); desc("'%s'", NAMES[i]); return NAMES[i]; }
static void random_setup(void) {
  close(open("ra", O_RDWR | O_CREAT, 0644));
  mkdir("rd", 0755);
  symlink("ra", "rl");
  symlink("nowhere", "rdangle");
}
static void one(int i) {
  long r;
  const char *w;
  errno = 0;
  switch (rnd_below(16)) {
  case 0: w = "open"; r = open(rnd_name(), (int)rnd_flags(O_RDONLY | O_WRONLY | O_CREAT | O_EXCL | O_TRUNC | O_DIRECTORY | O_NOFOLLOW | O_APPEND), 0644); if (r >= 0) close(r); r = r >= 0 ? 0 : r; break;
  case 1: { struct stat st; w = "fstatat"; r = fstatat(AT_FDCWD, rnd_name(), (void *)(rnd_below(4) ? (long)&st : rnd_ptr()), (int)rnd_flags(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH)); break; }
  case 2: w = "mkdir"; r = mkdir(rnd_name(), 0755); break;
  case 3: w = "rmdir"; r = rmdir(rnd_name()); break;
  case 4: w = "unlink"; r = unlink(rnd_name()); break;
  case 5: w = "rename"; { const char *a = rnd_name(); r = rename(a, rnd_name()); } break;
  case 6: w = "link"; { const char *a = rnd_name(); r = link(a, rnd_name()); } break;
  case 7: w = "symlink"; { const char *a = rnd_name(); r = symlink(a, rnd_name()); } break;
  case 8: { char b[64]; w = "readlink"; r = readlink(rnd_name(), b, (size_t)PICK(0, 1, 64)); break; }
  case 9: w = "access"; r = access(rnd_name(), (int)rnd_num(9)); break;
  case 10: w = "chmod"; r = chmod(rnd_name(), (mode_t)PICK(0644, 0755, 0, 0444)); break;
  case 11: w = "truncate"; r = truncate(rnd_name(), PICK(0, 10, -1)); break;
  case 12: w = "utimensat"; r = utimensat(AT_FDCWD, rnd_name(), NULL, (int)rnd_flags(AT_SYMLINK_NOFOLLOW)); break;
  case 13: w = "chdir"; { char here[4096]; getcwd(here, sizeof here); r = chdir(rnd_name()); chdir(here); } break;
  case 14: { struct statx sx; w = "statx"; r = statx(AT_FDCWD, rnd_name(), (int)rnd_flags(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH), (unsigned)rnd_flags(0xfff), &sx); break; }
  default: w = "openat2"; { struct open_how how = {.flags = (unsigned long)rnd_flags(O_RDONLY | O_CREAT | O_DIRECTORY), .mode = (unsigned long)PICK(0, 0644), .resolve = (unsigned long)rnd_flags(0x1f)}; r = SYS(SYS_openat2, AT_FDCWD, rnd_name(), &how, sizeof how); if (r >= 0) { close(r); r = 0; } } break;
  }
  report_random(i, w, r, errno, NULL);
}

/* Path walks and names to be made, where the order of Linux's checks shows: search
 * permission on every directory walked (`.` and `..` included, and the parent of a
 * name to be made or removed) before what the name is; a link whose target ends in a
 * slash names a directory; a trailing slash on a name to be made that is no
 * directory; O_CREAT naming a directory; what an O_PATH open keeps; O_TMPFILE's own
 * bits; the sync bits newfstatat ignores; flags openat2 refuses. */
static void walks(void) {
  mkdir("wk", 0755);
  mkdir("wk/sub", 0755);
  int f = open("wk/file", O_WRONLY | O_CREAT, 0600);
  close(f);
  CHECK("walk.chmod.noexec", chmod("wk", 0644));
  CHECK("walk.dotdot.noexec", mkdir("wk/../w2", 0755));
  CHECK("walk.dot.noexec", access("wk/.", F_OK));
  CHECK("walk.rmdir.noexec", rmdir("wk/file"));
  CHECK("walk.unlink.noexec", unlink("wk/sub"));
  CHECK("walk.link.noexec", link("p", "wk/file"));
  CHECK("walk.symlink.noexec", symlink("x", "wk/new"));
  CHECK("walk.chmod.back", chmod("wk", 0755));
  CHECK("walk.slashlink", symlink("wk/file/", "slashlink"));
  struct stat st;
  CHECK("walk.slashlink.stat", stat("slashlink", &st));
  CHECK("walk.slashlink.dir", symlink("wk/sub/", "slashlink.dir"));
  CHECK("walk.slashlink.dir.stat", stat("slashlink.dir", &st));
  CHECK("walk.symlink.trailing", symlink("x", "wk/newlink/"));
  CHECK("walk.link.trailing", link("wk/file", "wk/newhard/"));
  CHECK("walk.mkfifo.trailing", mkfifo("wk/newfifo/", 0600));
  CHECK("walk.creat.dir", open("wk/sub", O_RDONLY | O_CREAT, 0600));
  CHECK("walk.creat.dirlink", open("slashlink.dir", O_RDONLY | O_CREAT, 0600));
  CHECK("walk.opath.keeps", open("wk/missing", O_PATH | O_CREAT | O_DIRECTORY | O_WRONLY));
  CHECK("walk.opath.made", access("wk/missing", F_OK));
  f = open("wk/sub", O_PATH | O_TRUNC | O_RDWR);
  CHECK("walk.opath.dir", f >= 0);
  close(f);
  CHECK("walk.tmpfile.nodir", open("wk", 020000000 | O_RDWR, 0600));
  CHECK("walk.tmpfile.creat", open("wk", O_TMPFILE | O_CREAT | O_RDWR, 0600));
  CHECK("walk.fstatat.sync", fstatat(AT_FDCWD, "wk", &st, 0x6000));
  CHECK("walk.fstatat.badflag", fstatat(AT_FDCWD, "wk", &st, 0x8000));
  struct open_how how = {.flags = O_RDONLY | 0x2000000};
  CHECK("openat2.unknownflag", SYS(SYS_openat2, AT_FDCWD, "wk", &how, sizeof how));
  how.flags = O_PATH | O_RDWR;
  CHECK("openat2.opath.rdwr", SYS(SYS_openat2, AT_FDCWD, "wk", &how, sizeof how));
  unlink("slashlink");
  unlink("slashlink.dir");
}


/* The events queued on inotify instance `fd`, read at once: "wd:mask:name" each,
 * a move's cookie shown as whether it pairs with the other half's. */
static void events(const char *label, int fd) {
  char buf[4096] __attribute__((aligned(8)));
  char out[480] = "";
  size_t o = 0;
  unsigned last_cookie = 0;
  ssize_t n = read(fd, buf, sizeof buf);
  if (n < 0) {
    FACT(label, "none (%s)", errname(errno));
    return;
  }
  for (char *p = buf; p < buf + n;) {
    struct inotify_event *e = (struct inotify_event *)p;
    const char *pair = "";
    if (e->cookie) {
      pair = last_cookie == e->cookie ? "+" : "~";
      last_cookie = e->cookie;
    }
    o += snprintf(out + o, sizeof out - o, "%s%d:%#x%s:%s", o ? " " : "", e->wd, e->mask, pair, e->len ? e->name : "");
    if (o >= sizeof out)
      break;
    p += sizeof *e + e->len;
  }
  FACT(label, "%s", out);
}

static void inotify(void) {
  CHECK("inotify_init1.badflags", inotify_init1(1));
  int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  FACT("inotify_init1", "fd>2=%d cloexec=%d nonblock=%d", fd > 2, (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0,
       (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
  char target[64] = "", path[64];
  snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
  ssize_t ln = readlink(path, target, sizeof target - 1);
  FACT("inotify.link", "%s", ln > 0 ? target : "?");
  mkdir("iw", 0755);
  CHECK("inotify_add_watch.nomask", inotify_add_watch(fd, "iw", 0));
  CHECK("inotify_add_watch.badbit", inotify_add_watch(fd, "iw", IN_MODIFY | 0x1000));
  CHECK("inotify_add_watch.badfd", inotify_add_watch(999, "iw", IN_MODIFY));
  CHECK("inotify_add_watch.notinotify", inotify_add_watch(1, "iw", IN_MODIFY));
  CHECK("inotify_add_watch.noent", inotify_add_watch(fd, "iw/nope", IN_MODIFY));
  CHECK("inotify_add_watch.addcreate", inotify_add_watch(fd, "iw", IN_MODIFY | IN_MASK_ADD | IN_MASK_CREATE));
  CHECK("inotify_add_watch.efault", SYS(SYS_inotify_add_watch, fd, 8, IN_MODIFY));
  int wd = inotify_add_watch(fd, "iw", IN_ALL_EVENTS);
  FACT("inotify_add_watch", "wd=%d", wd);
  CHECK("inotify_add_watch.same", inotify_add_watch(fd, "iw", IN_ALL_EVENTS));
  CHECK("inotify_add_watch.maskcreate", inotify_add_watch(fd, "iw", IN_ALL_EVENTS | IN_MASK_CREATE));
  events("inotify.quiet", fd);
  int f = open("iw/a", O_CREAT | O_WRONLY, 0644);
  events("inotify.create", fd);
  write(f, "x", 1);
  write(f, "y", 1);
  events("inotify.modify.merged", fd);
  int n = -1;
  ioctl(fd, FIONREAD, &n);
  FACT("inotify.fionread.empty", "%d", n);
  close(f);
  ioctl(fd, FIONREAD, &n);
  FACT("inotify.fionread", "%d", n);
  char small[8];
  CHECK("inotify.read.small", read(fd, small, sizeof small));
  struct pollfd pf = {fd, POLLIN, 0};
  CHECKX("inotify.poll", poll(&pf, 1, 0), "revents=%#x", pf.revents);
  events("inotify.close_write", fd);
  f = open("iw/a", O_RDONLY);
  char c;
  read(f, &c, 1);
  read(f, &c, 1);
  close(f);
  events("inotify.read", fd);
  chmod("iw/a", 0600);
  events("inotify.chmod", fd);
  struct timespec ts[2] = {{1, 0}, {2, 0}};
  utimensat(AT_FDCWD, "iw/a", ts, 0);
  events("inotify.utimens", fd);
  truncate("iw/a", 0);
  events("inotify.truncate", fd);
  f = open("iw/a", O_WRONLY | O_TRUNC);
  close(f);
  events("inotify.open.trunc", fd);
  rename("iw/a", "iw/b");
  events("inotify.rename", fd);
  mkdir("iw/d", 0755);
  symlink("b", "iw/l");
  link("iw/b", "iw/c");
  events("inotify.mkdir.symlink.link", fd);
  unlink("iw/c");
  rmdir("iw/d");
  unlink("iw/l");
  events("inotify.unlink.rmdir", fd);
  mkfifo("iw/p", 0644);
  unlink("iw/p");
  events("inotify.mkfifo", fd);
  CHECK("inotify.mknod.reg", mknod("iw/n", S_IFREG | 0600, 0));
  CHECK("inotify.mknod.sock", mknod("iw/s", S_IFSOCK | 0600, 0));
  events("inotify.mknod", fd);
  /* Two names of one file: renaming one onto the other does nothing. */
  link("iw/n", "iw/n2");
  events("inotify.samefile.setup", fd);
  CHECK("inotify.rename.samefile", rename("iw/n", "iw/n2"));
  FACT("inotify.rename.samefile.both", "%d %d", access("iw/n", F_OK), access("iw/n2", F_OK));
  events("inotify.rename.samefile", fd);
  /* An exchange: each name moved to the other's, nothing replaced. */
  CHECK("inotify.rename.exchange", SYS(SYS_renameat2, AT_FDCWD, "iw/n", AT_FDCWD, "iw/s", 2));
  events("inotify.rename.exchange", fd);
  unlink("iw/n");
  unlink("iw/n2");
  unlink("iw/s");
  events("inotify.mknod.cleanup", fd);
  /* A watch on the file itself: its own events, then its end. */
  int wf = inotify_add_watch(fd, "iw/b", IN_ALL_EVENTS);
  FACT("inotify_add_watch.file", "wd=%d", wf);
  f = open("iw/b", O_WRONLY);
  write(f, "z", 1);
  close(f);
  events("inotify.file.write", fd);
  rename("iw/b", "iw/e");
  events("inotify.file.move", fd);
  /* Renamed over: the replaced file's watch hears its link count change, then its end. */
  int fo = open("iw/f", O_CREAT | O_WRONLY, 0644);
  close(fo);
  int wr = inotify_add_watch(fd, "iw/f", IN_ALL_EVENTS);
  events("inotify.replace.setup", fd);
  rename("iw/e", "iw/f");
  FACT("inotify.replace.wd", "new=%d", wr > wf);
  events("inotify.replace", fd);
  unlink("iw/f");
  events("inotify.file.unlink", fd);
  /* A blocking read, woken by a child creating a file; epoll sees the instance. */
  int bfd = inotify_init();
  inotify_add_watch(bfd, "iw", IN_CREATE);
  int ep = epoll_create1(0);
  struct epoll_event ev = {EPOLLIN, {.u64 = 9}}, got;
  epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev);
  pid_t kid = fork();
  if (kid == 0) {
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, NULL);
    close(open("iw/k", O_CREAT | O_WRONLY, 0644));
    _exit(0);
  }
  CHECKX("inotify.epoll", epoll_wait(ep, &got, 1, 5000), "data=%lu", (unsigned long)got.data.u64);
  char bbuf[64] __attribute__((aligned(8)));
  ssize_t br = read(bfd, bbuf, sizeof bbuf);
  struct inotify_event *be = (struct inotify_event *)bbuf;
  FACT("inotify.read.blocking", "bytes=%zd mask=%#x name=%s", br, be->mask, br > 0 ? be->name : "");
  waitpid(kid, NULL, 0);
  close(ep);
  close(bfd);
  unlink("iw/k");
  CHECK("inotify_rm_watch.gone", inotify_rm_watch(fd, wf));
  /* One-shot: one event, then the watch ends. */
  int f2 = open("iw/o", O_CREAT | O_WRONLY, 0644);
  close(f2);
  events("inotify.oneshot.setup", fd);
  int wo = inotify_add_watch(fd, "iw/o", IN_MODIFY | IN_ONESHOT);
  f2 = open("iw/o", O_WRONLY);
  write(f2, "1", 1);
  write(f2, "2", 1);
  close(f2);
  int wdirs = inotify_rm_watch(fd, wd);
  FACT("inotify.oneshot.wd", "new=%d rm_dir=%d", wo > wd, wdirs);
  events("inotify.oneshot", fd);
  CHECK("inotify_rm_watch.again", inotify_rm_watch(fd, wd));
  CHECK("inotify_rm_watch.notinotify", inotify_rm_watch(1, wd));
  CHECK("inotify.read.empty", read(fd, small, sizeof small));
  CHECK("inotify.write", write(fd, "x", 1));
  CHECK("inotify.lseek", lseek(fd, 0, SEEK_SET));
  /* A directory watch with IN_ONLYDIR, on a file: ENOTDIR. */
  CHECK("inotify_add_watch.onlydir", inotify_add_watch(fd, "iw/o", IN_MODIFY | IN_ONLYDIR));
  unlink("iw/o");
  rmdir("iw");
  close(fd);
}

/* The working directory is the directory itself, not its name: getcwd shows where it
 * went after a rename of it or of a directory above it, `..` is its new parent; once
 * removed, getcwd fails and nothing is made or found in it. */
static void cwds(void) {
  char base[4096], now[4096], want[4300];
  struct stat a, b;
  if (!getcwd(base, sizeof base))
    return;
  mkdir("cw.d", 0755);
  if (chdir("cw.d") != 0)
    return;
  CHECK("cwd.rename", rename("../cw.d", "../cw.e"));
  snprintf(want, sizeof want, "%s/cw.e", base);
  memset(now, 0, sizeof now);
  CHECKX("cwd.renamed.getcwd", SYS(SYS_getcwd, now, sizeof now) > 0, "new path: %d", strcmp(now, want) == 0);
  memset(now, 0, sizeof now);
  CHECKX("cwd.renamed.proc", readlink("/proc/self/cwd", now, sizeof now - 1) > 0, "new path: %d", strcmp(now, want) == 0);
  mkdir("../cw.f", 0755);
  CHECK("cwd.move", rename("../cw.e", "../cw.f/g"));
  snprintf(want, sizeof want, "%s/cw.f/g", base);
  memset(now, 0, sizeof now);
  CHECKX("cwd.moved.getcwd", SYS(SYS_getcwd, now, sizeof now) > 0, "new path: %d", strcmp(now, want) == 0);
  snprintf(want, sizeof want, "%s/cw.f", base);
  stat(want, &b);
  CHECKX("cwd.moved.dotdot", stat("..", &a), "the new parent: %d", a.st_ino == b.st_ino && a.st_dev == b.st_dev);
  CHECK("cwd.moved.create", close(open("x", O_CREAT | O_WRONLY, 0644)));
  CHECK("cwd.moved.unlink", unlink("x"));
  snprintf(want, sizeof want, "%s/cw.f/g", base);
  CHECK("cwd.rmdir", rmdir(want));
  CHECK("cwd.removed.getcwd", SYS(SYS_getcwd, now, sizeof now));
  memset(now, 0, sizeof now);
  strcat(want, " (deleted)");
  CHECKX("cwd.removed.proc", readlink("/proc/self/cwd", now, sizeof now - 1) > 0, "old path, deleted: %d", strcmp(now, want) == 0);
  snprintf(want, sizeof want, "%s/cw.f/g", base);
  CHECK("cwd.removed.create", open("y", O_CREAT | O_WRONLY, 0644));
  CHECK("cwd.removed.mkdir", mkdir("z", 0755));
  CHECK("cwd.removed.lookup", access("y", F_OK));
  CHECKX("cwd.removed.stat", stat(".", &a), "nlink=%ld", (long)a.st_nlink);
  /* A directory made again at that name is another one. */
  CHECK("cwd.remade", mkdir(want, 0755));
  CHECK("cwd.remade.getcwd", SYS(SYS_getcwd, now, sizeof now));
  CHECK("cwd.removed.chdir.dotdot", chdir(".."));
  memset(now, 0, sizeof now);
  snprintf(want, sizeof want, "%s/cw.f", base);
  CHECKX("cwd.dotdot.getcwd", SYS(SYS_getcwd, now, sizeof now) > 0, "the old parent: %d", strcmp(now, want) == 0);
  chdir(base);
  snprintf(want, sizeof want, "%s/cw.f/g", base);
  rmdir(want);
  rmdir("cw.f");
}

int main(int argc, char **argv) {
  FAMILY = "fs";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  opens();
  stats();
  dirs();
  renames();
  links();
  perms();
  times();
  xattrs();
  appends();
  sparse();
  falloc();
  walks();
  inotify();
  cwds();
  return 0;
}
