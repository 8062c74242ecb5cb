/* Sockets: families and types (the micro-VM has socket pairs only), socket pairs of
 * every type, send/recv and their flags, messages, shutdown, options, names. */
#include "probe.h"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

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
  close(sv[0]);
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
  datagrams();
  messages();
  return 0;
}
