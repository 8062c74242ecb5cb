/* The vDSO's clocks against the VMM's (the raw syscall), and time passing in a loop
 * that makes no syscall: prints "ok" lines, or what was wrong. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int64_t ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int64_t raw(clockid_t c) {
    struct timespec t;
    syscall(SYS_clock_gettime, c, &t);
    return ns(t);
}

static int64_t vdso(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return ns(t);
}

int main(void) {
    printf("vdso %s\n", getauxval(AT_SYSINFO_EHDR) ? "present" : "absent");
    clockid_t clocks[] = {CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME};
    const char *names[] = {"realtime", "monotonic", "boottime"};
    for (int i = 0; i < 3; i++) {
        int64_t a = raw(clocks[i]), b = vdso(clocks[i]), c = raw(clocks[i]);
        /* b lies between a and c, give or take a millisecond of calibration. */
        int ok = b >= a - 1000000 && b <= c + 1000000;
        printf("%s %s\n", names[i], ok ? "ok" : "off");
    }
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int64_t d = (int64_t)tv.tv_sec * 1000000000 + tv.tv_usec * 1000 - raw(CLOCK_REALTIME);
    printf("gettimeofday %s\n", d < 2000000 && d > -2000000 ? "ok" : "off");
    printf("time %s\n", time(NULL) - raw(CLOCK_REALTIME) / 1000000000 <= 1 ? "ok" : "off");
    /* Monotonic never goes back, and moves in a loop with no syscall. */
    int64_t last = vdso(CLOCK_MONOTONIC), start = last, back = 0;
    while (last - start < 50000000) {
        int64_t n = vdso(CLOCK_MONOTONIC);
        if (n < last) back++;
        last = n;
    }
    printf("monotonic loop %s\n", back ? "went back" : "ok");
    return 0;
}
