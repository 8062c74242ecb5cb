/* Filesystem operations against mount points and the directories that hold them,
 * each reported on one line as "OP ARGS: ok" or "OP ARGS: ERRNO-NAME", so that the
 * tests (tests/tests/mounts.rs) can assert the exact outcome in both backends.
 * Statically linked (mountops-static) for the micro-VM.
 *
 *   mountops OP ARG... [OP ARG...]...
 *   ops: write PATH            open(O_WRONLY|O_CREAT|O_APPEND) and write a line
 *        create PATH MODE      open(O_CREAT|O_EXCL, octal MODE): a new file
 *        chmod PATH MODE       chmod to octal MODE
 *        rename FROM TO        renameat2(flags 0)
 *        exchange A B          renameat2(RENAME_EXCHANGE)
 *        noreplace FROM TO     renameat2(RENAME_NOREPLACE)
 *        rmdir PATH | unlink PATH | mkdir PATH
 *        link FROM TO | symlink TARGET PATH
 *        read PATH             prints the first line read
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE 2
#endif

static const char *name(int e) {
  switch (e) {
  case EBUSY: return "EBUSY";
  case EROFS: return "EROFS";
  case EACCES: return "EACCES";
  case EPERM: return "EPERM";
  case EXDEV: return "EXDEV";
  case EINVAL: return "EINVAL";
  case ENOENT: return "ENOENT";
  case EEXIST: return "EEXIST";
  case ENOTEMPTY: return "ENOTEMPTY";
  case ENOTDIR: return "ENOTDIR";
  case EISDIR: return "EISDIR";
  case ELOOP: return "ELOOP";
  case ENOSYS: return "ENOSYS";
  default: return "EOTHER";
  }
}

static void report(const char *op, const char *a, const char *b, long rc) {
  int e = errno;
  printf("%s %s%s%s: %s\n", op, a, b ? " " : "", b ? b : "", rc < 0 ? name(e) : "ok");
  fflush(stdout);
}

static long ren(const char *a, const char *b, unsigned flags) {
  return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, flags);
}

int main(int argc, char **argv) {
  int i = 1;
  while (i < argc) {
    const char *op = argv[i];
    const char *a = i + 1 < argc ? argv[i + 1] : "";
    const char *b = i + 2 < argc ? argv[i + 2] : NULL;
    long rc;
    if (!strcmp(op, "write")) {
      int fd = open(a, O_WRONLY | O_CREAT | O_APPEND, 0644);
      rc = fd < 0 ? -1 : write(fd, "written by the sandbox\n", 23);
      if (fd >= 0) close(fd);
      report(op, a, NULL, rc);
      i += 2;
    } else if (!strcmp(op, "create")) {
      int fd = open(a, O_WRONLY | O_CREAT | O_EXCL, (mode_t)strtol(b, NULL, 8));
      rc = fd;
      if (fd >= 0) close(fd);
      report(op, a, b, rc);
      i += 3;
    } else if (!strcmp(op, "chmod")) {
      rc = chmod(a, (mode_t)strtol(b, NULL, 8));
      report(op, a, b, rc);
      i += 3;
    } else if (!strcmp(op, "rename") || !strcmp(op, "exchange") || !strcmp(op, "noreplace")) {
      unsigned flags = !strcmp(op, "exchange") ? RENAME_EXCHANGE
                       : !strcmp(op, "noreplace") ? RENAME_NOREPLACE : 0;
      rc = ren(a, b, flags);
      report(op, a, b, rc);
      i += 3;
    } else if (!strcmp(op, "rmdir")) {
      rc = rmdir(a);
      report(op, a, NULL, rc);
      i += 2;
    } else if (!strcmp(op, "unlink")) {
      rc = unlink(a);
      report(op, a, NULL, rc);
      i += 2;
    } else if (!strcmp(op, "mkdir")) {
      rc = mkdir(a, 0755);
      report(op, a, NULL, rc);
      i += 2;
    } else if (!strcmp(op, "link")) {
      rc = link(a, b);
      report(op, a, b, rc);
      i += 3;
    } else if (!strcmp(op, "symlink")) {
      rc = symlink(a, b);
      report(op, a, b, rc);
      i += 3;
    } else if (!strcmp(op, "read")) {
      char buf[256] = {0};
      int fd = open(a, O_RDONLY);
      rc = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
      if (fd >= 0) close(fd);
      if (rc >= 0) {
        char *nl = strchr(buf, '\n');
        if (nl) *nl = 0;
        printf("read %s: ok %s\n", a, buf);
        fflush(stdout);
      } else {
        report(op, a, NULL, rc);
      }
      i += 2;
    } else {
      fprintf(stderr, "mountops: unknown op %s\n", op);
      return 2;
    }
  }
  return 0;
}
