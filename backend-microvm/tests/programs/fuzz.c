/* Calls syscalls with random arguments (seed argv[1], count argv[2], mode argv[3]):
 * valid and wild pointers, odd lengths and flags. Mode "any" (default) skips calls
 * that would end or block the run or break the program's own state (memory map, TLS,
 * signals); mode "mm" makes only memory calls, aimed mostly at a reserved region;
 * mode "io" makes only I/O calls on the descriptors it opened; mode "proc" makes
 * processes, threads-like clones, waits, pipes and signals with wild arguments, its
 * children making random calls of their own. The VMM must answer
 * every call with a result or an error, never crash; the program may well crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>

static uint64_t s;
static uint64_t rnd(void) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static char scratch[65536];
static char *region;
#define REGION (64ul << 20)

static long region_arg(void) {
    switch (rnd() % 6) {
    case 0: return (long)(region + (rnd() % (REGION / 4096)) * 4096);
    case 1: return (long)(rnd() % (REGION / 4096) * 4096 + 1);
    case 2: return (long)(4096 * (1 + rnd() % 64));
    case 3: return (long)(rnd() % 8); /* prot / flags */
    case 4: return (long)(region + REGION - 4096);
    default: return (long)rnd() >> (rnd() % 64);
    }
}

static long arg(void) {
    static const long fixed[] = {0, 1, -1, 2, 3, 4096, 0x7fffffff, -100 /* AT_FDCWD */};
    switch (rnd() % 10) {
    case 0: return fixed[rnd() % 8];
    case 1: return (long)rnd() % 64;
    case 2: return (long)(scratch + rnd() % sizeof scratch);
    case 3: return (long)"/tmp/fuzz";
    case 4: return (long)0xdead0000ul;
    case 5: return (long)0xffffffffff600000ul;
    case 6: return (long)0x7ffffffff000ul;
    case 7: return (long)(UINT64_MAX - rnd() % 16);
    case 8: return 1l << (rnd() % 63);
    default: return (long)rnd();
    }
}

static int skipped(long nr) {
    switch (nr) {
    case SYS_exit: case SYS_exit_group: case SYS_rt_sigreturn: case SYS_kill: case SYS_tgkill:
    case SYS_tkill: case SYS_munmap: case SYS_mprotect: case SYS_mremap: case SYS_brk: case SYS_mmap:
    case SYS_madvise: case SYS_pause: case SYS_rt_sigsuspend: case SYS_nanosleep:
    case SYS_clock_nanosleep: case SYS_select: case SYS_pselect6: case SYS_poll: case SYS_ppoll:
    case SYS_futex: case SYS_arch_prctl: case SYS_rt_sigaction: case SYS_rt_sigprocmask:
    case SYS_read: case SYS_readv: case SYS_preadv: case SYS_pread64: case SYS_sigaltstack:
    case SYS_set_tid_address: case SYS_prlimit64: case SYS_setrlimit: case SYS_alarm:
    case SYS_dup2: case SYS_dup3: case SYS_close: case SYS_write: case SYS_writev: case SYS_pwritev:
    case SYS_sendfile: case SYS_execve: case SYS_execveat: case SYS_clone: case SYS_clone3:
    case SYS_fork: case SYS_vfork: case SYS_wait4: case SYS_waitid: case SYS_rt_sigtimedwait:
    case SYS_epoll_wait: case SYS_epoll_pwait: case SYS_epoll_pwait2: case SYS_pwrite64:
    case SYS_ftruncate: case SYS_truncate: case SYS_fallocate:
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    s = argc > 1 ? strtoull(argv[1], 0, 10) * 2654435761u + 1 : 88172645463325252ull;
    long n = argc > 2 ? atol(argv[2]) : 2000;
    const char *mode = argc > 3 ? argv[3] : "any";
    long calls = 0;
    region = (char *)syscall(SYS_mmap, 0, REGION, 0, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (!strcmp(mode, "mm")) {
        static const long mm[] = {SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise, SYS_mincore, SYS_msync, SYS_brk};
        for (long i = 0; i < n; i++) {
            long nr = mm[rnd() % 8];
            long a[6];
            for (int k = 0; k < 6; k++)
                a[k] = rnd() % 4 ? region_arg() : arg();
            if (nr != SYS_mmap && nr != SYS_brk) {
                /* Stay inside the region: the program's own mappings must survive. */
                a[0] = (long)(region + (rnd() % (REGION / 4096)) * 4096);
                a[1] = (long)((unsigned long)a[1] % (REGION - ((char *)a[0] - region)));
            }
            if (nr == SYS_brk)
                a[0] = 0;
            if (nr == SYS_mmap && rnd() % 2)
                a[3] = MAP_PRIVATE | MAP_ANONYMOUS | (rnd() % 2 ? MAP_FIXED : 0);
            long r = syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
            /* Touch what was mapped now and then. */
            if (nr == SYS_mmap && r > 0 && (unsigned long)r >= (unsigned long)region &&
                (unsigned long)r < (unsigned long)region + REGION && (a[2] & PROT_WRITE))
                *(volatile char *)r = 1;
            calls++;
        }
    } else if (!strcmp(mode, "io")) {
        int fds[4] = {0, open("/tmp/fuzz", O_RDWR | O_CREAT, 0600), open("/dev/null", O_RDWR), open("/tmp", O_RDONLY)};
        static const long io[] = {SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_readv, SYS_writev,
                                  SYS_lseek, SYS_getdents64, SYS_fstat, SYS_ftruncate, SYS_sendfile, SYS_fcntl,
                                  SYS_ioctl, SYS_dup, SYS_fallocate, SYS_fsync};
        for (long i = 0; i < n; i++) {
            long nr = io[rnd() % 16];
            long fd = fds[rnd() % 4];
            long len = rnd() % 3 ? (long)(rnd() % 8192) : arg();
            syscall(nr, fd, rnd() % 2 ? (long)(scratch + rnd() % 4096) : arg(), len, arg(), arg(), arg());
            calls++;
        }
    } else if (!strcmp(mode, "proc")) {
        signal(SIGUSR1, SIG_IGN);
        signal(SIGCHLD, SIG_DFL);
        for (long i = 0; i < n / 10; i++) {
            switch (rnd() % 8) {
            case 0:
            case 1: {
                pid_t c = fork();
                if (c == 0) {
                    for (int k = 0; k < 20; k++) {
                        long nr = rnd() % 470;
                        if (!skipped(nr))
                            syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
                    }
                    _exit((int)(rnd() % 256));
                }
                break;
            }
            case 2:
                syscall(SYS_wait4, rnd() % 2 ? -1 : (long)(rnd() % 64), rnd() % 2 ? (long)scratch : arg(), (long)(rnd() % 4 ? 1 : 0), arg());
                break;
            case 3:
                syscall(SYS_kill, (long)(rnd() % 2 ? 0 : rnd() % 64), (long)(rnd() % 2 ? SIGUSR1 : SIGCHLD));
                break;
            case 4: {
                int p[2];
                if (pipe(p) == 0) {
                    if (rnd() % 2) write(p[1], scratch, rnd() % 100);
                    close(p[0]);
                    close(p[1]);
                }
                break;
            }
            case 5:
                syscall(SYS_setpgid, (long)(rnd() % 64), (long)(rnd() % 64));
                break;
            case 6:
                syscall(SYS_futex, (long)(scratch + (rnd() % 64) * 4), (long)(rnd() % 2 ? 1 : 129), (long)(rnd() % 4), 0, 0, 0);
                break;
            default:
                syscall(SYS_waitid, (long)(rnd() % 3), (long)(rnd() % 64), rnd() % 2 ? (long)scratch : arg(), (long)(4 | 1), 0);
                break;
            }
            calls++;
        }
        while (wait(NULL) > 0) {
        }
    } else {
        for (long i = 0; i < n; i++) {
            long nr = rnd() % 470;
            if (skipped(nr))
                continue;
            syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
            calls++;
        }
    }
    printf("made %ld calls\n", calls);
    return 0;
}
