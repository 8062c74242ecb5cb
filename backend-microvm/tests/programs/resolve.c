/* openat2's RESOLVE_* restrictions: prints one line per case, the same on Linux and
 * in the micro-VM (the test compares with the host). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct open_how {
    unsigned long long flags, mode, resolve;
};
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static const char *ename(int e) {
    switch (e) {
    case EXDEV: return "EXDEV";
    case ELOOP: return "ELOOP";
    case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    default: return "other";
    }
}

static void try(const char *name, int dirfd, const char *path, unsigned long long resolve) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = O_RDONLY;
    how.resolve = resolve;
    long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0) {
        printf("%s ok\n", name);
        close((int)fd);
    } else {
        printf("%s %s\n", name, ename(errno));
    }
}

int main(void) {
    const char *d = "/tmp/hsb-resolve";
    char p[256];
    mkdir(d, 0755);
    snprintf(p, sizeof p, "%s/f", d);
    close(open(p, O_CREAT | O_WRONLY, 0644));
    snprintf(p, sizeof p, "%s/l", d);
    symlink("f", p);
    snprintf(p, sizeof p, "%s/abs", d);
    char t[256];
    snprintf(t, sizeof t, "%s/f", d);
    symlink(t, p);
    int dir = open(d, O_RDONLY | O_DIRECTORY);
    int root = open("/", O_RDONLY | O_DIRECTORY);
    try("beneath-plain", dir, "f", RESOLVE_BENEATH);
    try("beneath-dotdot", dir, "../hsb-resolve/f", RESOLVE_BENEATH);
    try("beneath-absolute", dir, t, RESOLVE_BENEATH);
    try("beneath-abs-link", dir, "abs", RESOLVE_BENEATH);
    try("beneath-rel-link", dir, "l", RESOLVE_BENEATH);
    try("no-symlinks", dir, "l", RESOLVE_NO_SYMLINKS);
    try("no-symlinks-plain", dir, "f", RESOLVE_NO_SYMLINKS);
    try("in-root-absolute", dir, "/f", RESOLVE_IN_ROOT);
    try("in-root-dotdot", dir, "../../f", RESOLVE_IN_ROOT);
    try("in-root-abs-link", dir, "abs", RESOLVE_IN_ROOT);
    try("no-magiclinks", root, "proc/self/exe", RESOLVE_NO_MAGICLINKS);
    try("magiclink", root, "proc/self/exe", 0);
    try("no-xdev", root, "proc/self", RESOLVE_NO_XDEV);
    try("both", dir, "f", RESOLVE_BENEATH | RESOLVE_IN_ROOT);
    try("unknown-flag", dir, "f", 1ull << 40);
    return 0;
}
