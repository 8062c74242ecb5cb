/* AF_INET and AF_INET6 sockets on a loopback-only network: TCP and UDP, names, ports,
 * connections, readiness, options. Natively the probe runs in a network namespace of
 * its own with only `lo` up; the sandboxes run it with `network = "loopback"`.
 * netnone.c runs the same checks in an empty namespace (`network = "none"`). Every
 * call that could wait is non-blocking, so that where nothing is reachable the checks
 * answer errors instead of hanging. Ports are ephemeral: only relations are printed. */
#include "probe.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#ifndef NET_FAMILY
#define NET_FAMILY "net"
#endif

static volatile int SIGPIPES;
static void on_sigpipe(int sig) {
  (void)sig;
  SIGPIPES++;
}

static struct sockaddr_in in4(const char *ip, int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, ip, &a.sin_addr);
  return a;
}

static struct sockaddr_in6 in6(const char *ip, int port) {
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  inet_pton(AF_INET6, ip, &a.sin6_addr);
  return a;
}

/* The address and port of a sockaddr, with the port as a relation to `ref`. */
static const char *show(const void *sa, socklen_t len, int ref) {
  static char buf[4][128];
  static int k;
  char *b = buf[k++ % 4];
  const struct sockaddr *s = sa;
  char ip[64] = "?";
  int port = -1;
  if (len >= sizeof(struct sockaddr_in) && s->sa_family == AF_INET) {
    const struct sockaddr_in *a = sa;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    port = ntohs(a->sin_port);
  } else if (len >= sizeof(struct sockaddr_in6) && s->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = sa;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    port = ntohs(a->sin6_port);
  } else if (len == 0) {
    snprintf(b, 128, "len=0");
    return b;
  }
  const char *rel = port == 0 ? "0" : port == ref ? "same" : (port >= 32768 && port <= 60999) ? "ephemeral" : "other";
  snprintf(b, 128, "fam=%d ip=%s port=%s len=%u", s->sa_family, ip, rel, (unsigned)len);
  return b;
}

static int port_of(int fd) {
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  if (getsockname(fd, (void *)&ss, &l) != 0)
    return -1;
  if (ss.ss_family == AF_INET)
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static const char *name_of(int fd, int peer, int ref) {
  struct sockaddr_storage ss;
  socklen_t l = sizeof ss;
  int r = peer ? getpeername(fd, (void *)&ss, &l) : getsockname(fd, (void *)&ss, &l);
  if (r != 0) {
    static char e[32];
    snprintf(e, sizeof e, "-1 %s", errname(errno));
    return e;
  }
  return show(&ss, l, ref);
}

static int revents(int fd, short ev) {
  struct pollfd p = {.fd = fd, .events = ev};
  poll(&p, 1, 0);
  return p.revents;
}

static int intopt(int fd, int level, int name) {
  int v = -7;
  socklen_t l = sizeof v;
  if (getsockopt(fd, level, name, &v, &l) != 0)
    return -errno;
  return v;
}

/* A port that nobody holds: bound once, then closed. */
static int free_port(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = in4("127.0.0.1", 0);
  bind(s, (void *)&a, sizeof a);
  int p = port_of(s);
  close(s);
  return p;
}

static void creation(void) {
  int s;
  CHECK("socket.tcp", (s = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
  close(s);
  CHECK("socket.tcp.proto", (s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP)) >= 0);
  close(s);
  CHECK("socket.udp6", (s = socket(AF_INET6, SOCK_DGRAM, IPPROTO_UDP)) >= 0);
  close(s);
  CHECK("socket.tcp.udpproto", socket(AF_INET, SOCK_STREAM, IPPROTO_UDP));
  CHECK("socket.seqpacket", socket(AF_INET, SOCK_SEQPACKET, 0));
  CHECK("socket.badtype", socket(AF_INET6, 9, 0));
  CHECK("socketpair", socketpair(AF_INET, SOCK_STREAM, 0, (int[2]){0}));
  s = socket(AF_INET, SOCK_STREAM, 0);
  FACT("fresh.names", "%s / %s", name_of(s, 0, 0), name_of(s, 1, 0));
  FACT("fresh.poll", "revents=%#x", revents(s, POLLIN | POLLOUT));
  char c;
  CHECK("fresh.recv", recv(s, &c, 1, MSG_DONTWAIT));
  CHECK("fresh.send", send(s, "x", 1, MSG_NOSIGNAL));
  CHECK("fresh.shutdown", shutdown(s, SHUT_RDWR));
  CHECK("fresh.accept", accept(s, NULL, NULL));
  FACT("fresh.opts", "type=%d domain=%d proto=%d acceptconn=%d error=%d", intopt(s, SOL_SOCKET, SO_TYPE), intopt(s, SOL_SOCKET, SO_DOMAIN), intopt(s, SOL_SOCKET, SO_PROTOCOL), intopt(s, SOL_SOCKET, SO_ACCEPTCONN), intopt(s, SOL_SOCKET, SO_ERROR));
  close(s);
}

static void binding(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = in4("127.0.0.1", 0);
  CHECK("bind.short", bind(s, (void *)&a, sizeof a - 1));
  struct sockaddr_in6 six = in6("::1", 0);
  CHECK("bind.family", bind(s, (void *)&six, sizeof a));
  struct sockaddr_in far = in4("10.1.2.3", 0);
  CHECK("bind.foreign", bind(s, (void *)&far, sizeof far));
  struct sockaddr_in lo2 = in4("127.0.0.2", 0);
  int t = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("bind.lo2", bind(t, (void *)&lo2, sizeof lo2));
  close(t);
  CHECK("bind.lo", bind(s, (void *)&a, sizeof a));
  int port = port_of(s);
  FACT("bind.name", "%s", name_of(s, 0, 0));
  CHECK("bind.again", bind(s, (void *)&a, sizeof a));
  /* Another socket on the same port. */
  struct sockaddr_in same = in4("127.0.0.1", port), any = in4("0.0.0.0", port);
  t = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("bind.inuse", bind(t, (void *)&same, sizeof same));
  CHECK("bind.inuse.any", bind(t, (void *)&any, sizeof any));
  close(t);
  /* SO_REUSEADDR on both, neither listening: shared; then only one may listen. */
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  t = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  CHECK("bind.reuseaddr", bind(t, (void *)&same, sizeof same));
  CHECK("bind.reuseaddr.listen1", listen(s, 4));
  CHECK("bind.reuseaddr.listen2", listen(t, 4));
  int u = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(u, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  CHECK("bind.reuseaddr.listening", bind(u, (void *)&same, sizeof same));
  close(u);
  close(t);
  close(s);
  /* SO_REUSEPORT: both listen. */
  s = socket(AF_INET, SOCK_STREAM, 0);
  t = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(t, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  bind(s, (void *)&a, sizeof a);
  struct sockaddr_in samep = in4("127.0.0.1", port_of(s));
  CHECK("bind.reuseport", bind(t, (void *)&samep, sizeof samep));
  CHECK("bind.reuseport.listen", listen(s, 1) + listen(t, 1));
  close(s);
  close(t);
  /* IPv6. */
  s = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 l6 = in6("::1", 0);
  CHECK("bind6.short", bind(s, (void *)&l6, 20));
  CHECK("bind6.family", bind(s, (void *)&a, sizeof l6));
  CHECK("bind6.lo", bind(s, (void *)&l6, sizeof l6));
  FACT("bind6.name", "%s", name_of(s, 0, 0));
  close(s);
  s = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 mapped = in6("::ffff:127.0.0.1", 0);
  CHECK("bind6.mapped", bind(s, (void *)&mapped, sizeof mapped));
  FACT("bind6.mapped.name", "%s", name_of(s, 0, 0));
  CHECK("bind6.v6only.late", setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
  close(s);
  s = socket(AF_INET6, SOCK_STREAM, 0);
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  CHECK("bind6.v6only.mapped", bind(s, (void *)&mapped, sizeof mapped));
  close(s);
  /* A dual-stack wildcard holds the IPv4 port too; a v6-only one does not. */
  s = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 any6 = in6("::", 0);
  CHECK("bind6.any", bind(s, (void *)&any6, sizeof any6));
  struct sockaddr_in v4same = in4("127.0.0.1", port_of(s));
  t = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("bind6.dual.v4", bind(t, (void *)&v4same, sizeof v4same));
  close(t);
  close(s);
  s = socket(AF_INET6, SOCK_STREAM, 0);
  setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  bind(s, (void *)&any6, sizeof any6);
  v4same = in4("127.0.0.1", port_of(s));
  t = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("bind6.v6only.v4", bind(t, (void *)&v4same, sizeof v4same));
  close(t);
  close(s);
  /* Listening on an unbound socket takes an ephemeral port on the wildcard. */
  s = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("listen.unbound", listen(s, 1));
  FACT("listen.unbound.name", "%s", name_of(s, 0, 0));
  close(s);
  s = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK("listen.udp", listen(s, 1));
  close(s);
}

static void tcp(void) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = in4("127.0.0.1", 0);
  bind(l, (void *)&a, sizeof a);
  listen(l, 1);
  int port = port_of(l);
  FACT("tcp.listen.poll", "revents=%#x acceptconn=%d", revents(l, POLLIN | POLLOUT), intopt(l, SOL_SOCKET, SO_ACCEPTCONN));
  CHECK("tcp.accept.none", accept(l, NULL, NULL));
  struct sockaddr_in dst = in4("127.0.0.1", port);
  int c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp.connect", connect(c, (void *)&dst, sizeof dst));
  FACT("tcp.connect.names", "%s / %s", name_of(c, 0, port), name_of(c, 1, port));
  CHECK("tcp.connect.again", connect(c, (void *)&dst, sizeof dst));
  CHECK("tcp.listen.connected", listen(c, 1));
  CHECK("tcp.bind.connected", bind(c, (void *)&a, sizeof a));
  FACT("tcp.listen.pending", "revents=%#x", revents(l, POLLIN | POLLOUT));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int s;
  CHECKX("tcp.accept", (s = accept4(l, (void *)&ss, &sl, SOCK_CLOEXEC)) >= 0, "peer %s cloexec=%d", show(&ss, sl, port), (fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
  FACT("tcp.accepted.names", "%s / %s nonblock=%d", name_of(s, 0, port), name_of(s, 1, port), (fcntl(s, F_GETFL) & O_NONBLOCK) != 0);
  FACT("tcp.accepted.peer_is_client", "%d", port_of(c) == ntohs(((struct sockaddr_in *)&ss)->sin_port));
  FACT("tcp.connected.poll", "c=%#x s=%#x", revents(c, POLLIN | POLLOUT | POLLRDHUP), revents(s, POLLIN | POLLOUT | POLLRDHUP));
  char buf[64] = {0};
  CHECK("tcp.send", send(c, "hello", 5, 0));
  CHECK("tcp.send2", write(c, "world", 5));
  FACT("tcp.data.poll", "s=%#x", revents(s, POLLIN | POLLOUT));
  CHECKX("tcp.recv.peek", recv(s, buf, 3, MSG_PEEK), "%.3s", buf);
  sl = sizeof ss;
  memset(&ss, 0, sizeof ss);
  CHECKX("tcp.recvfrom", recvfrom(s, buf, 4, 0, (void *)&ss, &sl), "%.4s addrlen=%u", buf, (unsigned)sl);
  CHECKX("tcp.recv.waitall", recv(s, buf, 6, MSG_WAITALL), "%.6s", buf);
  CHECK("tcp.recv.dontwait", recv(s, buf, 6, MSG_DONTWAIT));
  /* No urgent data: MSG_OOB finds none at once, never waits. */
  CHECK("tcp.recv.oob.none", recv(s, buf, 1, MSG_OOB));
  CHECK("tcp.recv.oob.none.dontwait", recv(s, buf, 1, MSG_OOB | MSG_DONTWAIT));
  /* Timeouts. */
  struct timeval tv = {0, 20000};
  CHECK("tcp.rcvtimeo.set", setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
  struct timeval got = {0};
  socklen_t gl = sizeof got;
  CHECKX("tcp.rcvtimeo.get", getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &got, &gl), "%ld.%06ld len=%u", (long)got.tv_sec, (long)got.tv_usec, (unsigned)gl);
  CHECK("tcp.rcvtimeo.recv", recv(s, buf, 6, 0));
  /* Shutdown: the peer reads the end; a write after SHUT_WR is EPIPE. */
  CHECK("tcp.shutdown.wr", shutdown(c, SHUT_WR));
  FACT("tcp.shutdown.poll", "s=%#x c=%#x", revents(s, POLLIN | POLLOUT | POLLRDHUP), revents(c, POLLIN | POLLOUT | POLLRDHUP));
  CHECK("tcp.shutdown.eof", recv(s, buf, 6, 0));
  CHECK("tcp.shutdown.send", send(c, "x", 1, MSG_NOSIGNAL));
  CHECK("tcp.shutdown.reverse", send(s, "back", 4, 0));
  CHECKX("tcp.shutdown.reverse.recv", recv(c, buf, 6, 0), "%.4s", buf);
  CHECK("tcp.shutdown.bad", shutdown(c, 7));
  close(s);
  FACT("tcp.closed.poll", "c=%#x", revents(c, POLLIN | POLLRDHUP));
  CHECK("tcp.closed.eof", recv(c, buf, 6, 0));
  close(c);
  /* A backlog of 1 takes two connections (backlog + 1); a non-blocking third would wait. */
  int c1 = socket(AF_INET, SOCK_STREAM, 0), c2 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp.backlog.1", connect(c1, (void *)&dst, sizeof dst));
  CHECK("tcp.backlog.2", connect(c2, (void *)&dst, sizeof dst));
  int a1 = accept(l, NULL, NULL), a2 = accept(l, NULL, NULL);
  FACT("tcp.backlog.accepted", "%d %d", a1 >= 0, a2 >= 0);
  close(a1);
  close(a2);
  close(c1);
  close(c2);
  /* A closed port refuses; so does 0.0.0.0 (this host) on it. */
  int fp = free_port();
  struct sockaddr_in closed = in4("127.0.0.1", fp), zero = in4("0.0.0.0", port);
  c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp.refused", connect(c, (void *)&closed, sizeof closed));
  CHECK("tcp.refused.again", connect(c, (void *)&closed, sizeof closed));
  close(c);
  c = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp.connect.zero", connect(c, (void *)&zero, sizeof zero));
  FACT("tcp.connect.zero.peer", "%s", name_of(c, 1, port));
  close(c);
  s = accept(l, NULL, NULL);
  close(s);
  /* Non-blocking connects. */
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK("tcp.nb.connect", connect(c, (void *)&dst, sizeof dst));
  FACT("tcp.nb.poll", "revents=%#x error=%d", revents(c, POLLOUT), intopt(c, SOL_SOCKET, SO_ERROR));
  CHECK("tcp.nb.connect2", connect(c, (void *)&dst, sizeof dst));
  CHECK("tcp.nb.connect3", connect(c, (void *)&dst, sizeof dst));
  close(c);
  s = accept(l, NULL, NULL);
  close(s);
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK("tcp.nb.refused", connect(c, (void *)&closed, sizeof closed));
  FACT("tcp.nb.refused.poll", "revents=%#x", revents(c, POLLIN | POLLOUT));
  FACT("tcp.nb.refused.error", "%d then %d", intopt(c, SOL_SOCKET, SO_ERROR), intopt(c, SOL_SOCKET, SO_ERROR));
  CHECK("tcp.nb.refused.connect2", connect(c, (void *)&closed, sizeof closed));
  CHECK("tcp.nb.refused.connect3", connect(c, (void *)&dst, sizeof dst));
  close(c);
  s = accept(l, NULL, NULL);
  close(s);
  /* Elsewhere: no route. */
  struct sockaddr_in far = in4("10.1.2.3", 80);
  c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  CHECK("tcp.unreachable", connect(c, (void *)&far, sizeof far));
  close(c);
  c = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in6 wrong = in6("::1", port);
  CHECK("tcp.connect.family", connect(c, (void *)&wrong, sizeof wrong));
  CHECK("tcp.connect.short", connect(c, (void *)&dst, 8));
  close(c);
  /* A write to a peer that closed is taken once (the peer answers with a reset), the
   * next one is EPIPE. */
  c = socket(AF_INET, SOCK_STREAM, 0);
  connect(c, (void *)&dst, sizeof dst);
  s = accept(l, NULL, NULL);
  close(s);
  FACT("tcp.peerclosed.poll", "c=%#x", revents(c, POLLIN | POLLOUT | POLLRDHUP));
  CHECK("tcp.peerclosed.send1", send(c, "x", 1, MSG_NOSIGNAL));
  CHECK("tcp.peerclosed.send2", send(c, "x", 1, MSG_NOSIGNAL));
  FACT("tcp.peerclosed.reset.poll", "c=%#x", revents(c, POLLIN | POLLOUT | POLLRDHUP));
  close(c);
  /* UDP-Lite is UDP here, in a port space of its own. */
  int ul = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE);
  FACT("udplite.proto", "%d", intopt(ul, SOL_SOCKET, SO_PROTOCOL));
  close(ul);
  /* SIGPIPE on a write after the peer went. */
  c = socket(AF_INET, SOCK_STREAM, 0);
  connect(c, (void *)&dst, sizeof dst);
  s = accept(l, NULL, NULL);
  shutdown(s, SHUT_RD);
  shutdown(c, SHUT_WR);
  int before = SIGPIPES;
  CHECKX("tcp.epipe", send(c, "x", 1, 0), "sigpipe=%d", SIGPIPES - before);
  close(s);
  close(c);
  close(l);
}

static void tcp6(void) {
  int one = 1;
  int l = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in6 any = in6("::", 0);
  bind(l, (void *)&any, sizeof any);
  listen(l, 8);
  int port = port_of(l);
  FACT("tcp6.listen.name", "%s v6only=%d", name_of(l, 0, port), intopt(l, IPPROTO_IPV6, IPV6_V6ONLY));
  struct sockaddr_in d4 = in4("127.0.0.1", port);
  struct sockaddr_in6 d6 = in6("::1", port), dm = in6("::ffff:127.0.0.1", port), d0 = in6("::", port);
  int c4 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp6.dual.connect4", connect(c4, (void *)&d4, sizeof d4));
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int s = accept(l, (void *)&ss, &sl);
  FACT("tcp6.dual.accepted", "peer %s name %s", show(&ss, sl, port), name_of(s, 0, port));
  close(s);
  close(c4);
  int c6 = socket(AF_INET6, SOCK_STREAM, 0);
  CHECK("tcp6.connect6", connect(c6, (void *)&d6, sizeof d6));
  FACT("tcp6.connect6.names", "%s / %s", name_of(c6, 0, port), name_of(c6, 1, port));
  sl = sizeof ss;
  s = accept(l, (void *)&ss, &sl);
  FACT("tcp6.accepted6", "peer %s", show(&ss, sl, port));
  close(s);
  close(c6);
  c6 = socket(AF_INET6, SOCK_STREAM, 0);
  CHECK("tcp6.connect.mapped", connect(c6, (void *)&dm, sizeof dm));
  FACT("tcp6.connect.mapped.names", "%s / %s", name_of(c6, 0, port), name_of(c6, 1, port));
  close(c6);
  s = accept(l, NULL, NULL);
  close(s);
  c6 = socket(AF_INET6, SOCK_STREAM, 0);
  CHECK("tcp6.connect.any", connect(c6, (void *)&d0, sizeof d0));
  FACT("tcp6.connect.any.peer", "%s", name_of(c6, 1, port));
  close(c6);
  s = accept(l, NULL, NULL);
  close(s);
  close(l);
  /* A v6-only listener: IPv4 is refused. */
  l = socket(AF_INET6, SOCK_STREAM, 0);
  setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  bind(l, (void *)&any, sizeof any);
  listen(l, 8);
  d4 = in4("127.0.0.1", port_of(l));
  c4 = socket(AF_INET, SOCK_STREAM, 0);
  CHECK("tcp6.v6only.connect4", connect(c4, (void *)&d4, sizeof d4));
  close(c4);
  close(l);
  c6 = socket(AF_INET6, SOCK_STREAM, 0);
  setsockopt(c6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  CHECK("tcp6.v6only.mapped", connect(c6, (void *)&dm, sizeof dm));
  struct sockaddr_in6 far = in6("2001:db8::1", 80);
  CHECK("tcp6.unreachable", connect(c6, (void *)&far, sizeof far));
  close(c6);
}

static void udp(void) {
  int a = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), b = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in lo = in4("127.0.0.1", 0), any = in4("0.0.0.0", 0);
  bind(a, (void *)&lo, sizeof lo);
  int pa = port_of(a);
  struct sockaddr_in da = in4("127.0.0.1", pa);
  FACT("udp.fresh.poll", "revents=%#x", revents(b, POLLIN | POLLOUT));
  CHECK("udp.send.nodest", send(b, "x", 1, 0));
  CHECK("udp.sendto", sendto(b, "ping", 4, 0, (void *)&da, sizeof da));
  FACT("udp.autobound", "%s", name_of(b, 0, 0));
  FACT("udp.recv.poll", "revents=%#x", revents(a, POLLIN | POLLOUT));
  char buf[64] = {0};
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  CHECKX("udp.recvfrom", recvfrom(a, buf, sizeof buf, 0, (void *)&ss, &sl), "%.4s from %s same=%d", buf, show(&ss, sl, 0), ntohs(((struct sockaddr_in *)&ss)->sin_port) == port_of(b));
  CHECK("udp.recv.empty", recv(a, buf, sizeof buf, 0));
  CHECK("udp.send.oob", sendto(b, "x", 1, MSG_OOB, (void *)&da, sizeof da));
  CHECK("udp.recv.oob", recv(a, buf, sizeof buf, MSG_OOB));
  sendto(b, "truncated", 9, 0, (void *)&da, sizeof da);
  CHECK("udp.recv.trunc", recv(a, buf, 3, MSG_TRUNC));
  CHECK("udp.recv.trunc.gone", recv(a, buf, 3, 0));
  CHECK("udp.sendto.port0", sendto(b, "x", 1, 0, (void *)&lo, sizeof lo));
  static char big[65508];
  CHECK("udp.sendto.max", sendto(b, big, 65507, 0, (void *)&da, sizeof da));
  CHECK("udp.sendto.toobig", sendto(b, big, 65508, 0, (void *)&da, sizeof da));
  CHECK("udp.recv.max", recv(a, big, sizeof big, 0));
  struct msghdr mh = {0};
  struct iovec iov = {buf, sizeof buf};
  sendto(b, "msg", 3, 0, (void *)&da, sizeof da);
  mh.msg_name = &ss;
  mh.msg_namelen = sizeof ss;
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  CHECKX("udp.recvmsg", recvmsg(a, &mh, 0), "namelen=%u flags=%d", (unsigned)mh.msg_namelen, mh.msg_flags);
  /* Connected: a's datagrams from others are not taken. */
  int c = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  bind(c, (void *)&any, sizeof any);
  struct sockaddr_in db = in4("127.0.0.1", port_of(b));
  CHECK("udp.connect", connect(a, (void *)&db, sizeof db));
  FACT("udp.connected.names", "%s / %s", name_of(a, 0, pa), name_of(a, 1, 0));
  CHECK("udp.connected.other", sendto(c, "no", 2, 0, (void *)&da, sizeof da));
  CHECK("udp.connected.other.recv", recv(a, buf, sizeof buf, 0));
  CHECK("udp.connected.peer", sendto(b, "yes", 3, 0, (void *)&da, sizeof da));
  CHECKX("udp.connected.peer.recv", recv(a, buf, sizeof buf, 0), "%.3s", buf);
  CHECK("udp.connected.send", send(a, "back", 4, 0));
  CHECKX("udp.connected.send.recv", recv(b, buf, sizeof buf, 0), "%.4s", buf);
  CHECK("udp.connected.write", write(a, "w", 1));
  CHECK("udp.connected.write.recv", recv(b, buf, sizeof buf, 0));
  struct sockaddr unspec = {.sa_family = AF_UNSPEC};
  CHECK("udp.disconnect", connect(a, &unspec, sizeof unspec));
  FACT("udp.disconnected.peer", "%s", name_of(a, 1, 0));
  /* Connected to a port nobody has: the next call learns it. */
  int fp = free_port();
  struct sockaddr_in dz = in4("127.0.0.1", fp);
  int d = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  CHECK("udp.refused.connect", connect(d, (void *)&dz, sizeof dz));
  CHECK("udp.refused.send", send(d, "x", 1, 0));
  FACT("udp.refused.poll", "revents=%#x", revents(d, POLLIN | POLLOUT));
  CHECK("udp.refused.recv", recv(d, buf, sizeof buf, 0));
  CHECK("udp.refused.recv2", recv(d, buf, sizeof buf, 0));
  close(d);
  struct sockaddr_in far = in4("10.1.2.3", 53);
  CHECK("udp.unreachable", sendto(c, "x", 1, 0, (void *)&far, sizeof far));
  FACT("udp.opts", "type=%d proto=%d rcvbuf=%d", intopt(a, SOL_SOCKET, SO_TYPE), intopt(a, SOL_SOCKET, SO_PROTOCOL), intopt(a, SOL_SOCKET, SO_RCVBUF));
  close(a);
  close(b);
  close(c);
  /* IPv6 and IPv4 between each other. */
  int s6 = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK, 0), s4 = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in6 any6 = in6("::", 0);
  bind(s6, (void *)&any6, sizeof any6);
  bind(s4, (void *)&lo, sizeof lo);
  struct sockaddr_in to6 = in4("127.0.0.1", port_of(s6));
  CHECK("udp6.from4", sendto(s4, "46", 2, 0, (void *)&to6, sizeof to6));
  sl = sizeof ss;
  CHECKX("udp6.from4.recv", recvfrom(s6, buf, sizeof buf, 0, (void *)&ss, &sl), "from %s", show(&ss, sl, port_of(s4)));
  struct sockaddr_in6 to4 = in6("::ffff:127.0.0.1", port_of(s4));
  CHECK("udp6.to4", sendto(s6, "64", 2, 0, (void *)&to4, sizeof to4));
  sl = sizeof ss;
  CHECKX("udp6.to4.recv", recvfrom(s4, buf, sizeof buf, 0, (void *)&ss, &sl), "from %s", show(&ss, sl, port_of(s6)));
  struct sockaddr_in6 lo6 = in6("::1", port_of(s6));
  CHECK("udp6.loop", sendto(s6, "66", 2, 0, (void *)&lo6, sizeof lo6));
  sl = sizeof ss;
  CHECKX("udp6.loop.recv", recvfrom(s6, buf, sizeof buf, 0, (void *)&ss, &sl), "from %s", show(&ss, sl, port_of(s6)));
  /* RFC 3542 ancillary data: the hop limit and traffic class a datagram was sent with. */
  int on = 1;
  CHECK("udp6.recvhoplimit", setsockopt(s6, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof on));
  CHECK("udp6.recvtclass", setsockopt(s6, IPPROTO_IPV6, IPV6_RECVTCLASS, &on, sizeof on));
  {
    int hop = 7, tc = 42;
    char cbuf[CMSG_SPACE(sizeof(int)) * 2];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec io = {"anc", 3};
    struct msghdr m = {.msg_name = &lo6, .msg_namelen = sizeof lo6, .msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_HOPLIMIT;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &hop, sizeof hop);
    cm = CMSG_NXTHDR(&m, cm);
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_TCLASS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &tc, sizeof tc);
    CHECK("udp6.sendmsg.anc", sendmsg(s6, &m, 0));
    cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_len = CMSG_LEN(sizeof(int)) + 1;
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    CHECK("udp6.sendmsg.anc.badlen", sendmsg(s6, &m, 0));
    for (int k = 0; k < 3; k++) {
      /* Room for both items, for one, for a header and part of its data. */
      size_t room[3] = {sizeof cbuf, CMSG_SPACE(sizeof(int)), sizeof(struct cmsghdr) + 2};
      if (k > 0) {
        sendmsg(s6, &(struct msghdr){.msg_name = &lo6, .msg_namelen = sizeof lo6, .msg_iov = &io, .msg_iovlen = 1}, 0);
      }
      char rbuf[8];
      struct iovec ri = {rbuf, sizeof rbuf};
      memset(cbuf, 0, sizeof cbuf);
      struct msghdr r = {.msg_iov = &ri, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = room[k]};
      char desc[160] = "";
      long n = recvmsg(s6, &r, 0);
      size_t at = 0;
      for (struct cmsghdr *c = CMSG_FIRSTHDR(&r); c && at < sizeof desc; c = CMSG_NXTHDR(&r, c)) {
        int v = -1;
        if (c->cmsg_len >= CMSG_LEN(sizeof(int)))
          memcpy(&v, CMSG_DATA(c), sizeof v);
        at += (size_t)snprintf(desc + at, sizeof desc - at, "[%d %d len=%zu v=%d]", c->cmsg_level, c->cmsg_type, (size_t)c->cmsg_len, v);
      }
      char label[32];
      snprintf(label, sizeof label, "udp6.recvmsg.anc%d", k);
      FACT(label, "n=%ld controllen=%zu ctrunc=%d %s", n, (size_t)r.msg_controllen, (r.msg_flags & MSG_CTRUNC) != 0, desc);
    }
  }
  close(s6);
  close(s4);
}

static void options(void) {
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1, v;
  FACT("opt.defaults", "reuseaddr=%d keepalive=%d nodelay=%d v6only=%d", intopt(s, SOL_SOCKET, SO_REUSEADDR), intopt(s, SOL_SOCKET, SO_KEEPALIVE), intopt(s, IPPROTO_TCP, TCP_NODELAY), intopt(s, IPPROTO_IPV6, IPV6_V6ONLY));
  v = 5;
  CHECK("opt.reuseaddr", setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &v, sizeof v));
  CHECK("opt.nodelay", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  CHECK("opt.keepalive", setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one));
  v = 30;
  CHECK("opt.keepidle", setsockopt(s, IPPROTO_TCP, TCP_KEEPIDLE, &v, sizeof v));
  FACT("opt.after", "reuseaddr=%d keepalive=%d nodelay=%d keepidle=%d", intopt(s, SOL_SOCKET, SO_REUSEADDR), intopt(s, SOL_SOCKET, SO_KEEPALIVE), intopt(s, IPPROTO_TCP, TCP_NODELAY), intopt(s, IPPROTO_TCP, TCP_KEEPIDLE));
  v = 10000;
  CHECK("opt.rcvbuf", setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
  FACT("opt.rcvbuf.get", "%d", intopt(s, SOL_SOCKET, SO_RCVBUF));
  struct linger lg = {1, 5}, lg2 = {0};
  socklen_t ll = sizeof lg2;
  CHECK("opt.linger", setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
  CHECKX("opt.linger.get", getsockopt(s, SOL_SOCKET, SO_LINGER, &lg2, &ll), "%d %d len=%u", lg2.l_onoff, lg2.l_linger, (unsigned)ll);
  CHECK("opt.short", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, 2));
  CHECK("opt.unknown", setsockopt(s, IPPROTO_TCP, 9999, &one, sizeof one));
  CHECK("opt.badlevel", setsockopt(s, 999, 1, &one, sizeof one));
  CHECK("opt.v6only.on4", setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
  close(s);
  s = socket(AF_INET, SOCK_DGRAM, 0);
  CHECK("opt.udp.nodelay", setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
  FACT("opt.udp.domain", "%d", intopt(s, SOL_SOCKET, SO_DOMAIN));
  close(s);
  s = socket(AF_INET6, SOCK_STREAM, 0);
  FACT("opt.v6.domain", "domain=%d v6only=%d", intopt(s, SOL_SOCKET, SO_DOMAIN), intopt(s, IPPROTO_IPV6, IPV6_V6ONLY));
  CHECK("opt.v6only", setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one));
  FACT("opt.v6only.get", "%d", intopt(s, IPPROTO_IPV6, IPV6_V6ONLY));
  close(s);
}

#include "netlink.h"
#include "netreset.h"

int main(int argc, char **argv) {
  FAMILY = NET_FAMILY;
  /* No random calls: socket.c's cover the syscalls' argument checks. */
  if (argc > 1 && strcmp(argv[1], "random") == 0)
    return 0;
  /* A send on a socket that never connected raises SIGPIPE: counted, not fatal. */
  signal(SIGPIPE, on_sigpipe);
  creation();
  binding();
  tcp();
  tcp6();
  udp();
  options();
  netlink_checks();
  resets();
  tcp_buffers();
  return 0;
}
