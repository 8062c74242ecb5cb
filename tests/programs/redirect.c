/* Redirected syscall sites in the micro-VM (backend-microvm/src/redirect.rs), tried by a
 * dynamically linked program on the C library's own `getppid` (`mov $110, %eax;
 * syscall; ret`), natively and in the VM alike: what it prints must be the same, but
 * for the "site" line (natively the site stays as it is).
 *
 *   redirect calls     every register and flag but rax, rcx, r11 comes back as it was;
 *                      rcx and r11 hold what `syscall` leaves there; a jump straight to
 *                      the `syscall` instruction makes the call eax names; a forked
 *                      child, a signal handler and a single-stepped call get the
 *                      right answers
 *   redirect rewrite   the program makes its own code writable, finds its own bytes
 *                      there, changes the call's number and gets the new call
 *   redirect forge     the user-mode entry entered by hand: a bad continuation is the
 *                      process's SIGSEGV, a call the entry does not answer itself goes
 *                      through the exit path and does what it says
 *   redirect warmpass  the stub's warming pass (warm.rs) entered by hand: it touches
 *                      the workload's own pages without changing a byte, cannot reach
 *                      the supervisor's nor write a read-only page (SIGSEGV), and its
 *                      doorbell, rung by the workload, is a plain syscall
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static unsigned char *site(void) { return (unsigned char *)(void *)getppid; }

static void fail(const char *what) {
    printf("FAIL %s\n", what);
    exit(1);
}

/* Calls until the VM has had its chance to redirect the site; prints what it is. */
static void warm(void) {
    long s = 0;
    for (int i = 0; i < 20000; i++)
        s += getppid();
    if (s != 20000L * getppid())
        fail("getppid changed while warming");
    printf("site %s\n", site()[0] == 0xe9 ? "redirected" : "as built");
}

struct regs {
    uint64_t rbx, rbp, r12, r13, r14, r15, rdi, rsi, rdx, r8, r9, r10, rax, rcx, r11, flags;
};

/* Calls `fn` (a function whose first instruction may have been redirected) with every
 * register set to a known value and the status flags and DF set, and saves what comes
 * back. The red zone is stepped over before the call. */
static void call_with(void *fn, uint64_t nr, struct regs *out, uint64_t *ret_at) {
    __asm__ volatile(
        "push %%rbx\n push %%rbp\n push %%r12\n push %%r13\n push %%r14\n push %%r15\n"
        "push %[out]\n"
        "sub $128, %%rsp\n"
        "mov %[fn], %%r11\n"
        "mov %[nr], %%rax\n"
        "mov $0x1111111111111111, %%rbx\n"
        "mov $0x2222222222222222, %%rbp\n"
        "mov $0x3333333333333333, %%r12\n"
        "mov $0x4444444444444444, %%r13\n"
        "mov $0x5555555555555555, %%r14\n"
        "mov $0x6666666666666666, %%r15\n"
        "mov $0x7777777777777777, %%rdi\n"
        "mov $0x8888888888888888, %%rsi\n"
        "mov $0x9999999999999999, %%rdx\n"
        "mov $0xaaaaaaaaaaaaaaaa, %%r8\n"
        "mov $0xbbbbbbbbbbbbbbbb, %%r9\n"
        "mov $0xcccccccccccccccc, %%r10\n"
        /* CF, PF, ZF, SF, OF and DF set. */
        "pushf\n orq $0xcc5, (%%rsp)\n popf\n"
        "call *%%r11\n"
        "pushf\n"
        "cld\n"
        "mov 136(%%rsp), %%r11\n" /* out (136 = 128 + the pushed flags) */
        "pop 120(%%r11)\n"        /* flags */
        "mov %%rbx, 0(%%r11)\n mov %%rbp, 8(%%r11)\n mov %%r12, 16(%%r11)\n"
        "mov %%r13, 24(%%r11)\n mov %%r14, 32(%%r11)\n mov %%r15, 40(%%r11)\n"
        "mov %%rdi, 48(%%r11)\n mov %%rsi, 56(%%r11)\n mov %%rdx, 64(%%r11)\n"
        "mov %%r8, 72(%%r11)\n mov %%r9, 80(%%r11)\n mov %%r10, 88(%%r11)\n"
        "mov %%rax, 96(%%r11)\n mov %%rcx, 104(%%r11)\n"
        "add $128, %%rsp\n"
        "pop %%r11\n"
        "pop %%r15\n pop %%r14\n pop %%r13\n pop %%r12\n pop %%rbp\n pop %%rbx\n"
        :
        : [fn] "r"(fn), [nr] "r"(nr), [out] "r"(out)
        : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc");
    *ret_at = (uint64_t)fn + 7;
}

static volatile long handler_bad, handler_calls, traps;

static void on_trap(int sig) {
    (void)sig;
    traps++;
}

static void on_alarm(int sig) {
    (void)sig;
    handler_calls++;
    if (getppid() != (pid_t)syscall(SYS_getppid))
        handler_bad++;
}

static int calls(void) {
    warm();
    struct regs r;
    uint64_t ret_at;
    memset(&r, 0, sizeof r);
    call_with(site(), SYS_getppid, &r, &ret_at);
    const uint64_t want[12] = {0x1111111111111111, 0x2222222222222222, 0x3333333333333333,
                               0x4444444444444444, 0x5555555555555555, 0x6666666666666666,
                               0x7777777777777777, 0x8888888888888888, 0x9999999999999999,
                               0xaaaaaaaaaaaaaaaa, 0xbbbbbbbbbbbbbbbb, 0xcccccccccccccccc};
    const uint64_t *got = &r.rbx;
    for (int i = 0; i < 12; i++)
        if (got[i] != want[i]) {
            printf("register %d: %#lx\n", i, (unsigned long)got[i]);
            fail("a register changed");
        }
    if ((pid_t)r.rax != getppid())
        fail("the answer");
    if (r.rcx != ret_at)
        fail("rcx is not the syscall's end");
    if ((r.flags & 0xcd5) != 0xcc5)
        fail("the flags changed");
    /* syscall leaves the flags in r11 (RF and the reserved bit aside). */
    printf("registers kept\n");

    /* A jump to the `syscall` instruction itself makes the call eax names. */
    call_with(site() + 5, SYS_getpid, &r, &ret_at);
    if ((pid_t)r.rax != getpid())
        fail("a jump to the syscall instruction");
    printf("jump to the syscall instruction: getpid\n");

    /* A forked child runs the same code. */
    pid_t parent = getpid();
    pid_t c = fork();
    if (c == 0) {
        for (int i = 0; i < 20000; i++)
            if (getppid() != parent)
                _exit(3);
        _exit(0);
    }
    int st;
    if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the forked child's getppid");
    printf("forked child ok\n");

    /* Signals in the middle of calls. */
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 500}, {0, 500}};
    setitimer(ITIMER_REAL, &it, NULL);
    pid_t pp = getppid();
    long bad = 0;
    for (long i = 0; i < 400000 && handler_calls < 50; i++)
        if (getppid() != pp)
            bad++;
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    if (bad || handler_bad)
        fail("getppid under signals");
    printf("signals ok (%s)\n", handler_calls > 0 ? "handled" : "none came");

    /* Single-stepping (TF set) through calls: the process traps in its own code,
     * never inside the call, and gets the right answers. */
    signal(SIGTRAP, on_trap);
    long sum = 0;
    for (int i = 0; i < 3; i++) {
        __asm__ volatile("pushf\n orq $0x100, (%%rsp)\n popf\n" ::: "memory", "cc");
        sum += getppid();
        __asm__ volatile("pushf\n andq $~0x100, (%%rsp)\n popf\n" ::: "memory", "cc");
    }
    if (sum != 3L * pp || traps == 0)
        fail("single-stepping through calls");
    printf("single-stepped through calls\n");
    return 0;
}

static int rewrite(void) {
    warm();
    unsigned char *p = site();
    long page = sysconf(_SC_PAGESIZE);
    void *base = (void *)((uintptr_t)p & ~(uintptr_t)(page - 1));
    if (mprotect(base, 2 * page, PROT_READ | PROT_WRITE | PROT_EXEC))
        fail("mprotect");
    printf("own bytes: %02x %02x %02x %02x %02x %02x %02x\n", p[0], p[1], p[2], p[3], p[4],
           p[5], p[6]);
    /* getppid's code now makes getpid. */
    p[1] = SYS_getpid;
    long got = getppid();
    p[1] = SYS_getppid;
    if (mprotect(base, 2 * page, PROT_READ | PROT_EXEC))
        fail("mprotect back");
    if (got != getpid())
        fail("the rewritten call");
    printf("rewritten call made getpid\n");
    if (getppid() == getpid())
        fail("after writing the code back");
    printf("written back\n");
    return 0;
}

/* The user-mode entry of the VM (supervisor.S `uentry`); natively nothing is there, so
 * this mode runs in the VM only. */
#define UENTRY 0x7fffffffd146UL

static long enter(long nr, long a0, long a1, long a2, uint64_t cont) {
    long ret;
    register long rdi __asm__("rdi") = a0;
    register long rsi __asm__("rsi") = a1;
    register long rdx __asm__("rdx") = a2;
    __asm__ volatile("mov %[cont], %%rcx\n"
                     "test %%rcx, %%rcx\n"
                     "jnz 2f\n"
                     "lea 1f(%%rip), %%rcx\n"
                     "2: movabs %[entry], %%r11\n"
                     "jmp *%%r11\n"
                     "1:\n"
                     : "=a"(ret), "+r"(rdi), "+r"(rsi), "+r"(rdx)
                     : "0"(nr), [cont] "r"(cont), [entry] "i"(UENTRY)
                     : "rcx", "r11", "memory", "cc");
    return ret;
}

static int forge(void) {
    warm();
    /* Calls through the entry by hand: one it answers, one the exit path makes. */
    if (enter(SYS_getppid, 0, 0, 0, 0) != getppid())
        fail("getppid through the entry");
    static const char msg[] = "written through the entry\n";
    fflush(stdout);
    if (enter(SYS_write, 1, (long)msg, sizeof msg - 1, 0) != (long)sizeof msg - 1)
        fail("write through the entry");
    /* arch_prctl(ARCH_SET_FS) through the entry: the stub sets the thread pointer
     * itself; past the user half it is refused (the exit path's EPERM), the pointer
     * kept. No libc call while %fs is not libc's. */
    unsigned long old_fs, got, kept;
    static unsigned long tcb[4];
    tcb[0] = (unsigned long)tcb;
    tcb[1] = 0x5eed;
    if (syscall(SYS_arch_prctl, 0x1003, &old_fs) != 0)
        fail("ARCH_GET_FS");
    long set = enter(SYS_arch_prctl, 0x1002, (long)tcb, 0, 0);
    __asm__ volatile("mov %%fs:8, %0" : "=r"(got));
    long refused = enter(SYS_arch_prctl, 0x1002, (long)0x800000000000UL, 0, 0);
    __asm__ volatile("mov %%fs:8, %0" : "=r"(kept));
    enter(SYS_arch_prctl, 0x1002, (long)old_fs, 0, 0);
    printf("fs through the entry: %ld %#lx, refused %ld %#lx\n", set, got, refused, kept);
    /* Continuations that lead nowhere or into the supervisor's code. */
    const uint64_t bad[] = {0x10, 0x7fffffffd006UL, 0xffffffffffe04000UL, 0x8000000000000000UL};
    for (unsigned i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fflush(stdout);
        pid_t c = fork();
        if (c == 0) {
            enter(SYS_getppid, 0, 0, 0, bad[i]);
            _exit(0);
        }
        int st;
        if (waitpid(c, &st, 0) != c)
            fail("wait");
        printf("continuation %#lx: %s\n", (unsigned long)bad[i],
               WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "returned");
    }
    printf("still here\n");
    return 0;
}

/* The stub's warming pass (supervisor.S `warm`); VM only, as UENTRY. */
#define WARM 0x7fffffffd187UL

/* Runs the pass over `list` (`n` entries: page | (pages - 1) << 1 | write) in a child,
 * then says how the child ended: the pass ends at its doorbell, which the VMM takes as
 * a syscall returning to rcx (0 after the pass): the child's SIGSEGV either way. */
static const char *pass_in_child(const uint64_t *list, long n) {
    fflush(stdout);
    pid_t c = fork();
    if (c == 0) {
        register long rsi __asm__("rsi") = (long)list;
        register long rcx __asm__("rcx") = n;
        __asm__ volatile("movabs %[warm], %%rax\n"
                         "jmp *%%rax\n"
                         : "+r"(rsi), "+r"(rcx)
                         : [warm] "i"(WARM)
                         : "rax", "rdx", "r8", "r9", "memory", "cc");
        _exit(0); /* not reached */
    }
    int st;
    if (waitpid(c, &st, 0) != c)
        fail("wait");
    static char buf[64];
    snprintf(buf, sizeof buf, "%s", WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "returned");
    return buf;
}

/* Rings the doorbell's warming offset by hand, as a syscall would ring offset 0. */
static long ring_warm_doorbell(long nr) {
    long ret;
    __asm__ volatile("lea 1f(%%rip), %%rcx\n"
                     "pushfq\n"
                     "pop %%r11\n"
                     "movabs %%al, 0x7fffffffe002\n"
                     "1:\n"
                     : "=a"(ret)
                     : "0"(nr)
                     : "rcx", "r11", "memory", "cc");
    return ret;
}

static int warmpass(void) {
    /* Its own pages, read and written: shared with the child that runs the pass, so
     * that a byte it changed would show here. */
    size_t len = 64 * 4096;
    unsigned char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    unsigned char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED || ro == MAP_FAILED)
        fail("mmap");
    for (size_t i = 0; i < len; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    uint64_t own[2] = {(uint64_t)buf | (31 << 1) | 1, (uint64_t)(buf + 32 * 4096) | (31 << 1)};
    printf("own pages: %s\n", pass_in_child(own, 2));
    for (size_t i = 0; i < len; i++)
        if (buf[i] != (unsigned char)(i * 7 + 3))
            fail("the pass changed a byte");
    uint64_t sup[1] = {0xffffffffffe04000UL};
    printf("supervisor page: %s\n", pass_in_child(sup, 1));
    uint64_t readonly[1] = {(uint64_t)ro | 1};
    printf("read-only page written: %s\n", pass_in_child(readonly, 1));
    printf("doorbell as getpid: %s\n", ring_warm_doorbell(SYS_getpid) == getpid() ? "same" : "differs");
    printf("still here\n");
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && !strcmp(argv[1], "calls"))
        return calls();
    if (argc > 1 && !strcmp(argv[1], "rewrite"))
        return rewrite();
    if (argc > 1 && !strcmp(argv[1], "forge"))
        return forge();
    if (argc > 1 && !strcmp(argv[1], "warmpass"))
        return warmpass();
    fprintf(stderr, "usage: redirect calls|rewrite|forge|warmpass\n");
    return 2;
}
