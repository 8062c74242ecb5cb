/* Attack probes run inside a sandbox. Usage: attack NAME [ARG]
 * Prints "NAME: allowed" when the operation succeeded, or "NAME: blocked errno=N (text)"
 * when it failed, and exits 0 either way (so the test reads the verdict, not a crash).
 * Probes that the sandbox is expected to kill (int80) never print. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

static int report(const char *name, long rc) {
    if (rc >= 0) printf("%s: allowed\n", name);
    else printf("%s: blocked errno=%d (%s)\n", name, errno, strerror(errno));
    return 0;
}

/* A pathname sockaddr_un for `path`; returns its length. */
static socklen_t unix_addr(struct sockaddr_un *a, const char *path) {
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    strncpy(a->sun_path, path, sizeof a->sun_path - 1);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a->sun_path) + 1);
}

static int unix_connect(const char *path) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return -1;
    struct sockaddr_un a;
    socklen_t len = unix_addr(&a, path);
    return connect(s, (struct sockaddr *)&a, len);
}

/* The race: one thread keeps flipping one byte of the address between the sandbox's own
 * socket (/tmp/race-a/NAME) and the host's (/tmp/race-b/NAME, race-b a symlink to the
 * host socket's directory) while the other connects with it, so that a supervisor that
 * checked one address and let the kernel read it again would connect to the other. A
 * one-byte store is atomic: every address the kernel could read is one of the two. */
static struct sockaddr_un race_addr;
static volatile int race_stop;
static size_t race_at;
static void *race_flip(void *unused) {
    (void)unused;
    for (unsigned i = 0; !race_stop; i++) ((volatile char *)race_addr.sun_path)[race_at] = (i & 1) ? 'b' : 'a';
    return NULL;
}
static void *race_accept(void *arg) {
    int l = *(int *)arg;
    while (!race_stop) {
        int c = accept(l, NULL, NULL);
        if (c >= 0) close(c);
    }
    return NULL;
}
static int unix_connect_race(const char *name, const char *host_sock, int rounds) {
    char dir[108], own[108], via[108];
    const char *base = strrchr(host_sock, '/');
    if (!base || base == host_sock) return report(name, -1);
    snprintf(dir, sizeof dir, "%.*s", (int)(base - host_sock), host_sock);
    snprintf(own, sizeof own, "/tmp/race-a%s", base);
    snprintf(via, sizeof via, "/tmp/race-b%s", base);
    mkdir("/tmp/race-a", 0755);
    unlink("/tmp/race-b");
    if (symlink(dir, "/tmp/race-b") < 0) return report(name, -1);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un a;
    socklen_t len = unix_addr(&a, own);
    unlink(own);
    if (l < 0 || bind(l, (struct sockaddr *)&a, len) < 0 || listen(l, 128) < 0) return report(name, -1);
    unix_addr(&race_addr, own);
    race_at = strlen("/tmp/race-");
    pthread_t flip, acc;
    pthread_create(&flip, NULL, race_flip, NULL);
    pthread_create(&acc, NULL, race_accept, &l);
    int own_hits = 0, leaks = 0, refused = 0;
    for (int i = 0; i < rounds; i++) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0) break;
        if (connect(s, (struct sockaddr *)&race_addr, len) == 0) {
            struct sockaddr_un peer;
            socklen_t pl = sizeof peer;
            memset(&peer, 0, sizeof peer);
            if (getpeername(s, (struct sockaddr *)&peer, &pl) == 0 && strcmp(peer.sun_path, own) == 0) own_hits++;
            else leaks++;
        } else {
            refused++;
        }
        close(s);
    }
    race_stop = 1;
    pthread_join(flip, NULL);
    pthread_join(acc, NULL);
    if (leaks) printf("%s: allowed (%d connections to something but the sandbox's own socket)\n", name, leaks);
    else printf("%s: blocked (%d connections, all to the sandbox's own socket; %d refused)\n", name, own_hits, refused);
    return 0;
}

/* Whether `path` now has a set-id bit (what matters, whatever the call returned). */
static int report_setid(const char *name, long rc, const char *path) {
    struct stat st;
    if (rc >= 0 && stat(path, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) {
        printf("%s: allowed (mode %o)\n", name, st.st_mode & 07777);
        return 0;
    }
    if (rc >= 0) { printf("%s: blocked (no set-id bit kept)\n", name); return 0; }
    return report(name, -1);
}

/* Probes of host facts, special files, set-id modes and host sockets. Returns -1 when
 * `n` is none of them. */
static int leak_probe(const char *n, int argc, char **argv) {
    const char *p = argc > 2 ? argv[2] : "";
    unsigned mode = argc > 3 ? (unsigned)strtoul(argv[3], NULL, 8) : 0;
    if (!strcmp(n, "unix-connect")) return report(n, unix_connect(p));
    if (!strcmp(n, "unix-connect-via-link") && argc > 3) {
        /* LINK (argv[3]) -> PATH, planted in a writable place, then connected to. */
        if (symlink(p, argv[3]) < 0 && errno != EEXIST) return report(n, -1);
        return report(n, unix_connect(argv[3]));
    }
    if (!strcmp(n, "unix-connect-fdpath")) {
        int fd = open(p, O_PATH);
        if (fd < 0) return report(n, -1);
        char via[64];
        snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
        return report(n, unix_connect(via));
    }
    if (!strcmp(n, "unix-connect-race")) return unix_connect_race(n, p, argc > 3 ? atoi(argv[3]) : 2000);
    if (!strcmp(n, "unix-sendto")) {
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, p);
        return report(n, s < 0 ? -1 : sendto(s, "x", 1, 0, (struct sockaddr *)&a, len));
    }
    if (!strcmp(n, "unix-sendto-pair")) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) < 0) return report(n, -1);
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, p);
        return report(n, sendto(sv[0], "x", 1, 0, (struct sockaddr *)&a, len));
    }
    if (!strcmp(n, "unix-sendmsg-stream")) {
        /* A stream socket naming the host socket in sendmsg: never a connection. */
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, p);
        struct iovec iov = {"x", 1};
        struct msghdr m = {.msg_name = &a, .msg_namelen = len, .msg_iov = &iov, .msg_iovlen = 1};
        return report(n, s < 0 ? -1 : sendmsg(s, &m, MSG_NOSIGNAL));
    }
    if (!strcmp(n, "unix-own")) {
        /* A control, not an attack: the sandbox's own socket at P must work. */
        int l = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, p);
        const char *step = "socket";
        long rc = l;
        if (rc >= 0) { step = "bind"; rc = bind(l, (struct sockaddr *)&a, len); }
        if (rc >= 0) { step = "listen"; rc = listen(l, 1); }
        if (rc >= 0) { step = "connect"; rc = unix_connect(p); }
        if (rc < 0) printf("%s: %s failed errno=%d (%s)\n", n, step, errno, strerror(errno));
        else printf("%s: works\n", n);
        return 0;
    }
    if (!strcmp(n, "mkfifo")) return report(n, mkfifo(p, 0666));
    if (!strcmp(n, "mknod-fifo")) return report(n, mknod(p, S_IFIFO | 0666, 0));
    if (!strcmp(n, "mknod-sock")) return report(n, mknod(p, S_IFSOCK | 0666, 0));
    if (!strcmp(n, "unix-bind")) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a;
        socklen_t len = unix_addr(&a, p);
        return report(n, s < 0 ? -1 : bind(s, (struct sockaddr *)&a, len));
    }
    /* Set-id modes on FILE (created 0644 first where it must exist). */
    if (!strcmp(n, "chmod")) { close(open(p, O_CREAT | O_WRONLY, 0644)); return report_setid(n, chmod(p, mode), p); }
    if (!strcmp(n, "fchmod")) { int fd = open(p, O_CREAT | O_WRONLY, 0644); return report_setid(n, fd < 0 ? -1 : fchmod(fd, mode), p); }
    if (!strcmp(n, "fchmodat")) { close(open(p, O_CREAT | O_WRONLY, 0644)); return report_setid(n, fchmodat(AT_FDCWD, p, mode, 0), p); }
    if (!strcmp(n, "fchmodat2")) { close(open(p, O_CREAT | O_WRONLY, 0644)); return report_setid(n, syscall(452 /* fchmodat2 */, AT_FDCWD, p, mode, 0), p); }
    if (!strcmp(n, "open-creat")) return report_setid(n, open(p, O_CREAT | O_EXCL | O_WRONLY, mode), p);
    if (!strcmp(n, "creat")) return report_setid(n, creat(p, mode), p);
    if (!strcmp(n, "openat-creat")) return report_setid(n, openat(AT_FDCWD, p, O_CREAT | O_EXCL | O_WRONLY, mode), p);
    if (!strcmp(n, "openat2-creat")) {
        struct open_how how = {.flags = O_CREAT | O_EXCL | O_WRONLY, .mode = mode};
        return report_setid(n, syscall(SYS_openat2, AT_FDCWD, p, &how, sizeof how), p);
    }
    if (!strcmp(n, "mknod-reg")) return report_setid(n, mknod(p, S_IFREG | mode, 0), p);
    if (!strcmp(n, "tmpfile-link") && argc > 4) {
        /* An unnamed file with a set-id mode in directory P, linked in as argv[4]. */
        int fd = open(p, O_TMPFILE | O_WRONLY, mode);
        char via[64];
        snprintf(via, sizeof via, "/proc/self/fd/%d", fd);
        long rc = fd < 0 ? -1 : linkat(AT_FDCWD, via, AT_FDCWD, argv[4], AT_SYMLINK_FOLLOW);
        return report_setid(n, rc, argv[4]);
    }
    if (!strcmp(n, "setxattr-cap")) {
        /* security.capability v2 granting CAP_SETUID (7), permitted and effective. */
        unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02, 0x80, 0, 0, 0, 0x80, 0, 0, 0};
        close(open(p, O_CREAT | O_WRONLY, 0755));
        return report(n, setxattr(p, "security.capability", cap, sizeof cap, 0));
    }
    /* A host fact: allowed when the file reads non-empty (and holds argv[3], if given). */
    if (!strcmp(n, "read-fact")) {
        static char buf[1 << 16];
        int fd = open(p, O_RDONLY);
        if (fd < 0) return report(n, -1);
        ssize_t got = read(fd, buf, sizeof buf - 1);
        if (got <= 0) { printf("%s %s: blocked (empty)\n", n, p); return 0; }
        buf[got] = 0;
        if (argc > 3 && !strstr(buf, argv[3])) { printf("%s %s: blocked (not the host's)\n", n, p); return 0; }
        printf("%s %s: allowed (%zd bytes)\n", n, p, got);
        return 0;
    }
    if (!strcmp(n, "list-fact")) {
        DIR *d = opendir(p);
        if (!d) return report(n, -1);
        int entries = 0;
        for (struct dirent *e; (e = readdir(d));) if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) entries++;
        if (entries) printf("%s %s: allowed (%d entries)\n", n, p, entries);
        else printf("%s %s: blocked (empty)\n", n, p);
        return 0;
    }
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *n = argv[1];
    if (leak_probe(n, argc, argv) == 0) return 0;
    if (!strcmp(n, "unshare-user")) return report(n, unshare(CLONE_NEWUSER));
    if (!strcmp(n, "unshare-mount")) return report(n, unshare(CLONE_NEWNS));
    if (!strcmp(n, "unshare-net")) return report(n, unshare(CLONE_NEWNET));
    if (!strcmp(n, "clone-newuser")) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return report(n, pid);
    }
    if (!strcmp(n, "clone3")) {
        long args[11] = {0};
        args[4] = SIGCHLD; /* exit_signal */
        long pid = syscall(SYS_clone3, args, sizeof(long) * 11);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid(pid, 0, 0);
        return report(n, pid);
    }
    if (!strcmp(n, "setns")) { int fd = open("/proc/1/ns/net", O_RDONLY); return report(n, fd < 0 ? -1 : setns(fd, 0)); }
    if (!strcmp(n, "mount")) return report(n, mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(n, "umount")) return report(n, umount2("/proc", MNT_DETACH));
    if (!strcmp(n, "pivot_root")) return report(n, syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(n, "chroot")) return report(n, chroot("/tmp"));
    if (!strcmp(n, "bpf")) { union bpf_attr a; memset(&a, 0, sizeof a); a.map_type = BPF_MAP_TYPE_ARRAY; a.key_size = 4; a.value_size = 4; a.max_entries = 1; return report(n, syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof a)); }
    if (!strcmp(n, "keyctl")) return report(n, syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0));
    if (!strcmp(n, "add_key")) return report(n, syscall(SYS_add_key, "user", "hsb", "x", 1, -3));
    if (!strcmp(n, "io_uring")) { char p[120]; memset(p, 0, sizeof p); return report(n, syscall(SYS_io_uring_setup, 4, p)); }
    if (!strcmp(n, "perf")) { struct perf_event_attr a; memset(&a, 0, sizeof a); a.size = sizeof a; a.type = PERF_TYPE_SOFTWARE; a.config = PERF_COUNT_SW_CPU_CLOCK; return report(n, syscall(SYS_perf_event_open, &a, 0, -1, -1, 0)); }
    if (!strcmp(n, "userfaultfd")) return report(n, syscall(SYS_userfaultfd, 0));
    if (!strcmp(n, "ptrace-traceme")) return report(n, ptrace(PTRACE_TRACEME, 0, 0, 0));
    if (!strcmp(n, "ptrace-attach-init")) return report(n, ptrace(PTRACE_ATTACH, 1, 0, 0));
    if (!strcmp(n, "process_vm_readv")) { char buf[8], src[8]; struct iovec l = {buf, 8}, r = {src, 8}; return report(n, syscall(SYS_process_vm_readv, getppid() > 0 ? getppid() : 1, &l, 1, &r, 1, 0)); }
    if (!strcmp(n, "init_module")) return report(n, syscall(SYS_init_module, "", 0, ""));
    if (!strcmp(n, "kexec")) return report(n, syscall(SYS_kexec_load, 0, 0, 0, 0));
    if (!strcmp(n, "reboot")) return report(n, syscall(SYS_reboot, 0xfee1dead, 672274793, 0x4321fedc, 0));
    if (!strcmp(n, "x32-getpid")) return report(n, syscall(0x40000000 | 39));
    if (!strcmp(n, "int80-getpid")) { long r; __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory"); printf("%s: returned %ld\n", n, r); return 0; }
    if (!strcmp(n, "tiocsti")) { char c = 'x'; int fd = open("/dev/tty", O_RDWR); if (fd < 0) fd = 0; return report(n, ioctl(fd, TIOCSTI, &c)); }
    if (!strcmp(n, "kill-init")) return report(n, kill(1, SIGTERM));
    /* SIGTERM, SIGKILL and SIGSTOP to the sandbox's init, then whether it is still
       there and running: refused, or without effect, is "blocked". */
    if (!strcmp(n, "kill-init-effect")) {
        int sent = (kill(1, SIGTERM) == 0) + (kill(1, SIGKILL) == 0) + (kill(1, SIGSTOP) == 0);
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
        char st[512] = {0}, state = '?';
        FILE *f = fopen("/proc/1/stat", "r");
        if (f) { if (fgets(st, sizeof st, f)) { char *p = strrchr(st, ')'); if (p && p[1]) state = p[2]; } fclose(f); }
        if (kill(1, 0) == 0 && state != 'T' && state != 't') {
            printf("%s: blocked errno=0 (%d of 3 signals sent, without effect: init state %c)\n", n, sent, state);
            return 0;
        }
        printf("%s: allowed (init state %c)\n", n, state);
        return 0;
    }
    if (!strcmp(n, "kill-all")) return report(n, kill(-1, SIGKILL) < 0 && errno == ESRCH ? 0 : -1);
    if (!strcmp(n, "vsock")) return report(n, socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    if (!strcmp(n, "packet")) return report(n, socket(17 /* AF_PACKET */, SOCK_RAW, 0));
    if (!strcmp(n, "netlink-audit")) return report(n, socket(AF_NETLINK, SOCK_RAW, 9 /* NETLINK_AUDIT */));
    if (!strcmp(n, "mknod-char")) return report(n, mknod("/tmp/mem", S_IFCHR | 0666, makedev(1, 1)));
    if (!strcmp(n, "open-write") && argc > 2) { int fd = open(argv[2], O_WRONLY | O_CREAT, 0644); if (fd >= 0) { if (write(fd, "x", 1) < 0) fd = -1; } return report(n, fd); }
    if (!strcmp(n, "open-read") && argc > 2) return report(n, open(argv[2], O_RDONLY));
    if (!strcmp(n, "connect") && argc > 2) {
        int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a; memset(&a, 0, sizeof a);
        a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[2])); a.sin_addr.s_addr = htonl(0x7f000001);
        return report(n, connect(s, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(n, "bind") && argc > 2) {
        int s = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a; memset(&a, 0, sizeof a);
        a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[2])); a.sin_addr.s_addr = htonl(0x7f000001);
        return report(n, bind(s, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(n, "abstract-connect") && argc > 2) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0); struct sockaddr_un { sa_family_t f; char p[108]; } a; memset(&a, 0, sizeof a);
        a.f = AF_UNIX; strncpy(a.p + 1, argv[2], 100);
        return report(n, connect(s, (struct sockaddr *)&a, sizeof(sa_family_t) + 1 + strlen(argv[2])));
    }
    if (!strcmp(n, "setuid0")) return report(n, setuid(0));
    if (!strcmp(n, "symlink-read") && argc > 3) {
        /* plant LINK -> TARGET, then read through it */
        if (symlink(argv[3], argv[2]) < 0 && errno != EEXIST) return report(n, -1);
        int fd = open(argv[2], O_RDONLY);
        char buf[64];
        return report(n, fd < 0 ? -1 : read(fd, buf, sizeof buf));
    }
    if (!strcmp(n, "link") && argc > 3) return report(n, link(argv[2], argv[3]));
    if (!strcmp(n, "udp-send") && argc > 2) {
        int s = socket(AF_INET, SOCK_DGRAM, 0); struct sockaddr_in a; memset(&a, 0, sizeof a);
        a.sin_family = AF_INET; a.sin_port = htons(atoi(argv[2])); a.sin_addr.s_addr = htonl(0x7f000001);
        return report(n, s < 0 ? -1 : sendto(s, "x", 1, 0, (struct sockaddr *)&a, sizeof a));
    }
    if (!strcmp(n, "kill") && argc > 2) return report(n, kill(atoi(argv[2]), 0));
    if (!strcmp(n, "fds")) {
        int count = 0;
        for (int fd = 0; fd < 4096; fd++) if (fcntl(fd, F_GETFD) >= 0) count++;
        printf("fds: %d\n", count);
        return 0;
    }
    if (!strcmp(n, "env")) { extern char **environ; for (char **e = environ; *e; e++) printf("%s\n", *e); return 0; }
    if (!strcmp(n, "rdmsr")) { unsigned lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x10)); printf("%s: returned %u\n", n, lo); return 0; }
    if (!strcmp(n, "cpuid")) { unsigned a, b, c, d; __asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000)); printf("%s: %08x %.4s%.4s%.4s\n", n, a, (char *)&b, (char *)&c, (char *)&d); return 0; }
    fprintf(stderr, "unknown probe %s\n", n);
    return 2;
}
