/* Asks the VMM, through its test hook (feature `test-hooks`, src/linux/hooks.rs), to do
 * what a compromised personality would: a host syscall off its allowlist, opening a
 * host path outside the sandbox's mounts, or writing a file of a read-only mount
 * without the VFS's own check; or what glibc does on its own in the VMM's thread (open
 * a /proc file when malloc trims a heap). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define HSB_TEST_HOOK 0x48534200L

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[1], "open") == 0) {
        errno = 0;
        long r = syscall(HSB_TEST_HOOK, 2L, argv[2]);
        printf("open %s: rc=%ld errno=%d\n", argv[2], r, r < 0 ? errno : 0);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "write") == 0) {
        errno = 0;
        long r = syscall(HSB_TEST_HOOK, 3L, argv[2]);
        printf("write %s: rc=%ld errno=%d\n", argv[2], r, r < 0 ? errno : 0);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "syscall") == 0) {
        printf("before\n");
        fflush(stdout);
        errno = 0;
        long r = syscall(HSB_TEST_HOOK, 1L);
        printf("after: rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
        return 0;
    }
    if (argc > 2 && (strcmp(argv[1], "swap") == 0 || strcmp(argv[1], "swap-fast") == 0)) {
        /* swap-fast: enough calls first that the VMM's fast-call thread runs and
         * answers the open (backend-microvm/src/fastcall.rs), not the exit path. */
        int fast = strcmp(argv[1], "swap-fast") == 0;
        for (int i = 0; fast && i < 3000; i++)
            getppid();
        /* The VMM swaps PATH for PATH.fifo between its lookup and its open. */
        if (syscall(HSB_TEST_HOOK, 5L) != 0) {
            printf("hook: errno %d\n", errno);
            return 1;
        }
        for (int i = 0; fast && i < 100; i++)
            getppid();
        errno = 0;
        int fd = open(argv[2], O_RDONLY);
        printf("open %s: rc=%d errno=%d\n", argv[2], fd < 0 ? -1 : 0, fd < 0 ? errno : 0);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "libc") == 0) {
        errno = 0;
        long r = syscall(HSB_TEST_HOOK, 4L);
        printf("libc open: rc=%ld errno=%d\n", r, r < 0 ? errno : 0);
        printf("after\n");
        return 0;
    }
    fprintf(stderr, "usage: hook open PATH | hook write PATH | hook syscall | hook libc | hook swap|swap-fast PATH\n");
    return 2;
}
