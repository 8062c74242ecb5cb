/* argv[1] getppid calls in a loop (the cost of one syscall). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000;
    long s = 0;
    for (long i = 0; i < n; i++)
        s += syscall(SYS_getppid);
    printf("%ld\n", s);
    return 0;
}
