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
#include <unistd.h>

static int report(const char *name, long rc) {
    if (rc >= 0) printf("%s: allowed\n", name);
    else printf("%s: blocked errno=%d (%s)\n", name, errno, strerror(errno));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *n = argv[1];
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
