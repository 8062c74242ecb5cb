/* How a TCP connection ends, included by net.c: a close with bytes unread, or with
 * SO_LINGER on and a zero timeout, resets it (the peer reads what it had, then
 * ECONNRESET once, then the end; getpeername ENOTCONN; writes EPIPE); a plain close
 * takes one more write (the peer answers it with a reset), an empty write nothing. */

/* A connected pair on 127.0.0.1; -1 where there is no loopback. */
static int reset_pair(int *c, int *s) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = in4("127.0.0.1", 0);
  socklen_t al = sizeof a;
  if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) || getsockname(l, (struct sockaddr *)&a, &al)) {
    close(l);
    return -1;
  }
  *c = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(*c, (struct sockaddr *)&a, sizeof a)) {
    close(*c);
    close(l);
    return -1;
  }
  *s = accept(l, NULL, NULL);
  close(l);
  return *s < 0 ? -1 : 0;
}

/* Waits (1 s at most) until fd shows one of `events`. */
static void reset_wait(int fd, short events) {
  struct pollfd p = {fd, events, 0};
  poll(&p, 1, 1000);
}

static void resets(void) {
  int c, s, v;
  char b[16];
  socklen_t vl = sizeof v;
  if (reset_pair(&c, &s)) {
    FACT("reset.pair", "no connection");
    return;
  }
  send(c, "unread", 6, 0);
  send(s, "data", 4, 0);
  reset_wait(c, POLLIN);
  reset_wait(s, POLLIN);
  close(s);
  reset_wait(c, POLLERR);
  struct pollfd p = {c, POLLIN | POLLOUT | POLLRDHUP, 0};
  CHECKX("reset.unread.poll", poll(&p, 1, 0), "revents=%#x", p.revents);
  struct sockaddr_in a;
  socklen_t al = sizeof a;
  CHECK("reset.unread.getpeername", getpeername(c, (struct sockaddr *)&a, &al));
  CHECKX("reset.unread.recv", recv(c, b, sizeof b, MSG_DONTWAIT), "%.4s", b);
  CHECK("reset.unread.recv.error", recv(c, b, sizeof b, MSG_DONTWAIT));
  CHECK("reset.unread.recv.end", recv(c, b, sizeof b, MSG_DONTWAIT));
  CHECK("reset.unread.send", send(c, "x", 1, MSG_NOSIGNAL));
  close(c);

  reset_pair(&c, &s);
  struct linger lg = {1, 0};
  setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  send(c, "pre", 3, 0);
  reset_wait(s, POLLIN);
  close(c);
  reset_wait(s, POLLERR);
  CHECKX("reset.linger.so_error", getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &vl), "%s", v ? errname(v) : "0");
  CHECKX("reset.linger.recv", recv(s, b, sizeof b, MSG_DONTWAIT), "%.3s", b);
  CHECK("reset.linger.recv.end", recv(s, b, sizeof b, MSG_DONTWAIT));
  CHECK("reset.linger.send", send(s, "x", 1, MSG_NOSIGNAL));
  close(s);

  reset_pair(&c, &s);
  send(c, "pre", 3, 0);
  reset_wait(s, POLLIN);
  close(c);
  reset_wait(s, POLLERR);
  CHECK("reset.send.first", send(s, "x", 1, MSG_NOSIGNAL));
  CHECK("reset.send.then", send(s, "x", 1, MSG_NOSIGNAL));
  close(s);

  reset_pair(&c, &s);
  close(s);
  reset_wait(c, POLLIN);
  CHECK("reset.clean.getpeername", getpeername(c, (struct sockaddr *)&a, &al) == 0);
  CHECK("reset.clean.send.empty", send(c, b, 0, MSG_NOSIGNAL));
  CHECK("reset.clean.send", send(c, "x", 1, MSG_NOSIGNAL));
  reset_wait(c, POLLERR);
  CHECK("reset.clean.send.again", send(c, "x", 1, MSG_NOSIGNAL));
  CHECK("reset.clean.recv", recv(c, b, sizeof b, MSG_DONTWAIT));
  close(c);
}

/* SO_RCVBUF and SO_SNDBUF bound what a connection buffers: with both small, a sender
 * whose peer does not read gets EAGAIN after tens of KiB, not MiBs (the amount itself
 * varies with the kernel: only the bound is printed). */
static void tcp_buffers(void) {
  int c, s, v = 4096;
  if (reset_pair(&c, &s)) {
    FACT("buffers.pair", "no connection");
    return;
  }
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v);
  setsockopt(c, SOL_SOCKET, SO_SNDBUF, &v, sizeof v);
  fcntl(c, F_SETFL, O_NONBLOCK);
  static char chunk[65536];
  long sent = 0, r;
  while (sent < (64L << 20) && (r = send(c, chunk, sizeof chunk, MSG_NOSIGNAL)) > 0)
    sent += r;
  FACT("buffers.small", "stopped=%s some=%d bounded=%d", r < 0 ? errname(errno) : "no", sent > 0, sent < (1L << 20));
  close(c);
  close(s);
}
