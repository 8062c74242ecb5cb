/* Prints a line on stdout and one on stderr, exits 0. */
#include <stdio.h>

int main(void) {
    printf("hello from the micro-VM\n");
    fprintf(stderr, "to stderr\n");
    return 0;
}
