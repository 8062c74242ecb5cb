/* File operations driven by arguments, each printing a result line:
 *   cat PATH               print the file (or "error <errno>")
 *   write PATH TEXT        create/truncate PATH with TEXT
 *   append PATH TEXT       append TEXT
 *   mkdir PATH             mkdir
 *   rm PATH                unlink
 *   ls PATH                list names (sorted by the caller)
 *   getdents PATH          list through the old getdents (struct linux_dirent, a
 *                          64-byte buffer so that it takes several calls): a line
 *                          "dent NAME TYPE RECLEN" per entry
 *   readlink PATH          print the link target
 *   stat PATH              print type and size
 *   rename A B             rename
 *   symlink TARGET PATH    create a symlink
 *   mmap PATH              print the file through a private read-only mapping
 * Several commands may follow each other: `cat a write b x cat b`. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(const char *what, int rc) {
    if (rc < 0)
        printf("%s error %d\n", what, errno);
    else
        printf("%s ok\n", what);
    return rc;
}

int main(int argc, char **argv) {
    int i = 1;
    while (i < argc) {
        const char *cmd = argv[i++];
        if (!strcmp(cmd, "cat")) {
            const char *p = argv[i++];
            int fd = open(p, O_RDONLY);
            if (fd < 0) {
                printf("cat %s error %d\n", p, errno);
                continue;
            }
            char buf[4096];
            ssize_t n;
            printf("cat %s: ", p);
            while ((n = read(fd, buf, sizeof buf)) > 0)
                fwrite(buf, 1, n, stdout);
            printf("\n");
            close(fd);
        } else if (!strcmp(cmd, "write") || !strcmp(cmd, "append")) {
            const char *p = argv[i++], *t = argv[i++];
            int flags = O_WRONLY | O_CREAT | (!strcmp(cmd, "write") ? O_TRUNC : O_APPEND);
            int fd = open(p, flags, 0644);
            if (fd < 0) {
                printf("%s %s error %d\n", cmd, p, errno);
                continue;
            }
            ssize_t n = write(fd, t, strlen(t));
            printf("%s %s wrote %zd\n", cmd, p, n);
            close(fd);
        } else if (!strcmp(cmd, "mkdir")) {
            report("mkdir", mkdir(argv[i++], 0755));
        } else if (!strcmp(cmd, "rm")) {
            report("rm", unlink(argv[i++]));
        } else if (!strcmp(cmd, "rename")) {
            const char *a = argv[i++], *b = argv[i++];
            report("rename", rename(a, b));
        } else if (!strcmp(cmd, "symlink")) {
            const char *t = argv[i++], *p = argv[i++];
            report("symlink", symlink(t, p));
        } else if (!strcmp(cmd, "readlink")) {
            char buf[512];
            ssize_t n = readlink(argv[i++], buf, sizeof buf - 1);
            if (n < 0)
                printf("readlink error %d\n", errno);
            else
                printf("readlink %.*s\n", (int)n, buf);
        } else if (!strcmp(cmd, "stat")) {
            struct stat st;
            const char *p = argv[i++];
            if (lstat(p, &st) < 0)
                printf("stat %s error %d\n", p, errno);
            else
                printf("stat %s %s size=%lld\n", p,
                       S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "link" : S_ISREG(st.st_mode) ? "file" : "other",
                       (long long)st.st_size);
        } else if (!strcmp(cmd, "mmap")) {
            const char *p = argv[i++];
            int fd = open(p, O_RDONLY);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0) {
                printf("mmap %s error %d\n", p, errno);
                continue;
            }
            char *m = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) {
                printf("mmap %s error %d\n", p, errno);
                continue;
            }
            printf("mmap %s: %.*s\n", p, (int)st.st_size, m);
            munmap(m, st.st_size);
            close(fd);
        } else if (!strcmp(cmd, "ls")) {
            const char *p = argv[i++];
            DIR *d = opendir(p);
            if (!d) {
                printf("ls %s error %d\n", p, errno);
                continue;
            }
            struct dirent *e;
            printf("ls %s:", p);
            while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                    printf(" %s", e->d_name);
            printf("\n");
            closedir(d);
        } else if (!strcmp(cmd, "getdents")) {
            const char *p = argv[i++];
            int fd = open(p, O_RDONLY | O_DIRECTORY);
            char buf[64];
            long n;
            while (fd >= 0 && (n = syscall(SYS_getdents, fd, buf, sizeof buf)) > 0) {
                for (long off = 0; off < n;) {
                    unsigned short reclen;
                    memcpy(&reclen, buf + off + 16, sizeof reclen);
                    printf("dent %s %d %d\n", buf + off + 18, buf[off + reclen - 1], reclen);
                    off += reclen;
                }
            }
            printf("getdents %s end errno %d\n", p, fd < 0 || n < 0 ? errno : 0);
            if (fd >= 0) close(fd);
        } else {
            printf("unknown command %s\n", cmd);
            return 2;
        }
    }
    return 0;
}
