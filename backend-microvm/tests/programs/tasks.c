/* Processes, threads and signals, one mode per argument:
 *   fork      fork, copy-on-write, a pipe between parent and child, wait status
 *   exec      fork + execve of this program, exit code through wait
 *   vfork     vfork + execve
 *   threads   4 threads, a mutex, a condition variable, thread-local storage, join
 *   signals   handlers, masks, SIGALRM from alarm() and setitimer(), EINTR, SIGCHLD
 *   pgrp      process groups: setpgid, kill(-pgid)
 *   bomb      forks until fork fails
 *   shm       MAP_SHARED memory (a /dev/shm file, and anonymous) across fork
 *   stop      SIGSTOP/SIGCONT of a child: WUNTRACED, WCONTINUED, waitid, SIGCHLD codes
 *   unimpl    a syscall the micro-VM does not offer (io_uring_setup)
 *   exitsig   children made by clone() with exit signals Linux cannot deliver (0, 65,
 *             110, 255): no signal reaches the parent, and __WALL still reaps them
 *   child N   (used by exec) prints and exits with N
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

static char *self;

static int do_fork(void) {
    int p[2];
    static int shared = 1;
    if (pipe(p)) return 1;
    pid_t c = fork();
    if (c < 0) return 2;
    if (c == 0) {
        close(p[0]);
        shared = 42; /* the parent must not see this */
        char msg[64];
        int n = snprintf(msg, sizeof msg, "child %d of %d\n", getpid() != getppid(), getppid() > 0);
        write(p[1], msg, n);
        _exit(7);
    }
    close(p[1]);
    char buf[64] = {0};
    int n = read(p[0], buf, sizeof buf - 1);
    int st;
    if (waitpid(c, &st, 0) != c) return 3;
    printf("read %d: %s", n, buf);
    printf("exited %d code %d shared %d\n", WIFEXITED(st), WEXITSTATUS(st), shared);
    /* A child killed by a signal. */
    c = fork();
    if (c == 0) {
        raise(SIGTERM);
        _exit(0);
    }
    waitpid(c, &st, 0);
    printf("signaled %d sig %d\n", WIFSIGNALED(st), WTERMSIG(st));
    printf("no more children: %d\n", wait(NULL) == -1 && errno == ECHILD);
    return 0;
}

static int do_exec(void) {
    pid_t c = fork();
    if (c == 0) {
        char *argv[] = {"tasks", "child", "5", NULL};
        char *envp[] = {"FROM=exec", NULL};
        execve(self, argv, envp);
        _exit(99);
    }
    int st;
    waitpid(c, &st, 0);
    printf("exec child exited %d\n", WEXITSTATUS(st));
    char *argv[] = {"tasks", NULL};
    printf("missing: %d\n", execve("/nonexistent", argv, NULL) == -1 && errno == ENOENT);
    return 0;
}

static int do_vfork(void) {
    pid_t c = vfork();
    if (c == 0) {
        char *argv[] = {"tasks", "child", "3", NULL};
        execve(self, argv, NULL);
        _exit(98);
    }
    int st;
    waitpid(c, &st, 0);
    printf("vfork child exited %d\n", WEXITSTATUS(st));
    return 0;
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static long counter;
static int turn;
static __thread int tls;

static void *worker(void *arg) {
    long id = (long)arg;
    tls = (int)id * 10;
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&mu);
        counter++;
        pthread_mutex_unlock(&mu);
    }
    /* Take turns in id order through the condition variable. */
    pthread_mutex_lock(&mu);
    while (turn != id) pthread_cond_wait(&cv, &mu);
    turn++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return (void *)(long)(tls + (int)id);
}

static int do_threads(void) {
    pthread_t t[4];
    tls = -1;
    for (long i = 0; i < 4; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    long sum = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        sum += (long)r;
    }
    printf("counter %ld turn %d results %ld main tls %d\n", counter, turn, sum, tls);
    return 0;
}

static volatile sig_atomic_t got;
static void on_sig(int s) { got = s; }

static int do_signals(void) {
    struct sigaction sa = {0};
    sa.sa_handler = on_sig;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("usr1 %d\n", got == SIGUSR1);
    /* Blocked: pending, delivered on unblock. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    got = 0;
    kill(getpid(), SIGUSR1);
    sigset_t pend;
    sigpending(&pend);
    printf("pending %d got %d\n", sigismember(&pend, SIGUSR1), got);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("after unblock %d\n", got == SIGUSR1);
    /* SIGALRM interrupts a blocking read (no SA_RESTART): EINTR. */
    sigaction(SIGALRM, &sa, NULL);
    int p[2];
    pipe(p);
    alarm(1);
    char c;
    int n = read(p[0], &c, 1);
    printf("alarm read %d errno %s got %d\n", n, n < 0 && errno == EINTR ? "EINTR" : "?", got == SIGALRM);
    /* setitimer, and pause until it comes. */
    got = 0;
    struct itimerval it = {{0, 0}, {0, 200000}};
    setitimer(ITIMER_REAL, &it, NULL);
    pause();
    printf("itimer %d\n", got == SIGALRM);
    /* SIGCHLD when a child ends. */
    sigaction(SIGCHLD, &sa, NULL);
    got = 0;
    if (fork() == 0) _exit(0);
    while (!got) pause();
    printf("sigchld %d\n", got == SIGCHLD);
    wait(NULL);
    /* A signal's default action kills the process: seen through wait. */
    pid_t k = fork();
    if (k == 0) {
        for (;;) pause();
    }
    kill(k, SIGKILL);
    int st;
    waitpid(k, &st, 0);
    printf("killed %d\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    return 0;
}

static int do_pgrp(void) {
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        setpgid(0, 0);
        write(p[1], "x", 1);
        for (;;) pause();
    }
    char x;
    read(p[0], &x, 1);
    printf("child group %d\n", getpgid(c) == c);
    kill(-c, SIGTERM);
    int st;
    waitpid(c, &st, 0);
    printf("group killed %d\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
    printf("own group %d session %d\n", getpgrp() == getpid(), getsid(0) == getpid());
    return 0;
}

static int do_shm(void) {
    /* A file in /dev/shm (= /tmp) mapped MAP_SHARED by parent and child, and seen by
     * read() and write() too; and MAP_SHARED|MAP_ANONYMOUS inherited by fork. */
    int fd = open("/dev/shm/hsb-shm", O_RDWR | O_CREAT, 0600);
    if (fd < 0 || ftruncate(fd, 4096)) return 1;
    pwrite(fd, "file", 4, 100);
    char *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int *anon = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED || anon == MAP_FAILED) return 2;
    pid_t c = fork();
    if (c == 0) {
        strcpy(m, "from the child");
        *anon = 1234;
        _exit(0);
    }
    waitpid(c, NULL, 0);
    char buf[16] = {0};
    pread(fd, buf, 14, 0);
    printf("mapping %s read %s anon %d seen %.4s\n", m, buf, *anon, m + 100);
    pwrite(fd, "WRITE", 5, 0);
    printf("after write %.5s\n", m);
    munmap(m, 4096);
    close(fd);
    unlink("/dev/shm/hsb-shm");
    return 0;
}

static volatile sig_atomic_t chld_code;
static void on_chld(int s, siginfo_t *si, void *u) {
    (void)s;
    (void)u;
    chld_code = si->si_code;
}

static int do_stop(void) {
    struct sigaction sa = {0};
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    int p[2];
    pipe(p);
    pid_t c = fork();
    if (c == 0) {
        volatile unsigned long n = 0;
        for (;;) {
            n++;
            if (n % 1000000 == 0) write(p[1], "t", 1);
        }
    }
    char x;
    read(p[0], &x, 1);
    kill(c, SIGSTOP);
    int st;
    pid_t w = waitpid(c, &st, WUNTRACED);
    printf("stopped %d sig %d code %d\n", w == c && WIFSTOPPED(st), WSTOPSIG(st),
           chld_code == CLD_STOPPED);
    /* Stopped: it writes nothing more (drain what it wrote before). */
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    while (read(p[0], &x, 1) == 1) {
    }
    usleep(50000);
    printf("quiet %d\n", read(p[0], &x, 1) < 0 && errno == EAGAIN);
    siginfo_t si = {0};
    printf("nothing new %d\n", waitid(P_PID, c, &si, WSTOPPED | WNOHANG) == 0 && si.si_pid == 0);
    kill(c, SIGCONT);
    w = waitpid(c, &st, WCONTINUED);
    printf("continued %d\n", w == c && WIFCONTINUED(st));
    fcntl(p[0], F_SETFL, 0);
    /* Linux sends SIGCHLD (CLD_CONTINUED) once the child runs again. */
    int again = read(p[0], &x, 1) == 1;
    printf("runs again %d code %d\n", again, chld_code == CLD_CONTINUED);
    kill(c, SIGTSTP);
    memset(&si, 0, sizeof si);
    waitid(P_PID, c, &si, WSTOPPED);
    printf("waitid stopped %d %d\n", si.si_code == CLD_STOPPED, si.si_status == SIGTSTP);
    kill(c, SIGKILL);
    waitpid(c, &st, 0);
    printf("killed while stopped %d\n", WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    return 0;
}

static int do_bomb(void) {
    int n = 0;
    for (;;) {
        pid_t c = fork();
        if (c < 0) {
            printf("fork failed after %d\n", n);
            return 0;
        }
        if (c == 0) {
            for (;;) pause();
        }
        n++;
    }
}

/* Children of a parent that ignores SIGCHLD (or sets SA_NOCLDWAIT) are reaped as they
 * end: 200 forks of children that exit at once never fill a small pids limit, and
 * wait finds none (ECHILD). With SA_NOCLDWAIT and a handler, the handler still runs. */
static volatile sig_atomic_t chld_seen;
static void count_chld(int s) { (void)s; chld_seen++; }
static int do_reaped(void) {
    for (int round = 0; round < 2; round++) {
        struct sigaction sa = {0};
        if (round == 0) {
            sa.sa_handler = SIG_IGN;
        } else {
            sa.sa_handler = count_chld;
            sa.sa_flags = SA_NOCLDWAIT;
        }
        sigaction(SIGCHLD, &sa, NULL);
        for (int i = 0; i < 200; i++) {
            pid_t c = fork();
            if (c < 0) {
                printf("round %d: fork %d failed: errno %d\n", round, i, errno);
                return 1;
            }
            if (c == 0) _exit(0);
            usleep(1000); /* the child runs and ends */
        }
        usleep(20000);
        errno = 0;
        pid_t w = wait(NULL);
        printf("round %d: wait %d errno %d\n", round, (int)w, errno);
    }
    printf("handler ran %d\n", chld_seen > 0);
    return 0;
}

static volatile sig_atomic_t signals_seen;
static void count_sig(int s) {
    (void)s;
    signals_seen++;
}

static int do_exitsig(void) {
    for (int s = 1; s < 65; s++) {
        if (s != SIGKILL && s != SIGSTOP) signal(s, count_sig);
    }
    const int sigs[] = {0, 65, 110, 255};
    for (unsigned i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        /* A fork by hand: no CLONE_VM, no new stack; the child ends at once, the second
         * one by a signal (the VMM's path for a killed process). */
        for (int killed = 0; killed < 2; killed++) {
            long pid = syscall(SYS_clone, (long)sigs[i], 0L, 0L, 0L, 0L);
            if (pid < 0) {
                printf("clone exit signal %d: errno %d\n", sigs[i], errno);
                break;
            }
            if (pid == 0) {
                if (killed) syscall(SYS_kill, syscall(SYS_getpid), SIGKILL);
                syscall(SYS_exit_group, 5);
            }
            int st = 0;
            /* Not SIGCHLD: a "clone child", invisible to a wait without __WCLONE or
             * __WALL (ECHILD, not a hang). */
            errno = 0;
            long r = waitpid((pid_t)pid, &st, killed ? 0 : WNOHANG);
            int plain_errno = errno;
            r = waitpid((pid_t)pid, &st, killed ? __WALL : __WCLONE);
            printf("exit signal %d: plain wait errno %d, reaped %d, %s %d\n", sigs[i],
                   plain_errno, r == pid, WIFSIGNALED(st) ? "signal" : "code",
                   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        }
    }
    /* A fork child is no clone child: __WCLONE does not see it; __WALL and a plain
     * wait do. Unknown option bits are EINVAL. */
    pid_t c = fork();
    if (c == 0) _exit(6);
    errno = 0;
    long r = waitpid(c, NULL, __WCLONE);
    printf("fork child with __WCLONE: %ld errno %d\n", r, errno);
    errno = 0;
    r = waitpid(c, NULL, 0x10);
    printf("bad option: %ld errno %d\n", r, errno);
    siginfo_t si;
    errno = 0;
    r = waitid(P_PID, (id_t)c, &si, WEXITED | 0x10);
    printf("waitid bad option: %ld errno %d\n", r, errno);
    int st = 0;
    r = waitpid(c, &st, 0);
    printf("fork child: reaped %d code %d\n", r == c, WEXITSTATUS(st));
    printf("signals seen %d\n", (int)signals_seen);
    return 0;
}

int main(int argc, char **argv) {
    self = argv[0][0] == '/' ? argv[0] : "/proc/self/exe";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "fork")) return do_fork();
    if (!strcmp(m, "exec")) return do_exec();
    if (!strcmp(m, "vfork")) return do_vfork();
    if (!strcmp(m, "threads")) return do_threads();
    if (!strcmp(m, "signals")) return do_signals();
    if (!strcmp(m, "pgrp")) return do_pgrp();
    if (!strcmp(m, "bomb")) return do_bomb();
    if (!strcmp(m, "reaped")) return do_reaped();
    if (!strcmp(m, "shm")) return do_shm();
    if (!strcmp(m, "stop")) return do_stop();
    if (!strcmp(m, "exitsig")) return do_exitsig();
    if (!strcmp(m, "unimpl")) {
        long r = syscall(425, 1, NULL);
        printf("io_uring_setup %ld %s\n", r, errno == ENOSYS ? "ENOSYS" : "?");
        return 0;
    }
    if (!strcmp(m, "child") && argc > 2) {
        printf("child says %s\n", getenv("FROM") ? getenv("FROM") : "-");
        return atoi(argv[2]);
    }
    return 2;
}
