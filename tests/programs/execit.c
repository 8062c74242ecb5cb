/* execit PATH...: execve each PATH in turn (in a child, so one that runs does not end
 * the list) and print how it went: "PATH: errno=N", "PATH: exited N" or
 * "PATH: signal N". Then "done". The escape catalogue feeds it malformed programs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        int fds[2];
        if (pipe2(fds, O_CLOEXEC)) return 3;
        pid_t c = fork();
        if (c < 0) return 4;
        if (c == 0) {
            close(fds[0]);
            char *args[] = {argv[i], "arg", NULL};
            char *env[] = {"PATH=/bin", NULL};
            execve(argv[i], args, env);
            int e = errno;
            (void)!write(fds[1], &e, sizeof e);
            _exit(127);
        }
        close(fds[1]);
        int e = 0;
        ssize_t n = read(fds[0], &e, sizeof e);
        close(fds[0]);
        int st = 0;
        waitpid(c, &st, 0);
        if (n == (ssize_t)sizeof e) printf("%s: errno=%d\n", argv[i], e);
        else if (WIFEXITED(st)) printf("%s: exited %d\n", argv[i], WEXITSTATUS(st));
        else if (WIFSIGNALED(st)) printf("%s: signal %d\n", argv[i], WTERMSIG(st));
        fflush(stdout);
    }
    printf("done\n");
    return 0;
}
