/* Faults in the way argv[1] says: null (store through NULL), munmap (touch an
 * unmapped page), mprotect (write a page made read-only), protnone (read a page made
 * inaccessible), bus (read a file mapping past the file's end), ill (ud2), div (divide by
 * zero), abort, handler (SIGSEGV caught by a handler that exits 42). Prints "armed"
 * before the fault. */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>

static void on_segv(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    char msg[80];
    int n = snprintf(msg, sizeof msg, "caught signal %d at %p\n", sig, si->si_addr);
    write(1, msg, n);
    _exit(42);
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "null";
    if (!strcmp(how, "handler")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_segv;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        how = "null";
    }
    char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page[0] = 'x';
    printf("armed %s\n", how);
    fflush(stdout);
    if (!strcmp(how, "null")) {
        *(volatile int *)0 = 1;
    } else if (!strcmp(how, "munmap")) {
        munmap(page, 4096);
        printf("after munmap: %c\n", *(volatile char *)page);
    } else if (!strcmp(how, "mprotect")) {
        mprotect(page, 4096, PROT_READ);
        printf("read after mprotect: %c\n", *(volatile char *)page);
        fflush(stdout);
        *(volatile char *)page = 'y';
        printf("wrote after mprotect\n");
    } else if (!strcmp(how, "protnone")) {
        mprotect(page, 4096, PROT_NONE);
        printf("read after PROT_NONE: %c\n", *(volatile char *)page);
    } else if (!strcmp(how, "bus")) {
        /* A file mapping past the end of its file. */
        int fd = open("/tmp/short", O_RDWR | O_CREAT, 0600);
        write(fd, "0123456789", 10);
        char *m = mmap(NULL, 8192, PROT_READ, MAP_PRIVATE, fd, 0);
        printf("first page: %.10s\n", m);
        fflush(stdout);
        printf("second page: %c\n", m[4096]);
    } else if (!strcmp(how, "ill")) {
        __asm__ volatile("ud2");
    } else if (!strcmp(how, "div")) {
        volatile int z = 0, n = 7;
        printf("%d\n", n / z);
    } else if (!strcmp(how, "abort")) {
        abort();
    }
    printf("survived\n");
    return 0;
}
