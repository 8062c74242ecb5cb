/* Scheduling probes: tasks that compute beside tasks that wait, and forks from a
 * process whose other threads keep writing memory. Each mode prints one result line;
 * the same program runs natively, in the container and in the micro-VM.
 *
 *   sleep thread|process   ten 100 ms nanosleeps beside a thread or a process that
 *                          spins in user mode; prints "slept 10" and the worst delay
 *                          in ms on stderr (informational)
 *   stdin                  a spinning child; the parent reads a line from stdin and
 *                          prints it (the line arrives while the child computes)
 *   forks THREADS ROUNDS   THREADS threads write a running counter over 512 KiB each
 *                          while the main thread forks ROUNDS children; each child
 *                          checks that every buffer is an exact snapshot (a run of +1
 *                          steps with at most one wrap); prints "bad N of ROUNDS"
 *   yield                  two threads each log a letter six times, calling sched_yield
 *                          after each; prints the log (one vCPU: they alternate)
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static atomic_int stop;

static void *spin(void *arg) {
    (void)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        ;
    return NULL;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int sleep_mode(const char *how) {
    int thread = strcmp(how, "thread") == 0;
    pthread_t t;
    pid_t child = 0;
    if (thread) {
        if (pthread_create(&t, NULL, spin, NULL) != 0)
            return 2;
    } else {
        child = fork();
        if (child < 0)
            return 2;
        if (child == 0)
            for (;;)
                ;
    }
    double worst = 0;
    int slept = 0;
    for (int i = 0; i < 10; i++) {
        double t0 = now_ms();
        struct timespec d = {0, 100 * 1000 * 1000};
        if (nanosleep(&d, NULL) == 0)
            slept++;
        double dt = now_ms() - t0;
        if (dt > worst)
            worst = dt;
    }
    if (thread) {
        atomic_store(&stop, 1);
        pthread_join(t, NULL);
    } else {
        kill(child, SIGKILL);
        waitpid(child, NULL, 0);
    }
    printf("slept %d\n", slept);
    fprintf(stderr, "worst sleep %.1f ms\n", worst);
    return 0;
}

static int stdin_mode(void) {
    pid_t child = fork();
    if (child < 0)
        return 2;
    if (child == 0)
        for (;;)
            ;
    char line[256];
    if (!fgets(line, sizeof line, stdin))
        line[0] = 0;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    printf("read: %s", line);
    return 0;
}

#define N (64 * 1024) /* longs per buffer: 512 KiB, 128 pages */
static long *bufs[8];

static void *writer(void *arg) {
    long *b = arg;
    long c = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed))
        for (long i = 0; i < N; i++)
            b[i] = ++c;
    return NULL;
}

/* 0 when `b` is a snapshot of the writer's loop: +1 steps, at most one drop (where
 * the writer was when time stopped), zeros its first pass has not reached yet; else
 * the index that breaks it. */
static long check(const long *b) {
    int drops = 0;
    for (long i = 1; i < N; i++) {
        long d = b[i] - b[i - 1];
        if (d == 1 || (b[i] == 0 && b[i - 1] == 0))
            continue;
        if (d < 0 && drops++ == 0)
            continue;
        return i;
    }
    return 0;
}

static int forks_mode(int threads, int rounds) {
    pthread_t t[8];
    if (threads > 8)
        threads = 8;
    for (int i = 0; i < threads; i++) {
        bufs[i] = calloc(N, sizeof(long));
        if (!bufs[i] || pthread_create(&t[i], NULL, writer, bufs[i]) != 0)
            return 2;
    }
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        pid_t p = fork();
        if (p < 0)
            return 2;
        if (p == 0) {
            for (int i = 0; i < threads; i++) {
                long at = check(bufs[i]);
                if (at) {
                    fprintf(stderr, "child %d: buffer %d broken at %ld: %ld %ld\n", r, i, at,
                            bufs[i][at - 1], bufs[i][at]);
                    _exit(1);
                }
            }
            _exit(0);
        }
        int st;
        if (waitpid(p, &st, 0) != p || st != 0) {
            bad++;
            fprintf(stderr, "child %d: status %#x\n", r, st);
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    printf("bad %d of %d\n", bad, rounds);
    return 0;
}

static char ylog[64];
static atomic_int ylen;

static void ylog_add(char c) {
    int i = atomic_fetch_add(&ylen, 1);
    if (i < (int)sizeof ylog - 1)
        ylog[i] = c;
}

static void *yielder(void *arg) {
    char c = *(const char *)arg;
    for (int i = 0; i < 6; i++) {
        ylog_add(c);
        sched_yield();
    }
    return NULL;
}

static int yield_mode(void) {
    pthread_t t;
    static const char b = 'B', a = 'A';
    if (pthread_create(&t, NULL, yielder, (void *)&b) != 0)
        return 1;
    sched_yield(); /* let the new thread start its turn */
    yielder((void *)&a);
    pthread_join(t, NULL);
    printf("%s\n", ylog);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "yield") == 0)
        return yield_mode();
    if (argc > 2 && strcmp(argv[1], "sleep") == 0)
        return sleep_mode(argv[2]);
    if (argc > 1 && strcmp(argv[1], "stdin") == 0)
        return stdin_mode();
    if (argc > 3 && strcmp(argv[1], "forks") == 0)
        return forks_mode(atoi(argv[2]), atoi(argv[3]));
    fprintf(stderr, "usage: sched sleep thread|process | sched stdin | sched forks THREADS ROUNDS\n");
    return 2;
}
