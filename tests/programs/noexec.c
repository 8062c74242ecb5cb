/*
 * Attacks a `noexec` mount: `noexec NX OK STATIC DYNAMIC` copies programs (STATIC, a
 * static build of this file; DYNAMIC, its dynamically linked build, whose PT_INTERP
 * loader is copied too), `#!` scripts and the loader into the directories NX (on a
 * noexec mount) and OK (on one without), then tries to run them, map them executable,
 * make a mapping of them executable and ask access(X_OK), and reads how
 * /proc/self/mountinfo and /proc/mounts show both mounts. Each attempt prints
 * `WHAT: RESULT`, RESULT `ok` or the errno's name, so that a test compares backends
 * and Linux line by line.
 *
 * Run with NOEXEC_CHILD=1 in its environment (as the attempts to execute it pass), it
 * exits 42 at once: the parent's proof that the program ran.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *en(int e)
{
    static char buf[32];
    switch (e) {
    case 0: return "ok";
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ENOEXEC: return "ENOEXEC";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case ENOMEM: return "ENOMEM";
    case ETXTBSY: return "ETXTBSY";
    default:
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
}

static void die(const char *what)
{
    fprintf(stderr, "noexec: %s: %s\n", what, strerror(errno));
    exit(2);
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        die(path);
    char *buf = malloc(st.st_size + 1);
    if (!buf)
        die("malloc");
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0)
            die(path);
        got += n;
    }
    close(fd);
    buf[got] = 0;
    *len = got;
    return buf;
}

static void spit(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        die(path);
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n <= 0)
            die(path);
        done += n;
    }
    if (fchmod(fd, mode) < 0)
        die(path);
    close(fd);
}

/* The PT_INTERP string of the ELF image `img` (NULL if none) and its room. */
static char *interp(char *img, size_t len, size_t *room)
{
    Elf64_Ehdr *eh = (Elf64_Ehdr *)img;
    if (len < sizeof *eh || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0)
        return NULL;
    for (int i = 0; i < eh->e_phnum; i++) {
        Elf64_Phdr *ph = (Elf64_Phdr *)(img + eh->e_phoff + (size_t)i * eh->e_phentsize);
        if (ph->p_type == PT_INTERP && ph->p_offset + ph->p_filesz <= len) {
            *room = ph->p_filesz;
            return img + ph->p_offset;
        }
    }
    return NULL;
}

static char *const child_env[] = {"NOEXEC_CHILD=1", NULL};

/* Runs `path` (or, with fd >= 0, execveat(fd, "", AT_EMPTY_PATH)) in a child: `ok`
 * when it ran (exit 42), else execve's errno. */
static void run(const char *what, const char *path, int fd)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork");
    if (pid == 0) {
        char *const argv[] = {(char *)path, NULL};
        if (fd >= 0)
            syscall(SYS_execveat, fd, "", argv, child_env, AT_EMPTY_PATH);
        else
            execve(path, argv, child_env);
        _exit(100 + errno);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        die("waitpid");
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 42)
        printf("%s: ok\n", what);
    else if (code >= 100)
        printf("%s: %s\n", what, en(code - 100));
    else
        printf("%s: status %d\n", what, st);
}

/* mmap `path` with `prot` and `flags`: its errno (0 when mapped; the mapping stays
 * in *at when `at` is given, else it goes). */
static int map(const char *path, int prot, int flags, void **at)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        die(path);
    void *p = mmap(NULL, 4096, prot, flags, fd, 0);
    int e = p == MAP_FAILED ? errno : 0;
    close(fd);
    if (!e && at)
        *at = p;
    else if (!e)
        munmap(p, 4096);
    return e;
}

static void maps(const char *dir)
{
    char prog[256];
    snprintf(prog, sizeof prog, "%s/prog", dir);
    printf("mmap %s/prog PROT_EXEC private: %s\n", dir,
           en(map(prog, PROT_READ | PROT_EXEC, MAP_PRIVATE, NULL)));
    printf("mmap %s/prog PROT_EXEC shared: %s\n", dir,
           en(map(prog, PROT_READ | PROT_EXEC, MAP_SHARED, NULL)));
    void *p = NULL;
    int e = map(prog, PROT_READ, MAP_PRIVATE, &p);
    printf("mmap %s/prog PROT_READ private: %s\n", dir, en(e));
    if (!e) {
        int r = mprotect(p, 4096, PROT_READ | PROT_EXEC);
        printf("mprotect %s/prog private +PROT_EXEC: %s\n", dir, en(r ? errno : 0));
        r = mprotect(p, 4096, PROT_READ | PROT_WRITE);
        printf("mprotect %s/prog private +PROT_WRITE: %s\n", dir, en(r ? errno : 0));
        munmap(p, 4096);
    }
    e = map(prog, PROT_READ, MAP_SHARED, &p);
    printf("mmap %s/prog PROT_READ shared: %s\n", dir, en(e));
    if (!e) {
        int r = mprotect(p, 4096, PROT_READ | PROT_EXEC);
        printf("mprotect %s/prog shared +PROT_EXEC: %s\n", dir, en(r ? errno : 0));
        munmap(p, 4096);
    }
}

static void accesses(const char *dir)
{
    char prog[256];
    snprintf(prog, sizeof prog, "%s/prog", dir);
    printf("access %s/prog X_OK: %s\n", dir, en(access(prog, X_OK) ? errno : 0));
    printf("access %s/prog R_OK: %s\n", dir, en(access(prog, R_OK) ? errno : 0));
    printf("faccessat %s/prog X_OK AT_EACCESS: %s\n", dir,
           en(faccessat(AT_FDCWD, prog, X_OK, AT_EACCESS) ? errno : 0));
    printf("access %s X_OK: %s\n", dir, en(access(dir, X_OK) ? errno : 0));
}

/* The options `file` shows for the mount at `target`: whether `noexec` is among
 * them (field `field`, 0-based, of its line; the mount point at `at`). */
static void shown(const char *file, int at, int field, const char *target)
{
    FILE *f = fopen(file, "r");
    if (!f)
        die(file);
    char line[4096];
    const char *seen = "missing";
    while (fgets(line, sizeof line, f)) {
        char *fields[8] = {0};
        int n = 0;
        for (char *s = strtok(line, " \n"); s && n < 8; s = strtok(NULL, " \n"))
            fields[n++] = s;
        if (n > at && n > field && strcmp(fields[at], target) == 0) {
            char opts[512];
            snprintf(opts, sizeof opts, ",%s,", fields[field]);
            seen = strstr(opts, ",noexec,") ? "noexec" : "exec";
        }
    }
    fclose(f);
    printf("%s %s: %s\n", file, target, seen);
}

int main(int argc, char **argv)
{
    if (getenv("NOEXEC_CHILD"))
        return 42;
    if (argc != 5) {
        fprintf(stderr, "usage: noexec NX OK STATIC DYNAMIC\n");
        return 2;
    }
    const char *dirs[2] = {argv[1], argv[2]};
    size_t slen, dlen, llen;
    char *stat_img = slurp(argv[3], &slen);
    char *dyn_img = slurp(argv[4], &dlen);
    size_t room = 0;
    char *ip = interp(dyn_img, dlen, &room);
    if (!ip) {
        fprintf(stderr, "noexec: %s has no PT_INTERP\n", argv[4]);
        return 2;
    }
    char *ld_img = slurp(ip, &llen);
    char path[256], text[512];
    for (int i = 0; i < 2; i++) {
        const char *d = dirs[i];
        snprintf(path, sizeof path, "%s/prog", d);
        spit(path, stat_img, slen, 0755);
        snprintf(path, sizeof path, "%s/ld.so", d);
        spit(path, ld_img, llen, 0755);
        snprintf(path, sizeof path, "%s/script", d);
        snprintf(text, sizeof text, "#!/bin/sh\nexit 42\n");
        spit(path, text, strlen(text), 0755);
    }
    const char *nx = dirs[0], *ok = dirs[1];
    for (int i = 0; i < 2; i++) {
        const char *d = dirs[i];
        /* In OK, a script whose interpreter is d/prog, and a dynamically linked
         * program whose loader is d/ld.so. */
        snprintf(path, sizeof path, "%s/script-%s", ok, i ? "ok" : "nx");
        snprintf(text, sizeof text, "#!%s/prog\n", d);
        spit(path, text, strlen(text), 0755);
        char ld[256];
        snprintf(ld, sizeof ld, "%s/ld.so", d);
        if (strlen(ld) + 1 > room) {
            fprintf(stderr, "noexec: %s is longer than the PT_INTERP room\n", ld);
            return 2;
        }
        memset(ip, 0, room);
        memcpy(ip, ld, strlen(ld));
        snprintf(path, sizeof path, "%s/dyn-%s", ok, i ? "ok" : "nx");
        spit(path, dyn_img, dlen, 0755);
    }
    for (int i = 0; i < 2; i++) {
        const char *d = dirs[i];
        snprintf(path, sizeof path, "%s/prog", d);
        snprintf(text, sizeof text, "execve %s/prog", d);
        run(text, path, -1);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            die(path);
        snprintf(text, sizeof text, "execveat(AT_EMPTY_PATH) %s/prog", d);
        run(text, "", fd);
        close(fd);
        snprintf(path, sizeof path, "%s/script", d);
        snprintf(text, sizeof text, "execve %s/script (#!/bin/sh)", d);
        run(text, path, -1);
        snprintf(path, sizeof path, "%s/script-%s", ok, i ? "ok" : "nx");
        snprintf(text, sizeof text, "execve %s (#!%s/prog)", path, d);
        run(text, path, -1);
        snprintf(path, sizeof path, "%s/dyn-%s", ok, i ? "ok" : "nx");
        snprintf(text, sizeof text, "execve %s (loader %s/ld.so)", path, d);
        run(text, path, -1);
        maps(d);
        accesses(d);
    }
    /* Memory of no mount: anonymous memory and a memfd map executable. */
    void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap anonymous PROT_EXEC: %s\n", en(p == MAP_FAILED ? errno : 0));
    int mfd = syscall(SYS_memfd_create, "jit", 0);
    if (mfd < 0)
        die("memfd_create");
    if (ftruncate(mfd, 4096) < 0)
        die("ftruncate");
    p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_SHARED, mfd, 0);
    printf("mmap memfd PROT_EXEC shared: %s\n", en(p == MAP_FAILED ? errno : 0));
    p = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, mfd, 0);
    int r = p == MAP_FAILED ? -1 : mprotect(p, 4096, PROT_READ | PROT_EXEC);
    printf("mprotect memfd private +PROT_EXEC: %s\n", en(r ? errno : 0));
    for (int i = 0; i < 2; i++) {
        shown("/proc/self/mountinfo", 4, 5, dirs[i]);
        shown("/proc/mounts", 1, 3, dirs[i]);
    }
    (void)nx;
    return 0;
}
