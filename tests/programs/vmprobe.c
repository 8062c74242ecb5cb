/* Probes of the micro-VM's own guest-side machinery, run inside a sandbox (the escape
 * catalogue's micro-VM section). Usage: vmprobe NAME. Each probe prints "armed NAME"
 * first, then does something a well-behaved program never does: stores into the
 * syscall stub, the doorbell or the return-frame page, jumps into the supervisor's
 * entry points with garbage in every register, touches unmapped, upper-half and
 * non-canonical addresses. The expected end is a signal (or, where the VMM simply
 * answers, a normal exit with what it answered); never a failure of the VMM itself.
 *
 * The addresses are the micro-VM's fixed layout (backend-microvm/src/guest/layout.rs);
 * in a container they are ordinary unmapped addresses. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define VVAR_VA      0x7ffffff80000UL
#define FRAME_VA     0x7fffffffc000UL
#define STUB_VA      0x7fffffffd000UL
#define FLUSH_VA     (STUB_VA + 8)
#define IRET_VA      (STUB_VA + 6)
#define DOORBELL_VA  0x7fffffffe000UL
#define DIRECT_MAP   0xffffff0000000000UL
#define SUP_VA       0xffffffffffe00000UL
#define HANDLER_VA   (SUP_VA + 0x4000)

static void armed(const char *n) {
    printf("armed %s\n", n);
    fflush(stdout);
}

/* Every general register set to garbage, rsp included, then a jump to `target`. */
static void __attribute__((noreturn)) jump_with_garbage(uint64_t target) {
    __asm__ volatile(
        "mov %0, %%r15\n"
        "mov $0xdeadbeefdeadbeef, %%rax\n"
        "mov %%rax, %%rbx\n mov %%rax, %%rcx\n mov %%rax, %%rdx\n"
        "mov %%rax, %%rsi\n mov %%rax, %%rdi\n mov %%rax, %%rbp\n"
        "mov %%rax, %%r8\n mov %%rax, %%r9\n mov %%rax, %%r10\n mov %%rax, %%r11\n"
        "mov %%rax, %%r12\n mov %%rax, %%r13\n mov %%rax, %%r14\n"
        "mov $0xffff800000000000, %%rsp\n"
        "jmp *%%r15\n"
        :
        : "r"(target)
        : "memory");
    __builtin_unreachable();
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *n = argv[1];
    armed(n);
    volatile uint8_t *p;
    if (!strcmp(n, "store-stub")) { p = (uint8_t *)STUB_VA; p[0] = 0xcc; }
    /* The fast-call map (stub page + 0xf00): a set bit would only make the stub post
     * a call the thread then refuses, but the page is the VMM's alone to write. */
    else if (!strcmp(n, "store-fast-map")) { p = (uint8_t *)(STUB_VA + 0xf00); p[25] = 0xff; }
    else if (!strcmp(n, "store-vvar")) { p = (uint8_t *)VVAR_VA; p[0] = 1; }
    else if (!strcmp(n, "exec-frame")) { ((void (*)(void))FRAME_VA)(); }
    else if (!strcmp(n, "store-frame")) {
        /* The frame page is the workload's to scribble on (the stub's iretq reads it):
         * a frame that would return to the supervisor at CPL0. The VMM writes the real
         * frame before every return, so the next syscall comes back here as usual. */
        volatile uint64_t *f = (uint64_t *)(FRAME_VA + 4096 - 40);
        f[0] = HANDLER_VA; f[1] = 0x10; f[2] = 0x2; f[3] = SUP_VA + 0x12000; f[4] = 0x18;
        long pid = getpid();
        printf("still running, pid %ld\n", pid);
        return 0;
    }
    else if (!strcmp(n, "iret-to-kernel")) {
        /* The stub's iretq, from user mode, with a frame that asks for CPL0. */
        static uint64_t frame[5];
        frame[0] = HANDLER_VA; frame[1] = 0x10; frame[2] = 0x2; frame[3] = SUP_VA + 0x12000; frame[4] = 0x18;
        __asm__ volatile("mov %0, %%rsp\n jmp *%1\n" : : "r"(frame), "r"(IRET_VA) : "memory");
    }
    else if (!strcmp(n, "doorbell-garbage")) {
        /* A doorbell write with garbage everywhere: a syscall the VMM answers, then a
         * return to rcx, which is not user code. */
        __asm__ volatile(
            "mov $0xdeadbeef, %%rax\n mov $0xffff800000001000, %%rcx\n mov $-1, %%r11\n"
            "mov $-1, %%rdi\n mov $-1, %%rsi\n mov $-1, %%rdx\n"
            "movb %%al, (%0)\n"
            : : "r"(DOORBELL_VA) : "rax", "rcx", "r11", "rdi", "rsi", "rdx", "memory");
    }
    else if (!strcmp(n, "doorbell-getpid")) {
        /* A doorbell write is only a syscall, with the workload's own registers: no
         * more. rcx says where to come back. */
        long r;
        __asm__ volatile(
            "lea 1f(%%rip), %%rcx\n mov $39, %%rax\n movb %%al, (%1)\n 1:\n"
            : "=a"(r) : "r"(DOORBELL_VA) : "rcx", "r11", "memory");
        printf("doorbell getpid = %ld, getpid = %ld\n", r, (long)getpid());
        return 0;
    }
    else if (!strcmp(n, "resume-after-kill")) {
        /* A child enters the syscall stub itself (not through `syscall`, which would set
         * rcx) with a return address in rcx that is not user code, and its stack pointing
         * at a valid user-mode iretq frame. The VMM must end the child there (SIGSEGV)
         * and never run it again: if the stub's iretq still ran, it would return into
         * the child's code after its death, which sets a flag. */
        volatile uint8_t *flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (flag == MAP_FAILED) return 3;
        *flag = 0; /* mapped before the fork: the child's store needs no fault */
        pid_t c = fork();
        if (c == 0) {
            static uint64_t frame[8];
            static uint8_t stack[4096] __attribute__((aligned(16)));
            frame[1] = 0x33; frame[2] = 0x202; frame[3] = (uint64_t)(stack + sizeof stack - 64); frame[4] = 0x2b;
            __asm__ volatile(
                "lea 1f(%%rip), %%rax\n mov %%rax, (%1)\n"
                "mov %1, %%rsp\n"
                "mov $0xffff800000000000, %%rcx\n mov $39, %%eax\n jmp *%2\n"
                "1: movb $1, (%0)\n"
                "mov $60, %%eax\n xor %%edi, %%edi\n syscall\n"
                : : "r"(flag), "r"(frame), "r"(STUB_VA) : "rax", "rcx", "r11", "rdi", "memory");
            _exit(9);
        }
        int st = 0;
        waitpid(c, &st, 0);
        printf("child %s %d, zombie %s\n", WIFSIGNALED(st) ? "signal" : "exited",
               WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), *flag ? "ran" : "did not run");
        return 0;
    }
    else if (!strcmp(n, "jump-stub")) jump_with_garbage(STUB_VA);
    else if (!strcmp(n, "jump-iret")) jump_with_garbage(IRET_VA);
    else if (!strcmp(n, "jump-flush")) jump_with_garbage(FLUSH_VA);
    else if (!strcmp(n, "jump-handler")) jump_with_garbage(HANDLER_VA);
    else if (!strcmp(n, "jump-noncanonical")) jump_with_garbage(0x0000800000000000UL);
    else if (!strcmp(n, "read-null")) { p = 0; (void)p[0]; }
    else if (!strcmp(n, "read-unmapped")) { p = (uint8_t *)0x10000; (void)p[0]; }
    else if (!strcmp(n, "read-direct-map")) { p = (uint8_t *)DIRECT_MAP; (void)p[0]; }
    else if (!strcmp(n, "read-supervisor")) { p = (uint8_t *)SUP_VA; (void)p[0]; }
    else if (!strcmp(n, "write-supervisor")) { p = (uint8_t *)(SUP_VA + 0x7000); p[0] = 1; }
    else if (!strcmp(n, "read-noncanonical")) { p = (uint8_t *)0x0000800000000000UL; (void)p[0]; }
    else if (!strcmp(n, "read-top")) { p = (uint8_t *)0xfffffffffffff000UL; (void)p[0]; }
    else if (!strcmp(n, "int-0x81")) __asm__ volatile("int $0x81");
    else if (!strcmp(n, "int-0x0e")) __asm__ volatile("int $0x0e");
    else return 2;
    printf("%s: survived\n", n);
    return 0;
}
