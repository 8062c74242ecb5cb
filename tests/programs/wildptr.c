/* Wild pointers, huge lengths and overlapping buffers across the syscall families a
 * sandbox answers (files, paths, I/O vectors, pipes and sockets, polling, memory,
 * signals, time, identity, limits, processes). Each call is made raw (syscall(2): no
 * vDSO, no libc checks) and compared with what Linux answers: prints "ok NAME" or
 * "BAD NAME rc=.. errno=.." and finally "done N checks". Run in both backends: the
 * container's answers are the host kernel's, so the expectations are Linux's own.
 *
 * Bad pointers: an upper-half (kernel) address, a non-canonical one, address 1, an
 * unmapped guard page, and, for buffers the kernel writes, a read-only page. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define KERNEL ((void *)0xffff800000000000UL)
#define NONCANON ((void *)0x0000800000000000UL)
#define ONE ((void *)1)

static int checks, bad;
static char *guard, *ro, *rw;

static void report(const char *name, int ok, long rc, int err) {
    checks++;
    if (ok) {
        printf("ok %s\n", name);
    } else {
        bad++;
        printf("BAD %s rc=%ld errno=%d\n", name, rc, err);
    }
}

/* The call fails with one of the errnos listed (terminated by 0). */
static void fails(const char *name, long rc, ...) {
    int err = errno;
    int ok = 0;
    va_list ap;
    va_start(ap, rc);
    for (int e = va_arg(ap, int); e; e = va_arg(ap, int))
        if (rc == -1 && err == e) ok = 1;
    va_end(ap);
    report(name, ok, rc, err);
}

#define EFAULT_ONLY(name, expr) do { errno = 0; long _r = (expr); fails(name, _r, EFAULT, 0); } while (0)
/* `expr` uses `P`: tried with every pointer in the list. */
#define EACH(name, list, expr) do { \
        void *_ps[] = list; \
        for (unsigned _i = 0; _i < sizeof _ps / sizeof *_ps; _i++) { \
            void *P = _ps[_i]; char _n[96]; \
            snprintf(_n, sizeof _n, "%s[%u]", name, _i); \
            EFAULT_ONLY(_n, (long)(expr)); \
        } \
    } while (0)
#define READS {KERNEL, NONCANON, ONE, guard}
#define WRITES {KERNEL, NONCANON, ONE, guard, ro}
#define ALIGNED {KERNEL, NONCANON, guard}

int main(int argc, char **argv) {
    (void)argv;
    /* A wrongly successful execve below would start over without arguments. */
    if (argc == 0) return 5;
    long pg = sysconf(_SC_PAGESIZE);
    rw = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (rw == MAP_FAILED) return 3;
    guard = rw + pg;
    munmap(guard, pg);
    ro = rw + 2 * pg;
    mprotect(ro, pg, PROT_READ);
    char *buf = rw;
    int zero = open("/dev/zero", O_RDONLY);
    int p[2], sv[2];
    if (zero < 0 || pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 4;
    int tmp = open("/tmp", O_TMPFILE | O_RDWR, 0600);
    if (tmp < 0) tmp = open("/tmp/wildptr.tmp", O_CREAT | O_RDWR | O_TRUNC, 0600);
    int dir = open("/", O_RDONLY | O_DIRECTORY);
    int ep = syscall(SYS_epoll_create1, 0);
    int efd = eventfd(1, EFD_NONBLOCK);
    uint64_t one = 1;
    struct timespec ts0 = {0, 0};

    /* Files and I/O: the kernel writes to the buffer, or reads from it. */
    EACH("read", WRITES, syscall(SYS_read, zero, P, 16));
    EACH("pread64", WRITES, syscall(SYS_pread64, zero, P, 16, 0));
    EACH("readv-iov", READS, syscall(SYS_readv, zero, P, 1));
    EACH("readv-base", WRITES, ({ struct iovec v = {P, 16}; syscall(SYS_readv, zero, &v, 1); }));
    EACH("preadv-base", WRITES, ({ struct iovec v = {P, 16}; syscall(SYS_preadv, zero, &v, 1, 0, 0); }));
    EACH("write", READS, syscall(SYS_write, p[1], P, 16));
    EACH("pwrite64", READS, syscall(SYS_pwrite64, tmp, P, 16, 0));
    EACH("writev-iov", READS, syscall(SYS_writev, p[1], P, 1));
    EACH("writev-base", READS, ({ struct iovec v = {P, 16}; syscall(SYS_writev, p[1], &v, 1); }));
    EACH("fstat", WRITES, syscall(SYS_fstat, zero, P));
    EACH("newfstatat-buf", WRITES, syscall(SYS_newfstatat, AT_FDCWD, "/", P, 0));
    EACH("statx-buf", WRITES, syscall(SYS_statx, AT_FDCWD, "/", 0, 0xfff, P));
    EACH("statfs-buf", WRITES, syscall(SYS_statfs, "/", P));
    EACH("fstatfs-buf", WRITES, syscall(SYS_fstatfs, dir, P));
    EACH("getdents64", WRITES, syscall(SYS_getdents64, dir, P, 4096));
    EACH("getcwd", WRITES, syscall(SYS_getcwd, P, 256));
    EACH("readlink-buf", WRITES, syscall(SYS_readlink, "/proc/self/exe", P, 256));
    {
        /* A buffer that runs into the guard page: Linux copies up to the hole. */
        errno = 0;
        long r = syscall(SYS_read, zero, guard - 8, 16);
        report("read-into-guard", r == 8 || (r == -1 && errno == EFAULT), r, errno);
    }

    /* Paths: the kernel reads a string. */
    EACH("open", READS, syscall(SYS_open, P, O_RDONLY));
    EACH("openat", READS, syscall(SYS_openat, AT_FDCWD, P, O_RDONLY));
    EACH("newfstatat-path", READS, syscall(SYS_newfstatat, AT_FDCWD, P, buf, 0));
    EACH("access", READS, syscall(SYS_access, P, F_OK));
    EACH("mkdir", READS, syscall(SYS_mkdir, P, 0700));
    EACH("unlink", READS, syscall(SYS_unlink, P));
    EACH("rename-from", READS, syscall(SYS_rename, P, "/tmp/wildptr-x"));
    EACH("rename-to", READS, syscall(SYS_rename, "/tmp", P));
    EACH("symlink-target", READS, syscall(SYS_symlink, P, "/tmp/wildptr-l"));
    EACH("chdir", READS, syscall(SYS_chdir, P));
    EACH("chmod", READS, syscall(SYS_chmod, P, 0600));
    EACH("truncate", READS, syscall(SYS_truncate, P, 0));
    EACH("utimensat-times", READS, syscall(SYS_utimensat, AT_FDCWD, "/tmp", P, 0));
    EACH("execve-path", READS, syscall(SYS_execve, P, NULL, NULL));
    EACH("execve-argv", READS, syscall(SYS_execve, "/proc/self/exe", P, NULL));
    EACH("execve-argv0", READS, ({ char *a[] = {P, NULL}; syscall(SYS_execve, "/proc/self/exe", a, NULL); }));
    /* A path that runs into the guard page without its NUL. */
    memset(guard - 64, 'a', 64);
    EFAULT_ONLY("open-into-guard", syscall(SYS_open, guard - 64, O_RDONLY));
    {
        char *longp = malloc(8192);
        memset(longp, 'a', 8191);
        longp[8191] = 0;
        errno = 0;
        long r = syscall(SYS_open, longp, O_RDONLY);
        fails("open-path-too-long", r, ENAMETOOLONG, 0);
        free(longp);
    }

    /* Pipes, sockets, polling. */
    EACH("pipe2", WRITES, syscall(SYS_pipe2, P, 0));
    EACH("socketpair", WRITES, syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, P));
    EACH("sendto", READS, syscall(SYS_sendto, sv[0], P, 16, 0, NULL, 0));
    EACH("sendmsg", READS, syscall(SYS_sendmsg, sv[0], P, 0));
    EACH("recvmsg", READS, syscall(SYS_recvmsg, sv[1], P, MSG_DONTWAIT));
    EACH("getsockopt-val", WRITES, ({ socklen_t l = 4; syscall(SYS_getsockopt, sv[0], SOL_SOCKET, SO_TYPE, P, &l); }));
    EACH("getsockopt-len", WRITES, syscall(SYS_getsockopt, sv[0], SOL_SOCKET, SO_TYPE, buf, P));
    EACH("poll", READS, syscall(SYS_poll, P, 1, 0));
    EACH("ppoll", READS, syscall(SYS_ppoll, P, 1, &ts0, NULL, 8));
    EACH("select", READS, ({ struct timeval tv = {0, 0}; syscall(SYS_select, 1, P, NULL, NULL, &tv); }));
    EACH("epoll_ctl", READS, syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, efd, P));
    {
        struct epoll_event ev = {.events = EPOLLIN};
        syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, efd, &ev);
    }
    EACH("epoll_wait", WRITES, syscall(SYS_epoll_wait, ep, P, 1, 0));
    EACH("eventfd-read", WRITES, (write(efd, &one, 8), syscall(SYS_read, efd, P, 8)));

    /* Memory. */
    EACH("mincore-vec", WRITES, syscall(SYS_mincore, rw, pg, P));
    EACH("futex-wait", ALIGNED, syscall(SYS_futex, P, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0));
    EACH("getrandom", WRITES, syscall(SYS_getrandom, P, 16, 0));

    /* Signals. */
    EACH("rt_sigaction-act", READS, syscall(SYS_rt_sigaction, SIGUSR1, P, NULL, 8));
    EACH("rt_sigaction-old", WRITES, syscall(SYS_rt_sigaction, SIGUSR1, NULL, P, 8));
    EACH("rt_sigprocmask-set", READS, syscall(SYS_rt_sigprocmask, SIG_BLOCK, P, NULL, 8));
    EACH("rt_sigprocmask-old", WRITES, syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, P, 8));
    EACH("rt_sigpending", WRITES, syscall(SYS_rt_sigpending, P, 8));
    EACH("sigaltstack-new", READS, syscall(SYS_sigaltstack, P, NULL));
    EACH("rt_sigtimedwait-set", READS, syscall(SYS_rt_sigtimedwait, P, NULL, &ts0, 8));

    /* Time. */
    EACH("clock_gettime", WRITES, syscall(SYS_clock_gettime, CLOCK_MONOTONIC, P));
    EACH("clock_getres", WRITES, syscall(SYS_clock_getres, CLOCK_MONOTONIC, P));
    EACH("gettimeofday", WRITES, syscall(SYS_gettimeofday, P, NULL));
    EACH("nanosleep", READS, syscall(SYS_nanosleep, P, NULL));
    EACH("clock_nanosleep", READS, syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, P, NULL));
    EACH("getitimer", WRITES, syscall(SYS_getitimer, ITIMER_REAL, P));
    EACH("setitimer-old", WRITES, ({ struct itimerval z = {{0, 0}, {0, 0}}; syscall(SYS_setitimer, ITIMER_REAL, &z, P); }));
    EACH("times", WRITES, syscall(SYS_times, P));

    /* Identity, limits, system. */
    EACH("uname", WRITES, syscall(SYS_uname, P));
    EACH("sysinfo", WRITES, syscall(SYS_sysinfo, P));
    EACH("getrusage", WRITES, syscall(SYS_getrusage, RUSAGE_SELF, P));
    EACH("getrlimit", WRITES, syscall(SYS_getrlimit, RLIMIT_NOFILE, P));
    EACH("prlimit64-new", READS, syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, P, NULL));
    EACH("prlimit64-old", WRITES, syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, P));
    EACH("getresuid", WRITES, syscall(SYS_getresuid, P, P, P));
    EACH("sched_getaffinity", WRITES, syscall(SYS_sched_getaffinity, 0, 128, P));
    EACH("arch_prctl-get-fs", WRITES, syscall(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, P));
    EACH("prctl-set-name", READS, syscall(SYS_prctl, PR_SET_NAME, P, 0, 0, 0));

    /* Processes: a child that exits, reaped with a bad status pointer. */
    {
        void *ps[] = WRITES;
        for (unsigned i = 0; i < sizeof ps / sizeof *ps; i++) {
            pid_t c = fork();
            if (c == 0) _exit(7);
            char n[64];
            snprintf(n, sizeof n, "wait4-status[%u]", i);
            errno = 0;
            long r = syscall(SYS_wait4, c, ps[i], 0, NULL);
            fails(n, r, EFAULT, 0);
            while (waitpid(c, NULL, 0) > 0) {}
        }
    }

    /* Huge lengths and counts. */
    errno = 0; fails("readv-iovcnt-huge", syscall(SYS_readv, zero, buf, 1 << 20), EINVAL, 0);
    {
        /* A length that is negative as ssize_t. */
        struct iovec v[2] = {{buf, 1}, {buf, SIZE_MAX}};
        errno = 0; fails("writev-len-negative", syscall(SYS_writev, p[1], v, 2), EINVAL, 0);
    }
    errno = 0; fails("poll-nfds-huge", syscall(SYS_poll, buf, 1UL << 30, 0), EINVAL, 0);
    errno = 0; fails("epoll_wait-maxevents-huge", syscall(SYS_epoll_wait, ep, buf, 1 << 30, 0), EINVAL, 0);
    errno = 0; fails("select-nfds-negative", syscall(SYS_select, -1, NULL, NULL, NULL, NULL), EINVAL, 0);
    errno = 0; fails("mmap-len-huge", syscall(SYS_mmap, 0, SIZE_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), ENOMEM, 0);
    errno = 0; fails("mmap-len-zero", syscall(SYS_mmap, 0, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), EINVAL, 0);
    errno = 0; fails("mmap-fixed-kernel", syscall(SYS_mmap, KERNEL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0), ENOMEM, EINVAL, 0);
    errno = 0; fails("munmap-kernel", syscall(SYS_munmap, KERNEL, pg), EINVAL, 0);
    errno = 0; fails("munmap-len-wraps", syscall(SYS_munmap, rw, SIZE_MAX - 4095), EINVAL, 0);
    errno = 0; fails("mprotect-kernel", syscall(SYS_mprotect, KERNEL, pg, PROT_READ), ENOMEM, EINVAL, 0);
    errno = 0; fails("mprotect-unaligned", syscall(SYS_mprotect, rw + 1, pg, PROT_READ), EINVAL, 0);
    errno = 0; fails("madvise-kernel", syscall(SYS_madvise, KERNEL, pg, MADV_DONTNEED), EINVAL, ENOMEM, 0);
    errno = 0; fails("mremap-kernel", syscall(SYS_mremap, KERNEL, pg, 2 * pg, MREMAP_MAYMOVE), EFAULT, EINVAL, 0);
    errno = 0; fails("pread64-offset-negative", syscall(SYS_pread64, zero, buf, 16, -1L), EINVAL, 0);
    errno = 0; fails("readlink-bufsiz-zero", syscall(SYS_readlink, "/proc/self/exe", buf, 0), EINVAL, 0);
    errno = 0; fails("truncate-length-negative", syscall(SYS_truncate, "/tmp", -1L), EINVAL, EISDIR, 0);
    errno = 0; fails("sched_getaffinity-len-small", syscall(SYS_sched_getaffinity, 0, 3, buf), EINVAL, 0);
    {
        struct rlimit r = {10, 5};
        errno = 0; fails("setrlimit-soft-over-hard", syscall(SYS_setrlimit, RLIMIT_NOFILE, &r), EINVAL, 0);
    }
    {
        char name[300];
        memset(name, 'n', sizeof name - 1);
        name[sizeof name - 1] = 0;
        errno = 0; fails("memfd_create-name-long", syscall(SYS_memfd_create, name, 0), EINVAL, 0);
    }
    {
        struct msghdr m = {0};
        struct iovec v = {buf, 1};
        m.msg_iov = &v;
        m.msg_iovlen = 1 << 20;
        errno = 0; fails("sendmsg-iovlen-huge", syscall(SYS_sendmsg, sv[0], &m, 0), EMSGSIZE, 0);
    }

    /* Overlapping buffers: Linux copies its arguments in before it writes back. */
    {
        /* The I/O vector lies inside the buffer it reads into. */
        write(p[1], "0123456789abcdef0123456789abcdef", 32);
        struct iovec *v = (struct iovec *)buf;
        v[0].iov_base = buf;
        v[0].iov_len = 32;
        long r = syscall(SYS_readv, p[0], v, 1);
        report("readv-iov-in-its-buffer", r == 32 && !memcmp(buf, "0123456789abcdef0123456789abcdef", 32), r, errno);
    }
    {
        /* The I/O vector writes its own bytes. */
        struct iovec *v = (struct iovec *)buf;
        v[0].iov_base = buf;
        v[0].iov_len = sizeof *v;
        long r = syscall(SYS_writev, p[1], v, 1);
        char back[sizeof *v];
        long n = read(p[0], back, sizeof back);
        report("writev-iov-writes-itself", r == (long)sizeof *v && n == r && !memcmp(back, v, sizeof back), r, errno);
    }
    {
        /* The new mask and the old one in the same place. */
        uint64_t *m = (uint64_t *)buf;
        sigset_t cur;
        sigprocmask(SIG_SETMASK, NULL, &cur);
        uint64_t before;
        memcpy(&before, &cur, 8);
        *m = before | (1UL << (SIGUSR2 - 1));
        long r = syscall(SYS_rt_sigprocmask, SIG_SETMASK, m, m, 8);
        sigprocmask(SIG_SETMASK, NULL, &cur);
        uint64_t after;
        memcpy(&after, &cur, 8);
        report("rt_sigprocmask-set-is-old", r == 0 && *m == before && (after & (1UL << (SIGUSR2 - 1))), r, errno);
        sigprocmask(SIG_UNBLOCK, &(sigset_t){{1UL << (SIGUSR2 - 1)}}, NULL);
    }
    {
        /* getsockopt's value and length in the same place. */
        socklen_t *l = (socklen_t *)buf;
        *l = sizeof(int);
        long r = syscall(SYS_getsockopt, sv[0], SOL_SOCKET, SO_TYPE, l, l);
        report("getsockopt-val-is-len", r == 0, r, errno);
    }
    {
        /* sendmsg whose data is its own header. */
        struct msghdr *m = (struct msghdr *)buf;
        struct iovec *v = (struct iovec *)(buf + 256);
        memset(m, 0, sizeof *m);
        v->iov_base = m;
        v->iov_len = sizeof *m;
        m->msg_iov = v;
        m->msg_iovlen = 1;
        long r = syscall(SYS_sendmsg, sv[0], m, 0);
        char back[sizeof *m];
        long n = read(sv[1], back, sizeof back);
        report("sendmsg-sends-its-header", r == (long)sizeof *m && n == r, r, errno);
    }
    {
        /* wait4's status and rusage overlapping. */
        pid_t c = fork();
        if (c == 0) _exit(9);
        long r = syscall(SYS_wait4, c, buf + 8, 0, buf);
        report("wait4-status-in-rusage", r == c, r, errno);
    }

    printf("done %d checks, %d bad\n", checks, bad);
    return 0;
}
