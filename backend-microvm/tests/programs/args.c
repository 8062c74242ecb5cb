/* Prints what the process was started with: argv, some of envp, auxv entries, ids,
 * uname and the working directory; exits with the code in $EXIT_CODE (default 0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <errno.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++)
        printf("argv[%d]=%s\n", i, argv[i]);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "HSB_", 4) == 0 || strncmp(*e, "PATH=", 5) == 0)
            printf("env %s\n", *e);
    printf("AT_PAGESZ=%lu\n", getauxval(AT_PAGESZ));
    unsigned char *r = (unsigned char *)getauxval(AT_RANDOM);
    int nonzero = 0;
    for (int i = 0; r && i < 16; i++)
        nonzero |= r[i];
    printf("AT_RANDOM=%s\n", r && nonzero ? "16 random bytes" : "missing");
    printf("AT_PHDR=%s\n", getauxval(AT_PHDR) ? "set" : "missing");
    printf("AT_HWCAP=%s\n", getauxval(AT_HWCAP) ? "set" : "missing");
    printf("AT_UID=%lu AT_EGID=%lu\n", getauxval(AT_UID), getauxval(AT_EGID));
    printf("uid=%d gid=%d euid=%d pid=%d ppid=%d\n", getuid(), getgid(), geteuid(), getpid(), getppid());
    struct utsname u;
    uname(&u);
    printf("uname=%s %s %s\n", u.sysname, u.nodename, u.machine);
    char cwd[256];
    printf("cwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
    /* TLS must work: errno is thread-local in both libcs. */
    close(-1);
    printf("tls errno=%d\n", errno);
    const char *code = getenv("EXIT_CODE");
    return code ? atoi(code) : 0;
}
