/* The micro-VM's fast calls (backend-microvm/src/fastcall.rs), from the workload's
 * side. Modes:
 *   integrity  file I/O, calls by path, directory listings, signal actions and
 *              identity calls, enough of them to start the fast-call thread; prints
 *              what it computed (the same natively).
 * Files go in argv[2] (default /tmp), and are removed at the end.
 *   signal     a pwrite past RLIMIT_FSIZE: SIGXFSZ's handler has run when the call
 *              returns, as on Linux.
 *   forever    fast calls and calls sent back to the exit path, until the
 *              wall-time limit ends the run.
 *   forge      attacks on the slot in the frame page, which the workload can write:
 *              posts of calls the thread must refuse, posts made and changed, states
 *              no stub writes. Prints what it saw; only meaningful in the micro-VM.
 *   forge-output  posts of writes to stdout, for a run whose output limit is 256
 *              bytes: `write` and `writev` within it are answered (the text reaches
 *              the caller), one past it is refused (the exit path ends the run
 *              there). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#define SLOT ((volatile uint32_t *)0x7fffffffc000UL)
#define SLOT_NR ((volatile uint64_t *)0x7fffffffc008UL)
#define SLOT_ARGS ((volatile uint64_t *)0x7fffffffc010UL)
#define SLOT_RET ((volatile uint64_t *)0x7fffffffc040UL)
enum { IDLE, POSTED, TAKEN, DONE, DONE_FOLLOW, SLOW };

static const char *self_path;
static const char *base = "/tmp";

/* `base`/`name`, in a static buffer of its own per call site. */
#define AT(buf, name) (snprintf(buf, sizeof buf, "%s/%s", base, name), buf)

static void warm(void) {
    for (int i = 0; i < 3000; i++)
        syscall(SYS_getppid);
}

static volatile sig_atomic_t usr1;
static void on_usr1(int s) {
    (void)s;
    usr1++;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The thread pointer as `arch_prctl(ARCH_SET_FS)` leaves it, read back through %fs
 * (the micro-VM's stub answers the call itself), and calls on the task's own state:
 * `set_tid_address`, `umask`, `rt_sigprocmask` (a signal raised while blocked runs its
 * handler when the call that unblocks it returns). No libc call runs while %fs is
 * not libc's own. */
static long set_fs(unsigned long addr) {
    long r;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "0"((long)SYS_arch_prctl), "D"(0x1002L), "S"(addr)
                     : "rcx", "r11", "memory");
    return r;
}

static int task_calls(void) {
    unsigned long old;
    if (syscall(SYS_arch_prctl, 0x1003, &old) != 0)
        return 1;
    static unsigned long tcb[2][4];
    unsigned long seen = 0, bad_seen = 0;
    long errs = 0;
    for (int i = 0; i < 300; i++) {
        unsigned long *t = tcb[i & 1];
        t[0] = (unsigned long)t;
        t[1] = (unsigned long)i;
        unsigned long got;
        long r = set_fs((unsigned long)t);
        __asm__ volatile("mov %%fs:8, %0" : "=r"(got));
        /* Addresses past the user half: refused, the pointer unchanged. */
        errs += set_fs(0x800000000000UL) + set_fs(0xffff800000000000UL);
        unsigned long still;
        __asm__ volatile("mov %%fs:0, %0" : "=r"(still));
        set_fs(old);
        seen += r == 0 && got == (unsigned long)i;
        bad_seen += still == (unsigned long)t;
    }
    printf("fs set %lu/300, kept after refusals %lu/300, refusals %ld\n", seen, bad_seen,
           errs / 300);
    int tid_ok = 0;
    static int slot_a, slot_b;
    for (int i = 0; i < 300; i++)
        tid_ok += syscall(SYS_set_tid_address, i & 1 ? &slot_a : &slot_b) == syscall(SYS_gettid);
    mode_t m0 = umask(027), m1 = umask(0777), m2 = umask(m0);
    printf("set_tid_address %d/300, umask %o %o %d\n", tid_ok, (unsigned)m1,
           (unsigned)m2, umask(m0) == m0);
    signal(SIGUSR1, on_usr1);
    sigset_t one, prev, now;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR1);
    int ran = 0, held = 0, masked = 0;
    for (int i = 0; i < 100; i++) {
        usr1 = 0;
        sigprocmask(SIG_BLOCK, &one, &prev);
        raise(SIGUSR1);
        held += usr1 == 0;
        sigprocmask(SIG_SETMASK, &prev, &now);
        masked += sigismember(&now, SIGUSR1);
        ran += usr1 == 1;
    }
    errno = 0;
    long einval = syscall(SYS_rt_sigprocmask, 99, &one, NULL, 8);
    int e = errno;
    errno = 0;
    long esize = syscall(SYS_rt_sigprocmask, SIG_BLOCK, &one, NULL, 4);
    int e2 = errno;
    signal(SIGUSR1, SIG_DFL);
    printf("sigusr1 held %d, masked %d, ran on unblock %d of 100; bad how %ld/%d, size "
           "%ld/%d\n",
           held, masked, ran, einval, e, esize, e2);
    return 0;
}

/* Private anonymous mappings (fast calls), given back at once as CPython's frame
 * stack does, or kept: zeros when fresh, what was written while mapped, distinct
 * while alive. */
static int maps(void) {
    long sum = 0;
    int fresh = 0, distinct = 0;
    char *prev = NULL;
    for (int i = 0; i < 300; i++) {
        char *p = mmap(NULL, 16 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 1;
        int zero = 1;
        for (int j = 0; j < (16 << 10); j += 512)
            zero &= p[j] == 0;
        fresh += zero;
        for (int j = 0; j < (16 << 10); j += 64)
            p[j] = (char)(i + j);
        for (int j = 0; j < (16 << 10); j += 64)
            sum += p[j];
        if (i % 3 == 0) {
            distinct += p != prev;
            prev = p; /* kept */
        } else if (munmap(p, 16 << 10) != 0) {
            return 1;
        }
    }
    /* A large one touched page by page, one made inaccessible first. */
    char *big = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    char *none = mmap(NULL, 8192, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (big == MAP_FAILED || none == MAP_FAILED || mprotect(none, 8192, PROT_READ | PROT_WRITE) != 0)
        return 1;
    for (int j = 0; j < (1 << 20); j += 4096)
        big[j] = 1;
    none[8191] = 7;
    long big_sum = 0;
    for (int j = 0; j < (1 << 20); j += 4096)
        big_sum += big[j];
    printf("mmap fresh %d/300 sum %ld kept distinct %d/100 big %ld none %d\n", fresh, sum,
           distinct, big_sum, none[8191] + none[0]);
    return munmap(big, 1 << 20) | munmap(none, 8192);
}

/* Read-only opens (fast calls when they reach a file, a directory or a plain
 * device; the exit path for a FIFO or a terminal): what they open and the errors
 * they give, as on Linux. */
static int opens(void) {
    char dir[512], file[600], link[600], fifo[600], path[700];
    if (mkdir(AT(dir, "fcopen"), 0700) != 0)
        return 1;
    snprintf(file, sizeof file, "%s/file", dir);
    snprintf(link, sizeof link, "%s/link", dir);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    int w = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (w < 0 || write(w, "contents", 8) != 8 || close(w) != 0 || symlink("file", link) != 0 ||
        mkfifo(fifo, 0600) != 0)
        return 1;
    int same = 0, dirs = 0, links = 0;
    for (int i = 0; i < 300; i++) {
        char b[16] = {0};
        int fd = open(i % 2 ? file : link, O_RDONLY | O_CLOEXEC);
        same += fd >= 0 && read(fd, b, sizeof b) == 8 && !memcmp(b, "contents", 8) &&
                fcntl(fd, F_GETFD) == FD_CLOEXEC;
        close(fd);
        int d = openat(AT_FDCWD, dir, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_DIRECTORY);
        struct stat st;
        dirs += d >= 0 && fstat(d, &st) == 0 && S_ISDIR(st.st_mode);
        close(d);
        int l = open(link, O_RDONLY | O_NOFOLLOW);
        links += l == -1 && errno == ELOOP;
    }
    /* Errors: missing, a file as a directory, O_DIRECTORY of a file, relative to a
     * bad descriptor, an empty path. */
    int errs[5];
    snprintf(path, sizeof path, "%s/none", dir);
    errno = 0;
    errs[0] = open(path, O_RDONLY) == -1 ? errno : 0;
    snprintf(path, sizeof path, "%s/x", file);
    errno = 0;
    errs[1] = open(path, O_RDONLY) == -1 ? errno : 0;
    errno = 0;
    errs[2] = open(file, O_RDONLY | O_DIRECTORY) == -1 ? errno : 0;
    errno = 0;
    errs[3] = openat(1000, "file", O_RDONLY) == -1 ? errno : 0;
    errno = 0;
    errs[4] = open("", O_RDONLY) == -1 ? errno : 0;
    /* Relative to a directory descriptor; a FIFO without a writer (non-blocking:
     * opens; the exit path's); /dev/null. */
    int d = open(dir, O_RDONLY | O_DIRECTORY);
    int rel = openat(d, "file", O_RDONLY);
    char c;
    int relok = rel >= 0 && read(rel, &c, 1) == 1 && c == 'c';
    int f = open(fifo, O_RDONLY | O_NONBLOCK);
    /* No writer yet, opened without waiting for one: the end of file. */
    int fifook = f >= 0 && read(f, &c, 1) == 0;
    int n = open("/dev/null", O_RDONLY);
    int nullok = n >= 0 && read(n, &c, 1) == 0;
    close(rel);
    close(f);
    close(n);
    close(d);
    /* The descriptor limit holds: opens until EMFILE, the same count. */
    struct rlimit old, low = {64, 64};
    getrlimit(RLIMIT_NOFILE, &old);
    if (setrlimit(RLIMIT_NOFILE, &low) != 0)
        return 1;
    int fds[80], opened = 0;
    errno = 0;
    while (opened < 80 && (fds[opened] = open(file, O_RDONLY)) >= 0)
        opened++;
    int emfile = errno == EMFILE;
    int highest = opened ? fds[opened - 1] : -1;
    while (opened > 0)
        close(fds[--opened]);
    setrlimit(RLIMIT_NOFILE, &old);
    unlink(file);
    unlink(link);
    unlink(fifo);
    rmdir(dir);
    printf("open same %d/300 dirs %d/300 nofollow %d/300\n", same, dirs, links);
    printf("open errors %d %d %d %d %d relative %d fifo %d null %d\n", errs[0], errs[1],
           errs[2], errs[3], errs[4], relok, fifook, nullok);
    printf("open up to %d then EMFILE %d\n", highest, emfile);
    /* getcwd: the path chdir went to, ERANGE when it does not fit, and into memory
     * never touched (the exit path maps it). */
    char here[4096], was[4096];
    if (!getcwd(was, sizeof was) || chdir(base) != 0)
        return 1;
    int cwd_same = 0;
    for (int i = 0; i < 300; i++)
        cwd_same += getcwd(here, sizeof here) == here && strcmp(here, base) == 0;
    errno = 0;
    int erange = getcwd(here, 2) == NULL && errno == ERANGE;
    char *fresh = malloc(1 << 20);
    char *far = fresh + (700 << 10);
    int untouched = syscall(SYS_getcwd, far, 4096) == (long)strlen(base) + 1 && !strcmp(far, base);
    if (chdir(was) != 0)
        return 1;
    printf("getcwd same %d/300 ERANGE %d untouched %d\n", cwd_same, erange, untouched);
    return maps();
}

/* Calls by path, directory listings and signal actions. */
static int paths(void) {
    char dir[512], name[600];
    if (mkdir(AT(dir, "fcdir"), 0700) != 0)
        return 1;
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof name, "%s/f%02d", dir, i);
        int fd = open(name, O_WRONLY | O_CREAT, 0600);
        if (fd < 0 || write(fd, name, (size_t)i) != i)
            return 1;
        close(fd);
    }
    char link[600];
    snprintf(link, sizeof link, "%s/link", dir);
    if (symlink("f07", link) != 0)
        return 1;
    long total = 0;
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < 40; i++) {
            struct stat st;
            snprintf(name, sizeof name, "%s/f%02d", dir, i);
            if (stat(name, &st) != 0 || st.st_size != i)
                return 1;
            total += st.st_size;
        }
    struct stat l, t, e;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (lstat(link, &l) != 0 || stat(link, &t) != 0 ||
        fstatat(dfd, "f09", &e, 0) != 0 || fstatat(dfd, "", &e, AT_EMPTY_PATH) != 0)
        return 1;
    errno = 0;
    char none[600];
    snprintf(none, sizeof none, "%s/none", dir);
    int missing = stat(none, &e);
    int missing_errno = errno;
    DIR *d = fdopendir(dfd);
    char *names[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < 64)
        names[n++] = strdup(de->d_name);
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], ".") && strcmp(names[i], "..")) {
            snprintf(none, sizeof none, "%s/%s", dir, names[i]);
            unlink(none);
        }
    rmdir(dir);
    printf("stat total %ld link %s->%lld dir %s missing %d/%d entries %d first %s last %s\n",
           total, S_ISLNK(l.st_mode) ? "lnk" : "?", (long long)t.st_size,
           S_ISDIR(e.st_mode) ? "dir" : "?", missing, missing_errno, n, names[0], names[n - 1]);
    /* close: the descriptor goes at once, its number is the lowest free again, a
     * second close and a bad number fail with EBADF. */
    char closing[600];
    int made = open(AT(closing, "fastcall-close"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (made < 0 || write(made, "x", 1) != 1 || close(made) != 0)
        return 1;
    int gone = 0, reused = 0, twice = 0;
    for (int i = 0; i < 200; i++) {
        int a = open(closing, O_RDONLY), b = dup(a);
        char c;
        getppid();
        if (a < 0 || b < 0 || close(a) != 0)
            return 1;
        errno = 0;
        gone += read(a, &c, 1) == -1 && errno == EBADF;
        int again = open(closing, O_RDONLY);
        reused += again == a && read(b, &c, 1) == 1 && c == 'x';
        errno = 0;
        twice += close(b) == 0 && close(b) == -1 && errno == EBADF;
        close(again);
    }
    errno = 0;
    int bad = close(-1);
    int bad_errno = errno;
    unlink(closing);
    printf("close %d/200 reused %d/200 twice %d/200 bad %d/%d\n", gone, reused, twice, bad,
           bad_errno);
    struct sigaction sa = {0}, old = {0};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    int same = 0;
    for (int i = 0; i < 100; i++) {
        if (sigaction(SIGUSR1, &sa, NULL) != 0 || sigaction(SIGUSR1, NULL, &old) != 0)
            return 1;
        same += old.sa_handler == on_usr1 && (old.sa_flags & SA_RESTART);
    }
    raise(SIGUSR1);
    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("sigaction %d/100 handled %d\n", same, (int)usr1);
    return opens();
}

static int integrity(void) {
    warm();
    pid_t pid = getpid(), ppid = getppid();
    for (int i = 0; i < 2000; i++)
        if (getpid() != pid || getppid() != ppid || syscall(SYS_gettid) != pid) {
            printf("identity changed at %d\n", i);
            return 1;
        }
    char data_path[512];
    int fd = open(AT(data_path, "fastcall-data"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror("open");
        return 1;
    }
    static unsigned char buf[1 << 16], back[1 << 16];
    uint64_t sum = 0;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + (i >> 8));
    /* Writes of every size from 1 byte, at moving offsets. */
    size_t off = 0;
    for (size_t n = 1; off + n <= sizeof buf; n = n * 3 / 2 + 1) {
        if (pwrite(fd, buf + off, n, off) != (ssize_t)n) {
            perror("pwrite");
            return 1;
        }
        off += n;
    }
    if (pwrite(fd, buf + off, sizeof buf - off, off) != (ssize_t)(sizeof buf - off))
        return 1;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size != sizeof buf) {
        printf("fstat size %lld\n", (long long)st.st_size);
        return 1;
    }
    if (lseek(fd, 0, SEEK_SET) != 0)
        return 1;
    size_t got = 0;
    while (got < sizeof back) {
        ssize_t r = read(fd, back + got, 1000);
        if (r <= 0) {
            perror("read");
            return 1;
        }
        got += r;
    }
    if (read(fd, back, 10) != 0 || memcmp(buf, back, sizeof buf) != 0) {
        printf("read back differs\n");
        return 1;
    }
    for (int i = 0; i < 4000; i++) {
        unsigned char c;
        off_t at = (off_t)((i * 7919) % sizeof buf);
        if (pread(fd, &c, 1, at) != 1 || c != buf[at]) {
            printf("pread at %lld\n", (long long)at);
            return 1;
        }
        sum += c;
    }
    if (fsync(fd) != 0 || fdatasync(fd) != 0 || lseek(fd, 0, SEEK_END) != sizeof buf)
        return 1;
    /* A fast read into memory never touched: its page is not mapped yet, so the
     * call goes through the exit path, which maps it. */
    char *fresh = malloc(1 << 20);
    if (pread(fd, fresh + (512 << 10), 4096, 4096) != 4096 ||
        memcmp(fresh + (512 << 10), buf + 4096, 4096) != 0)
        return 1;
    /* Bad buffers: the same errors as the exit path gives. */
    errno = 0;
    long r1 = pread(fd, (void *)0xffff800000000000UL, 16, 0);
    int e1 = errno;
    errno = 0;
    long r2 = pread(fd, (void *)integrity, 16, 0);
    int e2 = errno;
    /* isatty (ioctl TCGETS) of a file, a directory and /dev/null: no terminal. */
    int dfd = open(base, O_RDONLY | O_DIRECTORY), nfd = open("/dev/null", O_RDWR);
    int ttys = 0, enotty = 0;
    for (int i = 0; i < 300; i++) {
        int f = i % 3 == 0 ? fd : i % 3 == 1 ? dfd : nfd;
        errno = 0;
        ttys += isatty(f);
        enotty += errno == ENOTTY;
    }
    errno = 0;
    int bad = isatty(1000);
    int ebadf = errno == EBADF;
    close(dfd);
    close(nfd);
    close(fd);
    unlink(data_path);
    printf("sum %llu size %lld bad %ld/%d %ld/%d\n", (unsigned long long)sum,
           (long long)st.st_size, r1, e1, r2, e2);
    printf("isatty %d of 300, ENOTTY %d, a closed descriptor %d/%d\n", ttys, enotty, bad,
           ebadf);
    if (task_calls() != 0)
        return 1;
    return paths();
}

static volatile sig_atomic_t xfsz;
static void on_xfsz(int s) {
    (void)s;
    xfsz = 1;
}

static int signal_mode(void) {
    warm();
    signal(SIGXFSZ, on_xfsz);
    struct rlimit rl = {4096, 4096};
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
        return 1;
    char fsize_path[512];
    int fd = open(AT(fsize_path, "fastcall-fsize"), O_RDWR | O_CREAT | O_TRUNC, 0600);
    char b[16] = "0123456789abcdef";
    int seen = 0;
    for (int i = 0; i < 50; i++) {
        getppid();
        xfsz = 0;
        errno = 0;
        ssize_t r = pwrite(fd, b, sizeof b, 8192);
        if (r == -1 && errno == EFBIG && xfsz == 1)
            seen++;
    }
    close(fd);
    unlink(fsize_path);
    printf("sigxfsz %d/50\n", seen);
    return 0;
}

/* Posts `nr(a...)` in the slot as the stub would, waits for an answer; returns the
 * state that ended the wait (IDLE: nobody took it in time, withdrawn). */
static uint32_t post6(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                      uint64_t a4, uint64_t a5, uint64_t *ret) {
    for (int attempt = 0; attempt < 50; attempt++) {
        getppid(); /* wakes the thread if it slept */
        *SLOT_NR = nr;
        SLOT_ARGS[0] = a0;
        SLOT_ARGS[1] = a1;
        SLOT_ARGS[2] = a2;
        SLOT_ARGS[3] = a3;
        SLOT_ARGS[4] = a4;
        SLOT_ARGS[5] = a5;
        __atomic_store_n(SLOT, POSTED, __ATOMIC_SEQ_CST);
        for (long spin = 0; spin < 20000000; spin++) {
            uint32_t s = __atomic_load_n(SLOT, __ATOMIC_SEQ_CST);
            if (s >= DONE) {
                *ret = *SLOT_RET;
                __atomic_store_n(SLOT, IDLE, __ATOMIC_SEQ_CST);
                return s;
            }
            __builtin_ia32_pause();
        }
        uint32_t expect = POSTED;
        if (__atomic_compare_exchange_n(SLOT, &expect, IDLE, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            continue; /* withdrawn: try again */
        while (__atomic_load_n(SLOT, __ATOMIC_SEQ_CST) < DONE)
            __builtin_ia32_pause();
        *ret = *SLOT_RET;
        __atomic_store_n(SLOT, IDLE, __ATOMIC_SEQ_CST);
        return DONE;
    }
    return IDLE;
}

static uint32_t post(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t *ret) {
    return post6(nr, a0, a1, a2, 0, 0, 0, ret);
}

static const char *name(uint32_t s) {
    static const char *n[] = {"idle", "posted", "taken", "done", "follow", "slow"};
    return s <= SLOW ? n[s] : "?";
}

static int forge(void) {
    warm();
    uint64_t ret = 0;
    /* A call the thread answers: the same answer as the real call. */
    uint32_t s = post(SYS_getppid, 0, 0, 0, &ret);
    printf("getppid %s %s\n", name(s), s == DONE && ret == (uint64_t)getppid() ? "same" : "differs");
    /* Calls it must refuse (SLOW: nothing happened), whatever their arguments. */
    s = post(SYS_exit_group, 42, 0, 0, &ret);
    printf("exit_group %s\n", name(s));
    /* Opens: a read-only open of a file is answered (a descriptor); anything that
     * creates, writes or may wait or make a terminal is refused with nothing done
     * (no descriptor, no file). */
    s = post(SYS_openat, AT_FDCWD, (uint64_t) "/etc/passwd", O_RDONLY, &ret);
    printf("openat-read %s %s\n", name(s),
           s == DONE && (long)ret >= 0 && fcntl((int)ret, F_GETFD) == 0 && close((int)ret) == 0
               ? "open" : "none");
    mkfifo("/tmp/forged-fifo", 0600);
    static const struct {
        const char *what, *path;
        uint64_t flags;
    } refused[] = {
        {"openat-create", "/tmp/forged", O_WRONLY | O_CREAT},
        {"openat-rdwr", "/tmp/forged-fifo", O_RDWR},
        {"openat-fifo", "/tmp/forged-fifo", O_RDONLY},
        {"openat-proc", "/proc/self/status", O_RDONLY},
        {"openat-tty", "/dev/tty", O_RDONLY},
        {"openat-ptmx", "/dev/ptmx", O_RDONLY},
        {"openat-path", "/etc/passwd", O_PATH},
        {"openat-trunc", "/tmp/forged-fifo", O_RDONLY | O_TRUNC},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        int lowest = dup(0);
        close(lowest);
        s = post(SYS_openat, AT_FDCWD, (uint64_t)(uintptr_t)refused[i].path, refused[i].flags, &ret);
        int now = dup(0);
        close(now);
        printf("%s %s%s\n", refused[i].what, name(s), now == lowest ? "" : " left a descriptor");
    }
    printf("forged file %s\n", access("/tmp/forged", F_OK) == 0 ? "made" : "absent");
    /* Mappings: fresh anonymous memory is answered (usable at once); a mapping
     * fixed over the program's own memory, shared, executable or of a file is
     * refused, and what it would have replaced is untouched. */
    static volatile char victim[8192] __attribute__((aligned(4096))) = {42};
    static const struct {
        const char *what;
        uint64_t addr, prot, flags;
        int64_t fd;
    } maps[] = {
        {"mmap-anon-private", 0, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1},
        {"mmap-fixed", 0, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1},
        {"mmap-shared", 0, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1},
        {"mmap-exec", 0, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1},
        {"mmap-file", 0, PROT_READ, MAP_PRIVATE, 0},
        {"mmap-populate", 0, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1},
    };
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++) {
        uint64_t addr = maps[i].flags & MAP_FIXED ? (uint64_t)(uintptr_t)victim : maps[i].addr;
        s = post6(SYS_mmap, addr, 4096, maps[i].prot, maps[i].flags, (uint64_t)maps[i].fd, 0,
                  &ret);
        const char *use = "";
        if (s == DONE && (long)ret > 0) {
            volatile char *m = (volatile char *)(uintptr_t)ret;
            use = m[0] == 0 && (m[4095] = 9) == 9 && munmap((void *)(uintptr_t)ret, 4096) == 0 ? " usable" : " broken";
        }
        printf("%s %s%s\n", maps[i].what, name(s), use);
    }
    printf("victim %d\n", victim[0]);
    unlink("/tmp/forged-fifo");
    s = post(SYS_kill, 1, SIGKILL, 0, &ret);
    printf("kill %s\n", name(s));
    s = post(1000000, 0, 0, 0, &ret);
    printf("nr-1000000 %s\n", name(s));
    /* Buffers the thread must not write: the supervisor's half, the program's own
     * code (read-only), a page never touched. */
    int fd = open(self_path, O_RDONLY);
    s = post(SYS_pread64, fd, 0xffff800000000000UL, 64, &ret);
    printf("pread-kernel %s\n", name(s));
    s = post(SYS_pread64, fd, (uint64_t)(uintptr_t)forge, 64, &ret);
    printf("pread-text %s\n", name(s));
    char *fresh = malloc(8 << 20);
    s = post(SYS_pread64, fd, (uint64_t)(uintptr_t)(fresh + (4 << 20)), 64, &ret);
    printf("pread-untouched %s\n", name(s));
    s = post(SYS_pread64, 1 << 20, (uint64_t)(uintptr_t)&ret, 8, &ret);
    printf("pread-badfd %s\n", name(s));
    /* A signal mask read from or written to the supervisor's half or the program's
     * code: refused, the mask unchanged. */
    sigset_t before, after;
    sigprocmask(SIG_SETMASK, NULL, &before);
    s = post6(SYS_rt_sigprocmask, SIG_SETMASK, 0xffff800000000000UL, 0, 8, 0, 0, &ret);
    printf("sigmask-kernel %s\n", name(s));
    s = post6(SYS_rt_sigprocmask, SIG_BLOCK, (uint64_t)(uintptr_t)&before,
              (uint64_t)(uintptr_t)forge, 8, 0, 0, &ret);
    printf("sigmask-text %s\n", name(s));
    sigprocmask(SIG_SETMASK, NULL, &after);
    printf("sigmask %s\n", memcmp(&before, &after, 8) ? "changed" : "unchanged");
    /* close of a pipe (another task may wait on it) is refused; of a file, done. */
    int ends[2];
    if (pipe(ends) != 0)
        return 1;
    s = post(SYS_close, ends[0], 0, 0, &ret);
    printf("close-pipe %s %s\n", name(s), fcntl(ends[0], F_GETFD) == -1 ? "gone" : "open");
    int copy = dup(fd);
    s = post(SYS_close, copy, 0, 0, &ret);
    printf("close-file %s %s\n", name(s), s == DONE && ret == 0 && fcntl(copy, F_GETFD) == -1 ? "gone" : "open");
    /* Paths the thread must not fault in or read past: in an untouched page, and
     * running to the end of the mapped memory with no NUL. */
    static struct stat st;
    memset(&st, 0, sizeof st);
    s = post(SYS_newfstatat, AT_FDCWD, (uint64_t)(uintptr_t)(fresh + (6 << 20)),
             (uint64_t)(uintptr_t)&st, &ret);
    printf("stat-untouched-path %s\n", name(s));
    char *edge = (char *)(((uintptr_t)fresh + (1 << 20)) & ~4095UL);
    memset(edge, 'a', 4096);
    mprotect(edge + 4096, 4096, PROT_NONE);
    SLOT_ARGS[3] = 0;
    s = post(SYS_newfstatat, AT_FDCWD, (uint64_t)(uintptr_t)edge, (uint64_t)(uintptr_t)&st, &ret);
    printf("stat-unterminated-path %s\n", name(s));
    s = post(SYS_newfstatat, AT_FDCWD, (uint64_t)(uintptr_t) "/tmp", (uint64_t)(uintptr_t)&st, &ret);
    printf("stat-tmp %s %s\n", name(s), S_ISDIR(st.st_mode) ? "dir" : "?");
    /* States no stub writes, left for the thread: nothing must come of them. */
    for (uint32_t bad = TAKEN; bad < 1000; bad = bad * 7 + 1) {
        __atomic_store_n(SLOT, bad, __ATOMIC_SEQ_CST);
        for (int i = 0; i < 100; i++)
            getppid();
    }
    __atomic_store_n(SLOT, IDLE, __ATOMIC_SEQ_CST);
    /* A post whose arguments change while it waits: one answer, from one reading. */
    int consistent = 0;
    for (int i = 0; i < 200; i++) {
        getppid();
        *SLOT_NR = SYS_getpid;
        __atomic_store_n(SLOT, POSTED, __ATOMIC_SEQ_CST);
        *SLOT_NR = SYS_exit_group; /* too late or not: either is answered once */
        SLOT_ARGS[0] = 43;
        long spin = 0;
        while (__atomic_load_n(SLOT, __ATOMIC_SEQ_CST) < DONE && spin++ < 20000000)
            __builtin_ia32_pause();
        uint32_t st = __atomic_load_n(SLOT, __ATOMIC_SEQ_CST);
        uint32_t expect = POSTED;
        if (st == POSTED &&
            __atomic_compare_exchange_n(SLOT, &expect, IDLE, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            st = IDLE;
        if ((st == DONE && *SLOT_RET == (uint64_t)getpid()) || st == SLOW || st == IDLE)
            consistent++;
        __atomic_store_n(SLOT, IDLE, __ATOMIC_SEQ_CST);
    }
    printf("changed-posts %d/200\n", consistent);
    printf("alive\n");
    return 0;
}

static int forge_output(void) {
    warm();
    uint64_t ret = 0;
    static const char line[] = "forged-out\n";
    uint32_t s = post(SYS_write, 1, (uint64_t)(uintptr_t)line, sizeof line - 1, &ret);
    printf("write-stdout %s %ld\n", name(s), (long)ret);
    fflush(stdout);
    static const char a[] = "forged-", b[] = "vec\n";
    struct iovec iov[2] = {{(void *)a, sizeof a - 1}, {(void *)b, sizeof b - 1}};
    s = post(SYS_writev, 1, (uint64_t)(uintptr_t)iov, 2, &ret);
    printf("writev-stdout %s %ld\n", name(s), (long)ret);
    fflush(stdout);
    /* Buffers the thread must not take: in the supervisor's half, never mapped, too
     * many, a length no buffer has. */
    static const struct {
        const char *what;
        uint64_t base, len, cnt, array;
    } bad[] = {
        {"kernel", 0xffff800000001000UL, 4, 1, 0},
        {"unmapped", 0x10000UL, 4, 1, 0},
        {"array-unmapped", 0, 0, 1, 0x10000UL},
        {"too-many", 0, 1, 1000, 0},
        {"huge", 0, 1UL << 63, 1, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct iovec v = {bad[i].base ? (void *)(uintptr_t)bad[i].base : (void *)a,
                          bad[i].len};
        uint64_t arr = bad[i].array ? bad[i].array : (uint64_t)(uintptr_t)&v;
        s = post(SYS_writev, 1, arr, bad[i].cnt, &ret);
        printf("writev-%s %s\n", bad[i].what, name(s));
        fflush(stdout);
    }
    /* isatty and a terminal's size, of stdout (no terminal): answered, ENOTTY. */
    struct winsize ws;
    s = post(SYS_ioctl, 1, TIOCGWINSZ, (uint64_t)(uintptr_t)&ws, &ret);
    printf("winsize-stdout %s %ld\n", name(s), (long)ret);
    fflush(stdout);
    static char big[200];
    memset(big, 'x', sizeof big);
    s = post(SYS_write, 1, (uint64_t)(uintptr_t)big, sizeof big, &ret);
    printf("write-over %s\n", name(s));
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    self_path = argv[0];
    if (argc > 2)
        base = argv[2];
    if (!strcmp(argv[1], "integrity"))
        return integrity();
    if (!strcmp(argv[1], "signal"))
        return signal_mode();
    if (!strcmp(argv[1], "forever"))
        for (;;) {
            getppid();         /* answered by the thread */
            syscall(SYS_sched_yield); /* sent back to the exit path */
        }
    if (!strcmp(argv[1], "forge"))
        return forge();
    if (!strcmp(argv[1], "forge-output"))
        return forge_output();
    return 2;
}
