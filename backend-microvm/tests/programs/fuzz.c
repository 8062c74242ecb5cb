/* Calls syscalls with random arguments (seed argv[1], count argv[2]): valid and wild
 * pointers, odd lengths and flags. Calls that would end or block the run, or break
 * the program's own state (memory map, TLS, signals), are skipped. The VMM must
 * answer every call with a result or an error, never crash. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static uint64_t s;
static uint64_t rnd(void) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

static char scratch[65536];

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
    long calls = 0;
    for (long i = 0; i < n; i++) {
        long nr = rnd() % 470;
        if (skipped(nr))
            continue;
        syscall(nr, arg(), arg(), arg(), arg(), arg(), arg());
        calls++;
    }
    printf("made %ld calls\n", calls);
    return 0;
}
