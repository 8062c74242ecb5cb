/* A forged return address: a child enters the syscall stub itself (not through
 * `syscall`, which sets rcx) with rcx outside user code and its stack pointing at a
 * valid user-mode iretq frame. The VMM ends the child with SIGSEGV; it must never run
 * it again (the stub's iretq would return into the child's code, which sets a flag in
 * memory shared with the parent). Prints what the parent saw. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define STUB_VA 0x7fffffffd000UL

int main(void) {
    volatile uint8_t *flag = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (flag == MAP_FAILED) return 3;
    *flag = 0;
    pid_t c = fork();
    if (c == 0) {
        static uint64_t frame[8];
        static uint8_t stack[4096] __attribute__((aligned(16)));
        frame[1] = 0x33;
        frame[2] = 0x202;
        frame[3] = (uint64_t)(stack + sizeof stack - 64);
        frame[4] = 0x2b;
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
