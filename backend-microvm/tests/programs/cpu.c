/* CPU-bound work: argv[1] rounds of an integer hash; prints the result. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    unsigned long rounds = argc > 1 ? strtoul(argv[1], 0, 10) : 100000000ul;
    unsigned long h = 1469598103934665603ul;
    for (unsigned long i = 0; i < rounds; i++) {
        h ^= i;
        h *= 1099511628211ul;
    }
    printf("%lx\n", h);
    return 0;
}
