/* NETLINK_ROUTE and the interface ioctls, included by net.c (lo up) and so by
 * netnone.c (an empty namespace): the socket's names and options, the link, address
 * and route dumps byte fields that programs read, acknowledgements and errors, what
 * libc builds on them (if_nameindex, getifaddrs, if_nametoindex) and SIOCGIF*. */
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/ioctl.h>

static unsigned NL_SEQ = 100;

/* Sends one request of type `ty`, flags `fl`, body `body` of `n` bytes. */
static long nl_send(int s, int ty, int fl, const void *body, size_t n) {
  char buf[256] = {0};
  struct nlmsghdr *h = (struct nlmsghdr *)buf;
  h->nlmsg_len = NLMSG_LENGTH(n);
  h->nlmsg_type = ty;
  h->nlmsg_flags = fl;
  h->nlmsg_seq = ++NL_SEQ;
  memcpy(NLMSG_DATA(h), body, n);
  struct sockaddr_nl k = {.nl_family = AF_NETLINK};
  return sendto(s, buf, h->nlmsg_len, 0, (struct sockaddr *)&k, sizeof k);
}

/* An attribute's value as text: a string, an address or a number. */
static void nl_attr_text(char *out, size_t cap, int ty_family, struct rtattr *a) {
  int n = RTA_PAYLOAD(a);
  unsigned char *d = RTA_DATA(a);
  if (ty_family == 's')
    snprintf(out, cap, "%.*s", n, (char *)d);
  else if (n == 4 && ty_family == 4)
    inet_ntop(AF_INET, d, out, cap);
  else if (n == 16 && ty_family == 6)
    inet_ntop(AF_INET6, d, out, cap);
  else if (n == 1)
    snprintf(out, cap, "%u", d[0]);
  else if (n == 4)
    snprintf(out, cap, "%u", *(unsigned *)d);
  else
    snprintf(out, cap, "len%d", n);
}

/* Receives every datagram until NLMSG_DONE, an NLMSG_ERROR or nothing more waits; prints
 * one line per message with the fields programs use. */
static void nl_drain(int s, const char *label, int pid) {
  char buf[16384], line[512], l2[64];
  for (int d = 0; d < 8; d++) {
    struct sockaddr_nl from = {0};
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
    long n = recvmsg(s, &m, MSG_DONTWAIT);
    snprintf(l2, sizeof l2, "%s.dgram%d", label, d);
    if (n < 0) {
      report(l2, "recvmsg", n, errno, NULL);
      return;
    }
    FACT(l2, "n>0=%d namelen=%u family=%d pid=%u flags=%d", n > 0, (unsigned)m.msg_namelen, from.nl_family, from.nl_pid, m.msg_flags);
    int i = 0, end = 0;
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned long)n); h = NLMSG_NEXT(h, n), i++) {
      int o = snprintf(line, sizeof line, "type=%d flags=%#x seq=%d pid=%d", h->nlmsg_type, h->nlmsg_flags, h->nlmsg_seq == NL_SEQ, (int)h->nlmsg_pid == pid);
      if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        o += snprintf(line + o, sizeof line - o, " len=%u error=%s", h->nlmsg_len, e->error ? errname(-e->error) : "0");
        if (h->nlmsg_type == NLMSG_ERROR)
          o += snprintf(line + o, sizeof line - o, " echo.len=%u echo.type=%d", e->msg.nlmsg_len, e->msg.nlmsg_type);
        end = 1;
      } else if (h->nlmsg_type == RTM_NEWLINK) {
        struct ifinfomsg *ifi = NLMSG_DATA(h);
        o += snprintf(line + o, sizeof line - o, " index=%d type=%d flags=%#x", ifi->ifi_index, ifi->ifi_type, ifi->ifi_flags);
        int al = IFLA_PAYLOAD(h);
        for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, al); a = RTA_NEXT(a, al)) {
          char v[64];
          if (a->rta_type == IFLA_IFNAME || a->rta_type == IFLA_QDISC)
            nl_attr_text(v, sizeof v, 's', a);
          else if (a->rta_type == IFLA_MTU || a->rta_type == IFLA_TXQLEN || a->rta_type == IFLA_OPERSTATE ||
                   a->rta_type == IFLA_CARRIER || a->rta_type == IFLA_ADDRESS || a->rta_type == IFLA_BROADCAST)
            nl_attr_text(v, sizeof v, 0, a);
          else
            continue;
          o += snprintf(line + o, sizeof line - o, " a%d=%s", a->rta_type, v);
        }
      } else if (h->nlmsg_type == RTM_NEWADDR) {
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        o += snprintf(line + o, sizeof line - o, " family=%d plen=%d flags=%#x scope=%d index=%d", ifa->ifa_family, ifa->ifa_prefixlen, ifa->ifa_flags, ifa->ifa_scope, ifa->ifa_index);
        int al = IFA_PAYLOAD(h);
        for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, al); a = RTA_NEXT(a, al)) {
          char v[64];
          if (a->rta_type == IFA_ADDRESS || a->rta_type == IFA_LOCAL)
            nl_attr_text(v, sizeof v, ifa->ifa_family == AF_INET ? 4 : 6, a);
          else if (a->rta_type == IFA_LABEL)
            nl_attr_text(v, sizeof v, 's', a);
          else if (a->rta_type == IFA_FLAGS)
            nl_attr_text(v, sizeof v, 0, a);
          else
            continue;
          o += snprintf(line + o, sizeof line - o, " a%d=%s", a->rta_type, v);
        }
      } else if (h->nlmsg_type == RTM_NEWROUTE) {
        struct rtmsg *r = NLMSG_DATA(h);
        o += snprintf(line + o, sizeof line - o, " family=%d dst_len=%d table=%d proto=%d scope=%d type=%d", r->rtm_family, r->rtm_dst_len, r->rtm_table, r->rtm_protocol, r->rtm_scope, r->rtm_type);
        int al = RTM_PAYLOAD(h);
        for (struct rtattr *a = RTM_RTA(r); RTA_OK(a, al); a = RTA_NEXT(a, al)) {
          char v[64];
          if (a->rta_type == RTA_DST || a->rta_type == RTA_PREFSRC)
            nl_attr_text(v, sizeof v, r->rtm_family == AF_INET ? 4 : 6, a);
          else if (a->rta_type == RTA_OIF || a->rta_type == RTA_TABLE)
            nl_attr_text(v, sizeof v, 0, a);
          else
            continue;
          o += snprintf(line + o, sizeof line - o, " a%d=%s", a->rta_type, v);
        }
      }
      snprintf(l2, sizeof l2, "%s.msg%d.%d", label, d, i);
      FACT(l2, "%s", line);
    }
    if (end)
      return;
  }
}

static void netlink_socket_checks(void) {
  CHECK("netlink.socket.stream", socket(AF_NETLINK, SOCK_STREAM, NETLINK_ROUTE));
  CHECK("netlink.socket.badproto", socket(AF_NETLINK, SOCK_RAW, 40));
  int s = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_ROUTE);
  CHECK("netlink.socket.dgram", s >= 0);
  close(s);
  s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  CHECK("netlink.socket.raw", s >= 0);
  struct sockaddr_nl a = {0};
  socklen_t al = sizeof a;
  CHECKX("netlink.getsockname.unbound", getsockname(s, (struct sockaddr *)&a, &al), "len=%u family=%d pid=%u groups=%u", (unsigned)al, a.nl_family, a.nl_pid, a.nl_groups);
  al = sizeof a;
  CHECKX("netlink.getpeername", getpeername(s, (struct sockaddr *)&a, &al), "len=%u family=%d pid=%u", (unsigned)al, a.nl_family, a.nl_pid);
  FACT("netlink.opt.type", "type=%d domain=%d proto=%d", intopt(s, SOL_SOCKET, SO_TYPE), intopt(s, SOL_SOCKET, SO_DOMAIN), intopt(s, SOL_SOCKET, SO_PROTOCOL));
  int v = 32768, one = 1;
  CHECK("netlink.opt.rcvbuf", setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
  FACT("netlink.opt.rcvbuf.get", "%d", intopt(s, SOL_SOCKET, SO_RCVBUF));
  CHECK("netlink.opt.extack", setsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one));
  FACT("netlink.opt.extack.get", "ext=%d cap=%d strict=%d", intopt(s, SOL_NETLINK, NETLINK_EXT_ACK), intopt(s, SOL_NETLINK, NETLINK_CAP_ACK), intopt(s, SOL_NETLINK, NETLINK_GET_STRICT_CHK));
  socklen_t two = 2;
  CHECK("netlink.opt.short", getsockopt(s, SOL_NETLINK, NETLINK_EXT_ACK, &v, &two));
  CHECK("netlink.opt.badname", setsockopt(s, SOL_NETLINK, 99, &one, sizeof one));
  CHECK("netlink.opt.badlevel", setsockopt(s, SOL_IP, IP_TTL, &one, sizeof one));
  CHECK("netlink.opt.badmember", setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &(int){0}, sizeof(int)));
  CHECK("netlink.opt.member", setsockopt(s, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &(int){RTNLGRP_LINK}, sizeof(int)));
  a = (struct sockaddr_nl){.nl_family = AF_NETLINK};
  CHECK("netlink.bind.short", bind(s, (struct sockaddr *)&a, 8));
  a.nl_family = AF_INET;
  CHECK("netlink.bind.family", bind(s, (struct sockaddr *)&a, sizeof a));
  a.nl_family = AF_NETLINK;
  CHECK("netlink.bind", bind(s, (struct sockaddr *)&a, sizeof a));
  al = sizeof a;
  CHECKX("netlink.getsockname", getsockname(s, (struct sockaddr *)&a, &al), "len=%u family=%d pid=getpid:%d groups=%u", (unsigned)al, a.nl_family, (int)a.nl_pid == getpid(), a.nl_groups);
  unsigned mine = a.nl_pid;
  a.nl_pid = 12345;
  CHECK("netlink.bind.other", bind(s, (struct sockaddr *)&a, sizeof a));
  a.nl_pid = mine;
  CHECK("netlink.bind.same", bind(s, (struct sockaddr *)&a, sizeof a));
  int t = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
  CHECK("netlink.bind.inuse", bind(t, (struct sockaddr *)&a, sizeof a));
  a.nl_pid = 0;
  CHECK("netlink.bind.auto", bind(t, (struct sockaddr *)&a, sizeof a));
  al = sizeof a;
  getsockname(t, (struct sockaddr *)&a, &al);
  FACT("netlink.bind.auto.pid", "negative=%d", (int)a.nl_pid < 0);
  close(t);
  CHECK("netlink.listen", listen(s, 1));
  CHECK("netlink.accept", accept(s, NULL, NULL));
  char b[64];
  CHECK("netlink.recv.empty", recv(s, b, sizeof b, MSG_DONTWAIT));
  struct pollfd p = {s, POLLIN | POLLOUT, 0};
  CHECKX("netlink.poll", poll(&p, 1, 0), "revents=%#x", p.revents);
  CHECK("netlink.send.empty", send(s, b, 0, 0));
  a = (struct sockaddr_nl){.nl_family = AF_INET};
  CHECK("netlink.sendto.family", sendto(s, b, 16, 0, (struct sockaddr *)&a, sizeof a));
  CHECK("netlink.sendto.short", sendto(s, b, 16, 0, (struct sockaddr *)&a, 4));
  close(s);
}

static void netlink_dumps(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  struct sockaddr_nl a = {.nl_family = AF_NETLINK};
  socklen_t al = sizeof a;
  bind(s, (struct sockaddr *)&a, sizeof a);
  getsockname(s, (struct sockaddr *)&a, &al);
  int pid = a.nl_pid;
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  CHECK("netlink.link.dump", nl_send(s, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifi, sizeof ifi));
  struct pollfd p = {s, POLLIN | POLLOUT, 0};
  CHECKX("netlink.link.poll", poll(&p, 1, 0), "revents=%#x", p.revents);
  nl_drain(s, "netlink.link", pid);
  struct rtgenmsg g = {.rtgen_family = AF_UNSPEC};
  CHECK("netlink.addr.dump", nl_send(s, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &g, sizeof g));
  nl_drain(s, "netlink.addr", pid);
  struct ifaddrmsg ifa = {.ifa_family = AF_INET6};
  CHECK("netlink.addr6.dump", nl_send(s, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &ifa, sizeof ifa));
  nl_drain(s, "netlink.addr6", pid);
  ifa.ifa_family = AF_INET;
  CHECK("netlink.addr4.dump", nl_send(s, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &ifa, sizeof ifa));
  nl_drain(s, "netlink.addr4", pid);
  struct rtmsg rt = {.rtm_family = AF_UNSPEC};
  CHECK("netlink.route.dump", nl_send(s, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, &rt, sizeof rt));
  nl_drain(s, "netlink.route", pid);
  ifi.ifi_index = 1;
  CHECK("netlink.link.get", nl_send(s, RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, &ifi, sizeof ifi));
  nl_drain(s, "netlink.link.get", pid);
  nl_drain(s, "netlink.link.get.ack", pid);
  ifi.ifi_index = 99;
  CHECK("netlink.link.get.missing", nl_send(s, RTM_GETLINK, NLM_F_REQUEST, &ifi, sizeof ifi));
  nl_drain(s, "netlink.link.get.missing", pid);
  struct {
    struct ifinfomsg i;
    struct rtattr a;
    char name[4];
  } byname = {{.ifi_family = AF_UNSPEC}, {RTA_LENGTH(3), IFLA_IFNAME}, "lo"};
  CHECK("netlink.link.byname", nl_send(s, RTM_GETLINK, NLM_F_REQUEST, &byname, sizeof byname));
  nl_drain(s, "netlink.link.byname", pid);
  CHECK("netlink.unknown", nl_send(s, 200, NLM_F_REQUEST, &g, sizeof g));
  nl_drain(s, "netlink.unknown", pid);
  CHECK("netlink.notrequest", nl_send(s, RTM_GETLINK, NLM_F_ACK, &ifi, sizeof ifi));
  nl_drain(s, "netlink.notrequest", pid);
  CHECK("netlink.control", nl_send(s, NLMSG_NOOP, NLM_F_REQUEST | NLM_F_ACK, &ifi, sizeof ifi));
  nl_drain(s, "netlink.control", pid);
  /* A cut message: nothing answers. */
  char cut[16] = {0};
  ((struct nlmsghdr *)cut)->nlmsg_len = 40;
  CHECK("netlink.cut", send(s, cut, sizeof cut, 0));
  CHECK("netlink.cut.recv", recv(s, cut, sizeof cut, MSG_DONTWAIT));
  /* write(2) is a request too; a peek with MSG_TRUNC sizes the datagram, a short read
   * cuts it (MSG_TRUNC) and loses the rest. */
  char req[NLMSG_LENGTH(sizeof(struct ifinfomsg))] = {0};
  struct nlmsghdr *h = (struct nlmsghdr *)req;
  h->nlmsg_len = sizeof req;
  h->nlmsg_type = RTM_GETLINK;
  h->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  h->nlmsg_seq = ++NL_SEQ;
  CHECK("netlink.write", write(s, req, sizeof req));
  char small[20];
  long full = recv(s, small, sizeof small, MSG_PEEK | MSG_TRUNC);
  FACT("netlink.peek.trunc", "full>100=%d", full > 100);
  /* iproute2 sizes its buffer with an empty iovec and MSG_PEEK | MSG_TRUNC. */
  struct iovec none = {NULL, 0};
  struct msghdr pm = {.msg_iov = &none, .msg_iovlen = 1};
  CHECKX("netlink.peek.trunc.recvmsg", recvmsg(s, &pm, MSG_PEEK | MSG_TRUNC) == full, "flags=%#x", pm.msg_flags);
  struct iovec iov = {small, sizeof small};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
  CHECKX("netlink.recv.short", recvmsg(s, &m, 0), "flags=%#x", m.msg_flags);
  nl_drain(s, "netlink.after.short", pid);
  /* Two requests in one datagram: both are answered, in order. */
  char two[64] = {0};
  struct nlmsghdr *h1 = (struct nlmsghdr *)two, *h2;
  h1->nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
  h1->nlmsg_type = RTM_GETLINK;
  h1->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  h1->nlmsg_seq = ++NL_SEQ;
  ((struct ifinfomsg *)NLMSG_DATA(h1))->ifi_index = 1;
  h2 = (struct nlmsghdr *)(two + NLMSG_ALIGN(h1->nlmsg_len));
  h2->nlmsg_len = NLMSG_LENGTH(4);
  h2->nlmsg_type = 200;
  h2->nlmsg_flags = NLM_F_REQUEST;
  h2->nlmsg_seq = NL_SEQ;
  CHECK("netlink.two", send(s, two, NLMSG_ALIGN(h1->nlmsg_len) + h2->nlmsg_len, 0));
  nl_drain(s, "netlink.two.a", pid);
  nl_drain(s, "netlink.two.b", pid);
  nl_drain(s, "netlink.two.c", pid);
  close(s);
}

static void netlink_libc(void) {
  struct if_nameindex *ni = if_nameindex();
  char line[256] = "";
  int o = 0;
  for (struct if_nameindex *i = ni; i && i->if_index; i++)
    o += snprintf(line + o, sizeof line - o, " %u:%s", i->if_index, i->if_name);
  FACT("netlink.if_nameindex", "ok=%d%s", ni != NULL, line);
  if (ni)
    if_freenameindex(ni);
  char name[IF_NAMESIZE] = "";
  CHECK("netlink.if_nametoindex", if_nametoindex("lo"));
  CHECKX("netlink.if_indextoname", if_indextoname(1, name) != NULL, "%s", name);
  CHECK("netlink.if_nametoindex.missing", if_nametoindex("eth0"));
  struct ifaddrs *ifs = NULL;
  CHECK("netlink.getifaddrs", getifaddrs(&ifs));
  int k = 0;
  for (struct ifaddrs *i = ifs; i; i = i->ifa_next, k++) {
    char addr[64] = "-", mask[64] = "-", label[32];
    int fam = i->ifa_addr ? i->ifa_addr->sa_family : -1;
    if (fam == AF_INET) {
      inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, addr, sizeof addr);
      inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_netmask)->sin_addr, mask, sizeof mask);
    } else if (fam == AF_INET6) {
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, addr, sizeof addr);
      inet_ntop(AF_INET6, &((struct sockaddr_in6 *)i->ifa_netmask)->sin6_addr, mask, sizeof mask);
    } else if (fam == AF_PACKET) {
      snprintf(addr, sizeof addr, "ifindex=%d hatype=%d", ((struct sockaddr_ll *)i->ifa_addr)->sll_ifindex, ((struct sockaddr_ll *)i->ifa_addr)->sll_hatype);
    }
    snprintf(label, sizeof label, "netlink.getifaddrs.%d", k);
    FACT(label, "%s family=%d flags=%#x %s/%s", i->ifa_name, fam, i->ifa_flags, addr, mask);
  }
  if (ifs)
    freeifaddrs(ifs);
}

static void netlink_ioctls(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0), u = socket(AF_UNIX, SOCK_STREAM, 0);
  struct ifreq r;
  char label[64];
  struct {
    const char *name;
    unsigned long req;
  } gets[] = {{"index", SIOCGIFINDEX}, {"flags", SIOCGIFFLAGS}, {"mtu", SIOCGIFMTU}, {"addr", SIOCGIFADDR}, {"netmask", SIOCGIFNETMASK}, {"brdaddr", SIOCGIFBRDADDR}, {"hwaddr", SIOCGIFHWADDR}, {"txqlen", SIOCGIFTXQLEN}};
  for (int k = 0; k < 2; k++) {
    int fd = k ? u : s;
    for (size_t i = 0; i < sizeof gets / sizeof *gets; i++) {
      memset(&r, 0, sizeof r);
      strcpy(r.ifr_name, "lo");
      snprintf(label, sizeof label, "netlink.ioctl.%s.%s", k ? "unix" : "inet", gets[i].name);
      CHECKX(label, ioctl(fd, gets[i].req, &r), "%02x%02x%02x%02x%02x%02x%02x%02x", (unsigned char)r.ifr_ifru.ifru_slave[0], (unsigned char)r.ifr_ifru.ifru_slave[1], (unsigned char)r.ifr_ifru.ifru_slave[2], (unsigned char)r.ifr_ifru.ifru_slave[3], (unsigned char)r.ifr_ifru.ifru_slave[4], (unsigned char)r.ifr_ifru.ifru_slave[5], (unsigned char)r.ifr_ifru.ifru_slave[6], (unsigned char)r.ifr_ifru.ifru_slave[7]);
    }
  }
  memset(&r, 0, sizeof r);
  r.ifr_ifindex = 1;
  CHECKX("netlink.ioctl.name", ioctl(s, SIOCGIFNAME, &r), "%s", r.ifr_name);
  r.ifr_ifindex = 7;
  CHECK("netlink.ioctl.name.missing", ioctl(s, SIOCGIFNAME, &r));
  memset(&r, 0, sizeof r);
  strcpy(r.ifr_name, "eth0");
  CHECK("netlink.ioctl.index.missing", ioctl(s, SIOCGIFINDEX, &r));
  struct ifconf c = {0};
  CHECKX("netlink.ioctl.conf.size", ioctl(s, SIOCGIFCONF, &c), "len=%d", c.ifc_len);
  struct ifreq many[4];
  memset(many, 0, sizeof many);
  c.ifc_len = sizeof many;
  c.ifc_req = many;
  CHECKX("netlink.ioctl.conf", ioctl(s, SIOCGIFCONF, &c), "len=%d first=%s", c.ifc_len, c.ifc_len ? many[0].ifr_name : "-");
  close(s);
  close(u);
}

static void netlink_checks(void) {
  netlink_socket_checks();
  netlink_dumps();
  netlink_libc();
  netlink_ioctls();
}
