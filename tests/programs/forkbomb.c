/* Forks forever; never gives up on EAGAIN. */
#include <unistd.h>
int main(void) { for (;;) fork(); }
