/* Guest actions aimed at the host resources and limits of whatever runs the workload
 * (the micro-VM's VMM, or the host kernel for the container). Each mode prints what
 * it saw; the tests compare with the program run natively where Linux's answer is
 * the point, and look at the outcome where a limit is.
 *
 *   mincore GIB MAPPINGS   a GIB GiB reservation cut into MAPPINGS mappings (rights
 *                          alternating), then mincore over all of it, forever
 *   fds PROCS PATH         PROCS children open PATH until open fails; the parent
 *                          prints how each one's last open failed, "ready", then
 *                          waits for a line on stdin
 *   unimpl COUNT           COUNT distinct syscall numbers no kernel has
 *   itimer                 ITIMER_REAL with a one-millisecond value and an interval of
 *                          centuries: one SIGALRM
 *   inodes                 inode numbers of pipes and socket pairs, and /proc's links
 *   tsc                    rdtsc and rdtscp's TSC_AUX
 *   links SIZE             symlinks with SIZE-byte targets in /tmp until one fails
 *   pipes                  pipes filled to the brim until something fails
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static int mincore_mode(long gib, long mappings) {
    size_t len = (size_t)gib << 30;
    char *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        printf("mmap: errno %d\n", errno);
        return 1;
    }
    size_t chunk = len / (size_t)mappings & ~(size_t)4095;
    for (long i = 1; i < mappings; i += 2)
        if (mprotect(p + i * chunk, chunk, PROT_READ) != 0) {
            printf("mprotect: errno %d\n", errno);
            return 1;
        }
    unsigned char *vec = malloc(len / 4096);
    if (!vec)
        return 1;
    printf("scanning\n");
    fflush(stdout);
    for (;;)
        if (mincore(p, len, vec) != 0) {
            printf("mincore: errno %d\n", errno);
            return 1;
        }
}

static int fds_mode(int procs, const char *path) {
    int out[2];
    if (pipe(out) != 0)
        return 1;
    for (int i = 0; i < procs; i++) {
        pid_t c = fork();
        if (c < 0)
            return 1;
        if (c == 0) {
            close(out[0]);
            int e = 0;
            for (;;) {
                int fd = open(path, O_RDONLY);
                if (fd < 0) {
                    e = errno;
                    break;
                }
            }
            /* The pipe's write end is still open: the report gets through. */
            if (write(out[1], &e, sizeof e) != sizeof e)
                _exit(1);
            pause();
            _exit(0);
        }
    }
    close(out[1]);
    int emfile = 0, enfile = 0, other = 0;
    for (int i = 0; i < procs; i++) {
        int e;
        if (read(out[0], &e, sizeof e) != sizeof e)
            return 1;
        if (e == EMFILE)
            emfile++;
        else if (e == ENFILE)
            enfile++;
        else
            other++;
    }
    printf("children %d: EMFILE or ENFILE %d, other %d\n", procs, emfile + enfile, other);
    printf("ready\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin))
        line[0] = 0;
    kill(0, SIGKILL);
    return 0;
}

static int unimpl_mode(long count) {
    long refused = 0;
    for (long i = 0; i < count; i++) {
        /* Numbers no kernel has: past the table, then spread over 64 bits. */
        long nr = i < count / 2 ? 1000 + i : (long)(0x123456789abcULL * (uint64_t)i);
        if (nr == SYS_getpid)
            nr++;
        /* ENOSYS from Linux and the micro-VM, the container's seccomp answer there. */
        errno = 0;
        if (syscall(nr, 0, 0, 0, 0, 0, 0) == -1 && (errno == ENOSYS || errno == EPERM))
            refused++;
    }
    printf("refused %ld of %ld\n", refused, count);
    return 0;
}

static volatile sig_atomic_t alarms;
static void on_alarm(int s) {
    (void)s;
    alarms++;
}

static int itimer_mode(void) {
    signal(SIGALRM, on_alarm);
    struct itimerval v = {{(time_t)1 << 40, 0}, {0, 1000}};
    if (setitimer(ITIMER_REAL, &v, NULL) != 0) {
        printf("setitimer: errno %d\n", errno);
        return 1;
    }
    struct timespec d = {0, 100 * 1000 * 1000};
    while (nanosleep(&d, &d) != 0)
        ;
    struct itimerval now;
    int rc = getitimer(ITIMER_REAL, &now);
    printf("alarms %d, getitimer %d, armed %d\n", (int)alarms, rc, now.it_value.tv_sec > 0);
    return 0;
}

static ino_t ino_of(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

static int link_matches(int fd, const char *kind) {
    char path[64], target[128], want[128];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return 0;
    target[n] = 0;
    snprintf(want, sizeof want, "%s:[%lu]", kind, (unsigned long)ino_of(fd));
    return strcmp(target, want) == 0;
}

static int inodes_mode(void) {
    int a[2], b[2], s[2];
    if (pipe(a) || pipe(b) || socketpair(AF_UNIX, SOCK_STREAM, 0, s))
        return 1;
    printf("pipe ends share an inode: %d\n", ino_of(a[0]) == ino_of(a[1]));
    printf("two pipes differ: %d\n", ino_of(a[0]) != ino_of(b[0]));
    printf("socket ends differ: %d\n", ino_of(s[0]) != ino_of(s[1]));
    printf("pipe and socket differ: %d\n", ino_of(a[0]) != ino_of(s[0]));
    printf("proc links match: %d\n",
           link_matches(a[0], "pipe") && link_matches(b[1], "pipe") && link_matches(s[0], "socket"));
    return 0;
}

static int tsc_mode(void) {
    unsigned aux = 0xdead;
    unsigned long long t = __rdtsc();
    __rdtscp(&aux);
    printf("rdtsc %llu aux %u\n", t, aux);
    return 0;
}

static int links_mode(long size) {
    char *target = malloc(size + 2);
    if (!target)
        return 1;
    target[0] = '/';
    memset(target + 1, 'x', size - 1);
    target[size] = 0;
    long n = 0;
    for (;; n++) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/l%ld", n);
        if (symlink(target, name) != 0)
            break;
    }
    int e = errno;
    printf("symlinks %ld, then errno %d\n", n, e);
    return 0;
}

static int pipes_mode(void) {
    static char chunk[65536];
    long pipes = 0;
    for (;;) {
        int p[2];
        if (pipe(p) != 0) {
            printf("pipes %ld, then errno %d\n", pipes, errno);
            return 0;
        }
        fcntl(p[1], F_SETFL, O_NONBLOCK);
        while (write(p[1], chunk, sizeof chunk) > 0)
            ;
        pipes++;
    }
}

int main(int argc, char **argv) {
    if (argc > 3 && strcmp(argv[1], "mincore") == 0)
        return mincore_mode(atol(argv[2]), atol(argv[3]));
    if (argc > 3 && strcmp(argv[1], "fds") == 0)
        return fds_mode(atoi(argv[2]), argv[3]);
    if (argc > 2 && strcmp(argv[1], "unimpl") == 0)
        return unimpl_mode(atol(argv[2]));
    if (argc > 1 && strcmp(argv[1], "itimer") == 0)
        return itimer_mode();
    if (argc > 1 && strcmp(argv[1], "inodes") == 0)
        return inodes_mode();
    if (argc > 1 && strcmp(argv[1], "tsc") == 0)
        return tsc_mode();
    if (argc > 2 && strcmp(argv[1], "links") == 0)
        return links_mode(atol(argv[2]));
    if (argc > 1 && strcmp(argv[1], "pipes") == 0)
        return pipes_mode();
    fprintf(stderr, "usage: hostlimits mincore|fds|unimpl|itimer|inodes|tsc|links|pipes ...\n");
    return 2;
}
