/* Readiness and in-guest IPC: socketpair (stream and datagram), eventfd, epoll,
 * poll and select on pipes, ioctl basics, and getdents64 on a large directory. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
    if (fork() == 0) {
        char b[16] = {0};
        int n = read(sv[1], b, sizeof b);
        write(sv[1], "pong", 4);
        _exit(n == 4 && !memcmp(b, "ping", 4) ? 0 : 1);
    }
    send(sv[0], "ping", 4, 0);
    char b[16] = {0};
    int n = recv(sv[0], b, sizeof b, 0);
    int st;
    wait(&st);
    printf("stream %d %s child %d\n", n, b, WEXITSTATUS(st));
    int dg[2];
    socketpair(AF_UNIX, SOCK_DGRAM, 0, dg);
    send(dg[0], "one", 3, 0);
    send(dg[0], "three", 5, 0);
    n = recv(dg[1], b, sizeof b, 0);
    int m = recv(dg[1], b + 8, sizeof b - 8, 0);
    printf("dgram %d %d\n", n, m);
    shutdown(sv[0], SHUT_WR);
    printf("eof after shutdown %zd\n", read(sv[1], b, 1));

    int ev = eventfd(0, EFD_NONBLOCK);
    uint64_t v = 3;
    write(ev, &v, 8);
    write(ev, &v, 8);
    v = 0;
    read(ev, &v, 8);
    if (v != 6) return 3;
    ssize_t again = read(ev, &v, 8);
    printf("eventfd 6 again %zd %s\n", again, errno == EAGAIN ? "EAGAIN" : "?");

    int p[2];
    pipe(p);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event e = {.events = EPOLLIN, .data.u64 = 77};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &e);
    struct epoll_event out[4];
    printf("epoll empty %d\n", epoll_wait(ep, out, 4, 10));
    write(p[1], "x", 1);
    n = epoll_wait(ep, out, 4, 1000);
    printf("epoll %d data %llu in %d\n", n, (unsigned long long)out[0].data.u64, !!(out[0].events & EPOLLIN));

    struct pollfd pf[2] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}};
    int pr = poll(pf, 2, 0);
    printf("poll %d %d %d\n", pr, !!(pf[0].revents & POLLIN), !!(pf[1].revents & POLLOUT));
    fd_set rs;
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    struct timeval tv = {0, 0};
    printf("select %d\n", select(p[0] + 1, &rs, NULL, NULL, &tv));
    int avail = -1;
    ioctl(p[0], FIONREAD, &avail);
    struct termios t;
    int tc = ioctl(0, TCGETS, &t);
    printf("fionread %d tcgets %d %s\n", avail, tc, errno == ENOTTY ? "ENOTTY" : "?");

    mkdir("/tmp/big", 0755);
    for (int i = 0; i < 3000; i++) {
        char name[64];
        snprintf(name, sizeof name, "/tmp/big/file-with-a-longish-name-%04d", i);
        close(open(name, O_CREAT | O_WRONLY, 0644));
    }
    DIR *d = opendir("/tmp/big");
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d))) count++;
    closedir(d);
    printf("entries %d\n", count);
    return 0;
}
