/* Passes wild pointers to read, write and openat; prints each result and errno. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long rc) {
    printf("%s rc=%ld errno=%d\n", what, rc, rc < 0 ? errno : 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    void *wild[] = {(void *)1, (void *)0xdead0000, (void *)0xffffffffff600000ul, (void *)0x7ffffffff000ul,
                    (void *)0x8000000000000000ul};
    for (unsigned i = 0; i < sizeof wild / sizeof *wild; i++) {
        char label[64];
        snprintf(label, sizeof label, "read %p", wild[i]);
        show(label, syscall(SYS_read, 0, wild[i], 16));
        snprintf(label, sizeof label, "write %p", wild[i]);
        show(label, syscall(SYS_write, 1, wild[i], 16));
        snprintf(label, sizeof label, "openat %p", wild[i]);
        show(label, syscall(SYS_openat, AT_FDCWD, wild[i], O_RDONLY));
    }
    /* A buffer that starts valid and runs into nothing. */
    show("write partial", syscall(SYS_write, 1, "ok\n", 3));
    return 0;
}
