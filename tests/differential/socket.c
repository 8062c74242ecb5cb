/* Sockets: families and types (the micro-VM has socket pairs only), socket pairs of
 * every type, send/recv and their flags, messages, shutdown, options, names. */
#include "probe.h"

#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

static int revents(int fd, short want);

static void creation(void) {
  CHECK("socket.unix.stream", socket(AF_UNIX, SOCK_STREAM, 0) >= 0);
  CHECK("socket.unix.badtype", socket(AF_UNIX, 99, 0));
  CHECK("socket.unix.badproto", socket(AF_UNIX, SOCK_STREAM, 5));
  CHECK("socket.inet", socket(AF_INET, SOCK_STREAM, 0) >= 0);
  CHECK("socket.inet6", socket(AF_INET6, SOCK_DGRAM, 0) >= 0);
  CHECK("socket.badfamily", socket(999, SOCK_STREAM, 0));
  CHECK("socket.netlink", socket(AF_NETLINK, SOCK_RAW, 0) >= 0);
  CHECK("socket.packet", socket(AF_PACKET, SOCK_RAW, 0));
  CHECK("socket.inet.raw", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
  int sv[2];
  CHECK("socketpair.inet", socketpair(AF_INET, SOCK_STREAM, 0, sv));
  CHECK("socketpair.badtype", socketpair(AF_UNIX, 99, 0, sv));
  CHECK("socketpair.badflags", socketpair(AF_UNIX, SOCK_STREAM | 0x1000, 0, sv));
  CHECK("socketpair.badproto", socketpair(AF_UNIX, SOCK_STREAM, 1, sv));
  CHECK("socketpair.efault", socketpair(AF_UNIX, SOCK_STREAM, 0, (void *)8));
}

/* A stream pair's buffer: Linux's default (SO_SNDBUF 212992) takes about 200 KiB
 * before the writer waits (what it takes exactly depends on the writes' sizes). */
static void buffers(void) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
    return;
  int v = 0;
  socklen_t len = sizeof v;
  CHECKX("buffer.sndbuf", getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &v, &len), "%d", v);
  CHECKX("buffer.rcvbuf", getsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &v, &len), "%d", v);
  static char big[1 << 20];
  CHECK("buffer.stream.write200000", write(sv[0], big, 200000));
  long more = 0, n;
  while ((n = write(sv[0], big, 65536)) > 0)
    more += n;
  FACT("buffer.stream.full", "more than 200000: %d, less than 256 KiB: %d, then %s",
       200000 + more > 200000, 200000 + more < (256 << 10), errno == EAGAIN ? "EAGAIN" : "?");
  long got = 0;
  while ((n = read(sv[1], big, sizeof big)) > 0)
    got += n;
  FACT("buffer.stream.drained", "all read back: %d", got == 200000 + more);
  close(sv[0]);
  close(sv[1]);
}

static void pairs(void) {
  int sv[2];
  signal(SIGPIPE, SIG_IGN);
  CHECK("socketpair.stream", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  CHECK("send", send(sv[0], "hello", 5, 0));
  char b[32] = {0};
  CHECKX("recv.peek", recv(sv[1], b, sizeof b, MSG_PEEK), "%s", b);
  CHECKX("recv", recv(sv[1], b, 3, 0), "%.3s", b);
  CHECK("recv.dontwait.rest", recv(sv[1], b, sizeof b, MSG_DONTWAIT));
  CHECK("recv.dontwait.empty", recv(sv[1], b, sizeof b, MSG_DONTWAIT));
  CHECK("recv.trunc.stream", recv(sv[1], b, 1, MSG_DONTWAIT | MSG_TRUNC));
  /* Bytes queued before the reader shuts its side: still read, then the end. */
  CHECK("shutrd.send", send(sv[0], "xy", 2, 0));
  CHECK("shutrd.shutdown", shutdown(sv[1], SHUT_RD));
  CHECK("shutrd.queued.recv", recv(sv[1], b, sizeof b, MSG_DONTWAIT));
  CHECK("shutrd.eof", recv(sv[1], b, sizeof b, MSG_DONTWAIT));
  CHECK("shutrd.peer.send", send(sv[0], "z", 1, MSG_DONTWAIT | MSG_NOSIGNAL));
  close(sv[0]);
  close(sv[1]);
  CHECK("socketpair.stream.again", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  int type = 0;
  socklen_t len = sizeof type;
  CHECKX("getsockopt.type", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &len), "type=%d len=%d", type, len);
  len = 2;
  CHECKX("getsockopt.short", getsockopt(sv[0], SOL_SOCKET, SO_TYPE, &type, &len), "len=%d", len);
  CHECK("getsockopt.badlevel", getsockopt(sv[0], 999, SO_TYPE, &type, &len));
  CHECK("getsockopt.badname", getsockopt(sv[0], SOL_SOCKET, 9999, &type, &len));
  len = sizeof type;
  CHECKX("getsockopt.error", getsockopt(sv[0], SOL_SOCKET, SO_ERROR, &type, &len), "%d", type);
  CHECKX("getsockopt.domain", getsockopt(sv[0], SOL_SOCKET, SO_DOMAIN, &type, &len), "%d", type);
  CHECKX("getsockopt.acceptconn", getsockopt(sv[0], SOL_SOCKET, SO_ACCEPTCONN, &type, &len), "%d", type);
  struct ucred cr;
  len = sizeof cr;
  CHECKX("getsockopt.peercred", getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &cr, &len), "pid=%d uid=%d", cr.pid == getpid(), cr.uid == getuid());
  int one = 1;
  CHECK("setsockopt.reuseaddr", setsockopt(sv[0], SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  CHECK("setsockopt.short", setsockopt(sv[0], SOL_SOCKET, SO_REUSEADDR, &one, 2));
  CHECK("setsockopt.badlevel", setsockopt(sv[0], 999, 1, &one, sizeof one));
  CHECK("setsockopt.notsock", setsockopt(0, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
  struct sockaddr_un un;
  len = sizeof un;
  CHECKX("getsockname", getsockname(sv[0], (void *)&un, &len), "len=%d family=%d", len, un.sun_family);
  len = sizeof un;
  CHECKX("getpeername", getpeername(sv[0], (void *)&un, &len), "len=%d family=%d", len, un.sun_family);
  CHECK("getsockname.notsock", getsockname(0, (void *)&un, &len));
  CHECK("bind.pair", bind(sv[0], (void *)&un, sizeof(sa_family_t)));
  CHECK("listen.pair", listen(sv[0], 1));
  CHECK("accept.pair", accept(sv[0], NULL, NULL));
  un.sun_family = AF_UNIX;
  strcpy(un.sun_path, "nope");
  CHECK("connect.pair", connect(sv[0], (void *)&un, sizeof un));
  CHECK("shutdown.bad", shutdown(sv[0], 7));
  CHECK("shutdown.wr", shutdown(sv[0], SHUT_WR));
  CHECK("send.after.shutdown", send(sv[0], "x", 1, 0));
  CHECK("recv.eof", recv(sv[1], b, sizeof b, 0));
  CHECK("send.other.way", send(sv[1], "y", 1, 0));
  CHECK("recv.other.way", recv(sv[0], b, sizeof b, 0));
  close(sv[1]);
  CHECK("recv.closed.peer", recv(sv[0], b, sizeof b, 0));
  close(sv[0]);
  CHECK("socketpair.stream2", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  close(sv[1]);
  CHECK("send.nopeer", send(sv[0], "x", 1, 0));
  CHECK("send.nopeer.nosignal", send(sv[0], "x", 1, MSG_NOSIGNAL));
  close(sv[0]);
  CHECK("send.notsock", send(0, "x", 1, 0));
  CHECK("send.badfd", send(999, "x", 1, 0));
}

static void datagrams(void) {
  int sv[2];
  CHECK("socketpair.dgram", socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
  CHECK("send.dgram", send(sv[0], "abcdef", 6, 0));
  CHECK("send.dgram2", send(sv[0], "gh", 2, 0));
  char b[32] = {0};
  CHECKX("recv.dgram.short", recv(sv[1], b, 3, 0), "%.3s", b);
  CHECKX("recv.dgram.next", recv(sv[1], b, sizeof b, 0), "%.2s", b);
  send(sv[0], "ijklmn", 6, 0);
  CHECK("recv.dgram.trunc", recv(sv[1], b, 2, MSG_TRUNC));
  struct msghdr m = {0};
  struct iovec iov = {b, 2};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  send(sv[0], "opqrst", 6, 0);
  CHECKX("recvmsg.trunc.flag", recvmsg(sv[1], &m, 0), "flags=%x", m.msg_flags);
  struct sockaddr_un to = {.sun_family = AF_UNIX};
  strcpy(to.sun_path, "nowhere");
  CHECK("sendto.dgram.unnamed", sendto(sv[0], "x", 1, 0, (void *)&to, sizeof to));
  CHECK("sendto.dgram.badlen", sendto(sv[0], "x", 1, 0, (void *)&to, 1));
  CHECK("sendto.dgram.badfamily", sendto(sv[0], "x", 1, 0, (void *)&(struct sockaddr_in){.sin_family = AF_INET}, sizeof(struct sockaddr_in)));
  char big[300000];
  memset(big, 'z', sizeof big);
  CHECK("send.dgram.toobig", send(sv[0], big, sizeof big, 0));
  close(sv[0]);
  close(sv[1]);
  CHECK("socketpair.seqpacket", socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv));
  send(sv[0], "abcdef", 6, 0);
  CHECKX("recv.seqpacket.short", recv(sv[1], b, 3, 0), "%.3s", b);
  CHECK("recv.seqpacket.dropped", recv(sv[1], b, 3, MSG_DONTWAIT));
  CHECK("sendto.seqpacket.named", sendto(sv[0], "x", 1, 0, (void *)&to, sizeof to));
  /* A seqpacket peer's close ends the file (a datagram peer's does not): the queued
     message, then 0 at once, readable and hung up. */
  send(sv[0], "last", 4, 0);
  close(sv[0]);
  CHECKX("seqpacket.peer.closed.poll", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP), "");
  CHECKX("seqpacket.peer.closed.queued", recv(sv[1], b, sizeof b, 0), "%.1s", b);
  CHECKX("seqpacket.peer.closed.queued.last", recv(sv[1], b, sizeof b, 0), "%.4s", b);
  CHECK("seqpacket.peer.closed.eof", recv(sv[1], b, sizeof b, 0));
  close(sv[1]);
}

static void messages(void) {
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  char a[4] = "abc", b2[4] = "def";
  struct iovec iov[2] = {{a, 3}, {b2, 3}};
  struct msghdr m = {0};
  m.msg_iov = iov;
  m.msg_iovlen = 2;
  CHECK("sendmsg", sendmsg(sv[0], &m, 0));
  char r1[2], r2[8] = {0};
  struct iovec rv[2] = {{r1, 2}, {r2, 8}};
  struct msghdr rm = {0};
  rm.msg_iov = rv;
  rm.msg_iovlen = 2;
  CHECKX("recvmsg", recvmsg(sv[1], &rm, 0), "%.2s|%.4s flags=%x", r1, r2, rm.msg_flags);
  m.msg_iovlen = 1025;
  CHECK("sendmsg.iovmax", sendmsg(sv[0], &m, 0));
  m.msg_iovlen = 1;
  char ctl[CMSG_SPACE(sizeof(int))];
  m.msg_control = ctl;
  m.msg_controllen = sizeof ctl;
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  *(int *)CMSG_DATA(c) = 0;
  CHECK("sendmsg.rights", sendmsg(sv[0], &m, 0));
  m.msg_control = NULL;
  m.msg_controllen = 0;
  CHECK("sendmsg.efault", sendmsg(sv[0], (void *)8, 0));
  struct mmsghdr mm[2] = {{.msg_hdr = {.msg_iov = iov, .msg_iovlen = 1}}, {.msg_hdr = {.msg_iov = iov + 1, .msg_iovlen = 1}}};
  CHECKX("sendmmsg", sendmmsg(sv[0], mm, 2, 0), "len0=%u len1=%u", mm[0].msg_len, mm[1].msg_len);
  char x[16];
  struct iovec xv = {x, sizeof x};
  struct mmsghdr rmm[2] = {{.msg_hdr = {.msg_iov = &xv, .msg_iovlen = 1}}, {.msg_hdr = {.msg_iov = &xv, .msg_iovlen = 1}}};
  CHECKX("recvmmsg", recvmmsg(sv[1], rmm, 2, MSG_DONTWAIT, NULL), "len0=%u", rmm[0].msg_len);
  close(sv[0]);
  close(sv[1]);
}

/* The length of a pathname address of `path`, as applications compute it. */
static socklen_t un_addr(struct sockaddr_un *a, const char *path) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  strcpy(a->sun_path, path);
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1);
}

/* An abstract address: a NUL, then `name` (no terminator). */
static socklen_t abs_addr(struct sockaddr_un *a, const char *name) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path + 1, name, strlen(name));
  return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(name));
}

static int revents(int fd, short want) {
  struct pollfd p = {fd, want, 0};
  poll(&p, 1, 0);
  return p.revents;
}

/* shutdown(SHUT_RD) and SHUT_RDWR: what was queued is still read, then the end at once
   (blocking reads included); poll says readable; the peer's writes fail. */
static void shutdowns(void) {
  int sv[2];
  char b[32] = {0};
  signal(SIGPIPE, SIG_IGN);
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  CHECKX("shutrd.poll.before", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP), "");
  send(sv[0], "abcd", 4, 0);
  CHECK("shutrd.again.shutdown", shutdown(sv[1], SHUT_RD));
  CHECKX("shutrd.poll.queued", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP), "");
  CHECKX("shutrd.peer.poll", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP), "");
  CHECKX("shutrd.recv.part", recv(sv[1], b, 2, 0), "%.2s", b);
  CHECKX("shutrd.recv.waitall", recv(sv[1], b, sizeof b, MSG_WAITALL), "%.2s", b);
  CHECK("shutrd.recv.blocking.eof", recv(sv[1], b, sizeof b, 0));
  CHECK("shutrd.read.eof", read(sv[1], b, sizeof b));
  CHECKX("shutrd.poll.drained", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP), "");
  CHECK("shutrd.peer.write", write(sv[0], "z", 1));
  /* Refused whole, before the bytes are read: EPIPE even from a bad buffer. */
  CHECK("shutrd.peer.write.badbuf", write(sv[0], (void *)8, 1));
  CHECK("shutrd.peer.send.null", send(sv[0], NULL, 1, MSG_NOSIGNAL));
  CHECK("shutrd.send.own", send(sv[1], "y", 1, 0));
  CHECKX("shutrd.peer.recv", recv(sv[0], b, sizeof b, MSG_DONTWAIT), "%.1s", b);
  CHECK("shutrd.twice", shutdown(sv[1], SHUT_RD));
  send(sv[1], "w", 1, 0);
  CHECK("shutrdwr.shutdown", shutdown(sv[0], SHUT_RDWR));
  CHECKX("shutrdwr.recv.queued", recv(sv[0], b, sizeof b, 0), "%.1s", b);
  CHECK("shutrdwr.recv.eof", recv(sv[0], b, sizeof b, 0));
  CHECK("shutrdwr.send", send(sv[0], "v", 1, 0));
  CHECKX("shutrdwr.poll", revents(sv[0], POLLIN | POLLOUT | POLLRDHUP), "");
  close(sv[0]);
  close(sv[1]);
  /* A read looks at its buffer only when it finds something to copy: an empty socket
     answers EAGAIN whatever the buffer; bytes found with a bad buffer are EFAULT and
     stay (a stream), or are lost (a datagram). */
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv);
  CHECK("badbuf.stream.empty.recv", recv(sv[1], (void *)8, 4, 0));
  CHECK("badbuf.stream.empty.read", read(sv[1], (void *)8, 4));
  send(sv[0], "kept", 4, 0);
  CHECK("badbuf.stream.queued.recv", recv(sv[1], (void *)8, 4, 0));
  CHECKX("badbuf.stream.queued.after", recv(sv[1], b, sizeof b, 0), "%.4s", b);
  close(sv[0]);
  close(sv[1]);
  socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv);
  CHECK("badbuf.dgram.empty.recv", recv(sv[1], (void *)8, 4, 0));
  send(sv[0], "lost", 4, 0);
  send(sv[0], "next", 4, 0);
  CHECK("badbuf.dgram.queued.read", read(sv[1], (void *)8, 4));
  CHECKX("badbuf.dgram.queued.after", recv(sv[1], b, sizeof b, 0), "%.4s", b);
  close(sv[0]);
  close(sv[1]);
  socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
  send(sv[0], "abc", 3, 0);
  send(sv[0], "", 0, 0);
  CHECK("shutrd.dgram.shutdown", shutdown(sv[1], SHUT_RD));
  CHECKX("shutrd.dgram.poll", revents(sv[1], POLLIN | POLLOUT | POLLRDHUP), "");
  CHECKX("shutrd.dgram.recv", recv(sv[1], b, sizeof b, 0), "%.3s", b);
  CHECK("shutrd.dgram.recv.empty", recv(sv[1], b, sizeof b, 0));
  CHECK("shutrd.dgram.recv.end", recv(sv[1], b, sizeof b, 0));
  CHECK("shutrd.dgram.recv.dontwait", recv(sv[1], b, sizeof b, MSG_DONTWAIT));
  CHECK("shutrd.dgram.peer.send", send(sv[0], "d", 1, 0));
  close(sv[0]);
  close(sv[1]);
}

/* Named sockets: bind to a path, listen, connect, accept, names, backlog, unlink. */
static void named(void) {
  struct sockaddr_un a, n;
  socklen_t al = un_addr(&a, "named.sock"), nl;
  char b[64] = {0};
  int one = 1, v = 0;
  socklen_t vl = sizeof v;
  signal(SIGPIPE, SIG_IGN);
  int l = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK("named.listen.unbound", listen(l, 5));
  CHECK("named.bind.short", bind(l, (void *)&a, 1));
  CHECK("named.bind.toolong", bind(l, (void *)&a, sizeof a + 1));
  CHECK("named.bind.missingdir", bind(l, (void *)&(struct sockaddr_un){AF_UNIX, "nodir/x"}, sizeof a));
  CHECK("named.bind", bind(l, (void *)&a, al));
  CHECK("named.bind.again", bind(l, (void *)&a, al));
  int l2 = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK("named.bind.inuse", bind(l2, (void *)&a, al));
  struct stat st;
  CHECKX("named.stat", stat("named.sock", &st), "sock=%d", S_ISSOCK(st.st_mode));
  CHECK("named.open", open("named.sock", O_RDWR));
  nl = sizeof n;
  CHECKX("named.getsockname", getsockname(l, (void *)&n, &nl), "len=%d path=%s", nl, n.sun_path);
  int c = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK("named.connect.notlistening", connect(c, (void *)&a, al));
  CHECK("named.connect.badlen", connect(c, (void *)&a, 2));
  CHECK("named.connect.missing", connect(c, (void *)&(struct sockaddr_un){AF_UNIX, "missing"}, sizeof a));
  CHECK("named.connect.notsocket", connect(c, (void *)&(struct sockaddr_un){AF_UNIX, "."}, sizeof a));
  CHECK("named.listen", listen(l, 1));
  CHECKX("named.acceptconn", getsockopt(l, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl), "%d", v);
  CHECKX("named.poll.listen.empty", revents(l, POLLIN | POLLOUT), "");
  fcntl(l, F_SETFL, O_NONBLOCK);
  CHECK("named.accept.empty", accept(l, NULL, NULL));
  fcntl(l, F_SETFL, 0);
  CHECK("named.accept4.badflags", accept4(l, NULL, NULL, 1));
  CHECK("named.accept.notlistening", accept(c, NULL, NULL));
  CHECK("named.read.unconnected", read(c, b, 1));
  CHECK("named.write.unconnected", write(c, "x", 1));
  CHECK("named.sendto.unconnected", sendto(c, "x", 1, 0, (void *)&a, al));
  nl = sizeof n;
  CHECK("named.getpeername.unconnected", getpeername(c, (void *)&n, &nl));
  CHECKX("named.poll.unconnected", revents(c, POLLIN | POLLOUT), "");
  int d = socket(AF_UNIX, SOCK_DGRAM, 0);
  CHECK("named.connect.prototype", connect(d, (void *)&a, al));
  CHECK("named.connect", connect(c, (void *)&a, al));
  CHECK("named.connect.again", connect(c, (void *)&a, al));
  CHECK("named.listen.connected", listen(c, 1));
  CHECK("named.sendto.connected", sendto(c, "x", 1, 0, (void *)&a, al));
  CHECKX("named.poll.listen.ready", revents(l, POLLIN | POLLOUT), "");
  nl = sizeof n;
  int s = accept(l, (void *)&n, &nl);
  CHECKX("named.accept", s >= 0, "len=%d", nl);
  nl = sizeof n;
  CHECKX("named.accepted.getsockname", getsockname(s, (void *)&n, &nl), "len=%d path=%s", nl, n.sun_path);
  nl = sizeof n;
  CHECKX("named.getpeername", getpeername(c, (void *)&n, &nl), "len=%d path=%s", nl, n.sun_path);
  nl = sizeof n;
  CHECKX("named.accepted.getpeername", getpeername(s, (void *)&n, &nl), "len=%d", nl);
  struct ucred cr;
  vl = sizeof cr;
  CHECKX("named.peercred", getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &vl), "pid=%d uid=%d", cr.pid == getpid(), cr.uid == getuid());
  vl = sizeof cr;
  CHECKX("named.accepted.peercred", getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &vl), "pid=%d", cr.pid == getpid());
  vl = sizeof cr;
  CHECKX("named.unconnected.peercred", getsockopt(l2, SOL_SOCKET, SO_PEERCRED, &cr, &vl), "pid=%d uid=%d", cr.pid, cr.uid);
  CHECK("named.send", send(c, "hello", 5, 0));
  nl = sizeof n;
  CHECKX("named.recvfrom", recvfrom(s, b, sizeof b, 0, (void *)&n, &nl), "%.5s len=%d", b, nl);
  CHECK("named.send.back", send(s, "hi", 2, 0));
  nl = sizeof n;
  CHECKX("named.recvfrom.back", recvfrom(c, b, sizeof b, 0, (void *)&n, &nl), "%.2s len=%d path=%s", b, nl, n.sun_path);
  CHECKX("named.poll.connected", revents(c, POLLIN | POLLOUT), "");
  CHECK("named.shutdown", shutdown(c, SHUT_WR));
  CHECK("named.recv.eof", recv(s, b, sizeof b, 0));
  CHECKX("named.poll.shut", revents(s, POLLIN | POLLOUT | POLLRDHUP), "");
  close(s);
  close(c);
  /* The backlog: listen(0) queues one connection; a non-blocking connect past it is EAGAIN. */
  CHECK("named.listen.zero", listen(l, 0));
  int c1 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0), c2 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int c3 = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK("named.backlog.first", connect(c1, (void *)&a, al));
  CHECK("named.backlog.second", connect(c2, (void *)&a, al));
  CHECK("named.backlog.full", connect(c3, (void *)&a, al));
  s = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  CHECKX("named.accept4", s >= 0, "nonblock=%d cloexec=%d", (fcntl(s, F_GETFL) & O_NONBLOCK) != 0, fcntl(s, F_GETFD));
  CHECK("named.backlog.room", connect(c3, (void *)&a, al));
  close(s);
  close(c1);
  close(c2);
  close(c3);
  close(l);
  c = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK("named.connect.closed", connect(c, (void *)&a, al));
  CHECK("named.unlink", unlink("named.sock"));
  CHECK("named.connect.unlinked", connect(c, (void *)&a, al));
  /* The abstract namespace and automatic names. */
  l = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  al = abs_addr(&a, "hsb-probe-abstract");
  CHECK("abstract.bind", bind(l, (void *)&a, al));
  nl = sizeof n;
  CHECKX("abstract.getsockname", getsockname(l, (void *)&n, &nl), "len=%d first=%d %s", nl, n.sun_path[0], n.sun_path + 1);
  CHECK("abstract.bind.inuse", bind(l2, (void *)&a, al));
  CHECK("abstract.listen", listen(l, 4));
  c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  CHECK("abstract.connect", connect(c, (void *)&a, al));
  s = accept(l, NULL, NULL);
  CHECK("seqpacket.send", send(c, "abcdef", 6, 0));
  CHECK("seqpacket.send2", send(c, "gh", 2, 0));
  CHECKX("seqpacket.recv.short", recv(s, b, 3, 0), "%.3s", b);
  CHECKX("seqpacket.recv.next", recv(s, b, sizeof b, 0), "%.2s", b);
  vl = sizeof v;
  CHECKX("seqpacket.type", getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &vl), "%d", v);
  close(s);
  close(c);
  close(l);
  c = socket(AF_UNIX, SOCK_SEQPACKET, 0);
  CHECK("abstract.connect.closed", connect(c, (void *)&a, al));
  CHECK("abstract.bind.reuse", bind(c, (void *)&a, al));
  close(c);
  c = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK("autobind", bind(c, (void *)&a, sizeof(sa_family_t)));
  nl = sizeof n;
  CHECKX("autobind.name", getsockname(c, (void *)&n, &nl), "len=%d first=%d", nl, n.sun_path[0]);
  CHECK("autobind.again", bind(c, (void *)&a, sizeof(sa_family_t)));
  close(c);
  close(l2);
  /* Datagrams to names. */
  int d1 = socket(AF_UNIX, SOCK_DGRAM, 0), d3 = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_un a1, a2;
  socklen_t l1 = un_addr(&a1, "dg1"), l2n = un_addr(&a2, "dg2");
  CHECK("dgram.bind", bind(d1, (void *)&a1, l1));
  CHECKX("dgram.poll.fresh", revents(d, POLLIN | POLLOUT), "");
  CHECK("dgram.send.unconnected", send(d, "x", 1, 0));
  CHECK("dgram.sendto.unnamed", sendto(d, "hi", 2, 0, (void *)&a1, l1));
  nl = sizeof n;
  CHECKX("dgram.recvfrom.unnamed", recvfrom(d1, b, sizeof b, 0, (void *)&n, &nl), "%.2s len=%d", b, nl);
  CHECK("dgram.bind2", bind(d, (void *)&a2, l2n));
  CHECK("dgram.sendto.named", sendto(d, "yo", 2, 0, (void *)&a1, l1));
  nl = sizeof n;
  CHECKX("dgram.recvfrom.named", recvfrom(d1, b, sizeof b, 0, (void *)&n, &nl), "%.2s len=%d path=%s", b, nl, n.sun_path);
  CHECK("dgram.sendto.stream", sendto(d, "x", 1, 0, (void *)&(struct sockaddr_un){AF_UNIX, "."}, sizeof a));
  CHECK("dgram.recv.empty", recv(d3, b, sizeof b, 0));
  CHECK("dgram.connect", connect(d1, (void *)&a2, l2n));
  nl = sizeof n;
  CHECKX("dgram.getpeername", getpeername(d1, (void *)&n, &nl), "len=%d path=%s", nl, n.sun_path);
  CHECK("dgram.send.connected", send(d1, "back", 4, 0));
  CHECKX("dgram.recv.connected", recv(d, b, sizeof b, 0), "%.4s", b);
  CHECK("dgram.sendto.notpeer", sendto(d3, "x", 1, 0, (void *)&a1, l1));
  CHECK("dgram.disconnect", connect(d1, (void *)&(struct sockaddr){AF_UNSPEC}, sizeof(struct sockaddr)));
  CHECK("dgram.sendto.afterdisconnect", sendto(d3, "z", 1, 0, (void *)&a1, l1));
  CHECKX("dgram.poll.queued", revents(d1, POLLIN | POLLOUT), "");
  setsockopt(d1, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  close(d);
  close(d1);
  close(d3);
  unlink("dg1");
  unlink("dg2");
}

/* Descriptors and credentials in flight: SCM_RIGHTS, MSG_CTRUNC, MSG_CMSG_CLOEXEC, limits,
 * SCM_CREDENTIALS with SO_PASSCRED, and where a stream read stops. */
static long send_fds(int s, const char *data, const int *fds, int n) {
  char ctl[CMSG_SPACE(sizeof(int) * 300)];
  struct iovec iov = {(void *)data, strlen(data)};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl};
  m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
  memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
  return sendmsg(s, &m, 0);
}

static char got[256];
/* recvmsg with room for `room` descriptors: the count, the flags and what came (in `got`). */
static long recv_fds(int s, int room, int flags, int *fds) {
  static char buf[64];
  char ctl[CMSG_SPACE(sizeof(int) * 8) + CMSG_SPACE(sizeof(struct ucred))];
  struct iovec iov = {buf, sizeof buf};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = room >= 0 ? ctl : NULL};
  m.msg_controllen = room > 0 ? CMSG_SPACE(sizeof(int) * (size_t)room) : room == 0 ? sizeof(struct cmsghdr) : 0;
  if (room == 99) m.msg_controllen = sizeof ctl;
  long r = recvmsg(s, &m, flags);
  int nfd = 0;
  char cm[128] = "";
  if (r >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      char one[64];
      if (c->cmsg_type == SCM_RIGHTS) {
        int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)k);
        nfd = k;
        snprintf(one, sizeof one, " rights=%d", k);
      } else if (c->cmsg_type == SCM_CREDENTIALS) {
        struct ucred u;
        memcpy(&u, CMSG_DATA(c), sizeof u);
        snprintf(one, sizeof one, " creds(pid=%d uid=%d)", u.pid == getpid(), u.uid == getuid());
      } else {
        snprintf(one, sizeof one, " type=%d", c->cmsg_type);
      }
      strncat(cm, one, sizeof cm - strlen(cm) - 1);
    }
  }
  snprintf(got, sizeof got, "data=%.*s flags=%x controllen=%zu nfd=%d%s", r > 0 ? (int)r : 0, buf, m.msg_flags, (size_t)m.msg_controllen, nfd, cm);
  return r;
}

static void rights(void) {
  int sv[2], p[2], fds[8];
  char b[64];
  signal(SIGPIPE, SIG_IGN);
  socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  pipe(p);
  CHECK("rights.send", send_fds(sv[0], "A", &p[1], 1));
  CHECKX("rights.recv", recv_fds(sv[1], 1, 0, fds), "%s", got);
  CHECKX("rights.same.pipe", write(fds[0], "via", 3), "read=%ld", read(p[0], b, sizeof b));
  CHECKX("rights.cloexec.off", fcntl(fds[0], F_GETFD), "");
  close(fds[0]);
  int two[2] = {p[0], p[1]};
  CHECK("rights.send.two", send_fds(sv[0], "B", two, 2));
  CHECKX("rights.recv.ctrunc", recv_fds(sv[1], 1, 0, fds), "%s", got);
  close(fds[0]);
  CHECK("rights.send.nobuf", send_fds(sv[0], "C", two, 2));
  CHECKX("rights.recv.nobuf", recv_fds(sv[1], -1, 0, fds), "%s", got);
  CHECK("rights.send.hdronly", send_fds(sv[0], "D", two, 1));
  CHECKX("rights.recv.hdronly", recv_fds(sv[1], 0, 0, fds), "%s", got);
  CHECK("rights.send.cloexec", send_fds(sv[0], "E", two, 1));
  CHECKX("rights.recv.cloexec", recv_fds(sv[1], 1, MSG_CMSG_CLOEXEC, fds), "%s cloexec=%d", got, fcntl(fds[0], F_GETFD));
  close(fds[0]);
  /* Where a stream read stops: after the message that carries descriptors. */
  send(sv[0], "ab", 2, 0);
  send_fds(sv[0], "cd", two, 1);
  send(sv[0], "ef", 2, 0);
  CHECKX("rights.recv.stops", recv_fds(sv[1], 1, 0, fds), "%s", got);
  close(fds[0]);
  CHECKX("rights.recv.after", recv_fds(sv[1], 1, MSG_DONTWAIT, fds), "%s", got);
  send_fds(sv[0], "pk", two, 1);
  CHECKX("rights.peek", recv_fds(sv[1], 1, MSG_PEEK, fds), "%s", got);
  close(fds[0]);
  CHECKX("rights.after.peek", recv_fds(sv[1], 1, 0, fds), "%s", got);
  close(fds[0]);
  send_fds(sv[0], "rd", two, 1);
  CHECKX("rights.read.drops", read(sv[1], b, sizeof b), "");
  int many[254];
  for (int i = 0; i < 254; i++) many[i] = p[0];
  CHECK("rights.send.253", send_fds(sv[0], "M", many, 253));
  CHECKX("rights.recv.253", recv_fds(sv[1], 8, 0, fds), "%s", got);
  for (int i = 0; i < 8; i++) close(fds[i]);
  CHECK("rights.send.254", send_fds(sv[0], "N", many, 254));
  int bad = 999;
  CHECK("rights.send.badfd", send_fds(sv[0], "O", &bad, 1));
  {
    char ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {"P", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = sizeof ctl + 8;
    CHECK("rights.send.badlen", sendmsg(sv[0], &m, 0));
    c->cmsg_len = CMSG_LEN(sizeof(int));
    c->cmsg_type = 77;
    CHECK("rights.send.badtype", sendmsg(sv[0], &m, 0));
    c->cmsg_level = 99;
    CHECK("rights.send.otherlevel", sendmsg(sv[0], &m, 0));
    recv(sv[1], b, sizeof b, MSG_DONTWAIT);
  }
  /* Credentials. */
  {
    char ctl[CMSG_SPACE(sizeof(struct ucred))];
    struct iovec iov = {"Q", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred u = {getpid(), getuid(), getgid()};
    memcpy(CMSG_DATA(c), &u, sizeof u);
    CHECK("creds.send", sendmsg(sv[0], &m, 0));
    recv(sv[1], b, sizeof b, MSG_DONTWAIT);
    int one = 1, v = 0;
    socklen_t vl = sizeof v;
    CHECK("creds.passcred", setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    CHECKX("creds.passcred.get", getsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &v, &vl), "%d", v);
    send(sv[0], "R", 1, 0);
    CHECKX("creds.recv", recv_fds(sv[1], 99, 0, fds), "%s", got);
    send_fds(sv[0], "S", two, 1);
    CHECKX("creds.recv.rights", recv_fds(sv[1], 99, 0, fds), "%s", got);
    close(fds[0]);
  }
  {
    struct iovec iov = {b, sizeof b};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_namelen = 77};
    send(sv[0], "n", 1, 0);
    CHECKX("recvmsg.noname.namelen", recvmsg(sv[1], &m, 0), "namelen=%u", m.msg_namelen);
    struct sockaddr_un un;
    m.msg_name = &un;
    m.msg_namelen = 200;
    send(sv[0], "n", 1, 0);
    CHECKX("recvmsg.unnamed.namelen", recvmsg(sv[1], &m, 0), "namelen=%u", m.msg_namelen);
    m.msg_namelen = (socklen_t)-1;
    CHECK("recvmsg.negative.namelen", recvmsg(sv[1], &m, MSG_DONTWAIT));
  }
  close(sv[0]);
  close(sv[1]);
  /* Datagrams carry descriptors too; a socket sent over itself and closed is freed. */
  socketpair(AF_UNIX, SOCK_DGRAM, 0, sv);
  CHECK("rights.dgram.send", send_fds(sv[0], "T", &p[0], 1));
  CHECKX("rights.dgram.recv", recv_fds(sv[1], 1, 0, fds), "%s", got);
  close(fds[0]);
  CHECK("rights.cycle", send_fds(sv[0], "U", &sv[1], 1));
  close(sv[0]);
  close(sv[1]);
  close(p[0]);
  close(p[1]);
}

static int S[6];
static void random_setup(void) {
  int a[2];
  signal(SIGPIPE, SIG_IGN);
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, a); S[0] = a[0]; S[1] = a[1];
  socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, a); S[2] = a[0]; S[3] = a[1];
  S[4] = open("sf", O_RDWR | O_CREAT, 0600);
  S[5] = -1;
}
static int rnd_sock(void) { long i = (long)rnd_below(6); desc("s%ld", i); return S[i]; }
static void one(int i) {
  long r;
  const char *w;
  char buf[64];
  errno = 0;
  switch (rnd_below(8)) {
  case 0: w = "send"; r = send(rnd_sock(), (void *)(rnd_below(3) ? (long)buf : rnd_ptr()), (size_t)PICK(0, 1, 64), (int)rnd_flags(MSG_DONTWAIT | MSG_NOSIGNAL | MSG_PEEK)); break;
  case 1: w = "recv"; r = recv(rnd_sock(), (void *)(rnd_below(3) ? (long)buf : rnd_ptr()), (size_t)PICK(0, 1, 64), (int)(rnd_flags(MSG_PEEK | MSG_TRUNC) | MSG_DONTWAIT)); break;
  case 2: { int v = 0; socklen_t l = (socklen_t)PICK(0, 2, 4, 16); w = "getsockopt"; r = getsockopt(rnd_sock(), (int)PICK(SOL_SOCKET, 0, 6, 999), (int)PICK(SO_TYPE, SO_ERROR, SO_DOMAIN, SO_RCVBUF, SO_PEERCRED, 9999), &v, &l); break; }
  case 3: { int v = 1; w = "setsockopt"; r = setsockopt(rnd_sock(), (int)PICK(SOL_SOCKET, 6, 999), (int)PICK(SO_REUSEADDR, SO_KEEPALIVE, 9999), &v, (socklen_t)PICK(0, 2, 4)); break; }
  case 4: w = "shutdown"; r = shutdown(rnd_sock(), (int)rnd_num(4)); break;
  case 5: { struct sockaddr_un un = {.sun_family = AF_UNIX}; socklen_t l = (socklen_t)PICK(0, 2, 110); w = "getsockname"; r = getsockname(rnd_sock(), (void *)&un, &l); break; }
  case 6: w = "socket"; r = socket((int)PICK(AF_UNIX, AF_INET, 999), (int)PICK(SOCK_STREAM, SOCK_DGRAM, 99, SOCK_STREAM | 0x1000), (int)PICK(0, 1, 5)); if (r >= 0) { close(r); r = 0; } break;
  default: { int v[2]; w = "socketpair"; r = socketpair((int)PICK(AF_UNIX, AF_INET, 999), (int)PICK(SOCK_STREAM, SOCK_SEQPACKET, 99), (int)PICK(0, 1, 5), v); if (r == 0) { close(v[0]); close(v[1]); } break; }
  }
  report_random(i, w, r, errno, NULL);
}

int main(int argc, char **argv) {
  FAMILY = "socket";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  creation();
  pairs();
  buffers();
  datagrams();
  messages();
  shutdowns();
  named();
  rights();
  return 0;
}
