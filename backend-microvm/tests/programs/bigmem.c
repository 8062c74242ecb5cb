/* Fills MIB mebibytes with a pattern, then forks CHILDREN children one after another:
 * each checks every page, writes its own pattern over a part (copy on write), checks
 * that part and exits; the parent checks every page again at the end. Prints
 * "ok MIB" when every check held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static size_t pages;
static unsigned long *page_at(char *base, size_t i) { return (unsigned long *)(base + i * 4096); }

static int check(char *base, unsigned long salt) {
    for (size_t i = 0; i < pages; i++)
        if (*page_at(base, i) != i * 2654435761UL + salt || page_at(base, i)[511] != ~i)
            return 0;
    return 1;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? strtoul(argv[1], 0, 10) : 256;
    int children = argc > 2 ? atoi(argv[2]) : 8;
    pages = mib << 8;
    char *base = malloc(mib << 20);
    if (!base) {
        printf("malloc failed\n");
        return 3;
    }
    for (size_t i = 0; i < pages; i++) {
        *page_at(base, i) = i * 2654435761UL + 7;
        page_at(base, i)[511] = ~i;
    }
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid < 0) {
            printf("fork failed\n");
            return 4;
        }
        if (pid == 0) {
            if (!check(base, 7))
                _exit(10);
            size_t from = pages / children * c, to = from + pages / children;
            for (size_t i = from; i < to; i++)
                *page_at(base, i) = i * 2654435761UL + 99;
            for (size_t i = from; i < to; i++)
                if (*page_at(base, i) != i * 2654435761UL + 99)
                    _exit(11);
            _exit(0);
        }
        int st = 0;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("child %d failed: %#x\n", c, st);
            return 5;
        }
    }
    if (!check(base, 7)) {
        printf("the parent's pages changed\n");
        return 6;
    }
    printf("ok %zu\n", mib);
    return 0;
}
