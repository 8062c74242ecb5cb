/* The rest: memfd and seals, capabilities, personality, I/O priorities, membarrier,
 * getcpu, privileged calls an unprivileged user is refused, removed calls. */
#include "probe.h"

#include <linux/capability.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/random.h>

static void memfds(void) {
  int fd = memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  CHECK("memfd_create", fd >= 0);
  CHECK("memfd_create.badflags", memfd_create("x", 0x100));
  char longname[300];
  memset(longname, 'm', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  CHECK("memfd_create.longname", memfd_create(longname, 0));
  CHECK("memfd.write", write(fd, "abc", 3));
  CHECK("memfd.get_seals", fcntl(fd, F_GET_SEALS));
  CHECK("memfd.add_seal.write", fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE));
  CHECK("memfd.get_seals.after", fcntl(fd, F_GET_SEALS));
  CHECK("memfd.write.sealed", write(fd, "d", 1));
  CHECK("memfd.add_seal.seal", fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL));
  CHECK("memfd.add_seal.after.seal", fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
  int nos = memfd_create("noseal", 0);
  CHECK("memfd.noseal.get", fcntl(nos, F_GET_SEALS));
  CHECK("memfd.noseal.add", fcntl(nos, F_ADD_SEALS, F_SEAL_WRITE));
  struct stat st;
  CHECKX("memfd.fstat", fstat(nos, &st), "mode=%o nlink=%ld", st.st_mode, (long)st.st_nlink);
  close(fd);
  close(nos);
}

static void caps(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  CHECKX("capget", SYS(SYS_capget, &h, d), "eff=%x perm=%x", d[0].effective, d[0].permitted);
  h.version = 0x12345;
  CHECKX("capget.badversion", SYS(SYS_capget, &h, d), "version=%x", h.version);
  h.version = _LINUX_CAPABILITY_VERSION_3;
  h.pid = 999999;
  CHECK("capget.noent", SYS(SYS_capget, &h, d));
  h.pid = 0;
  memset(d, 0, sizeof d);
  CHECK("capset.none", SYS(SYS_capset, &h, d));
  d[0].effective = d[0].permitted = 1;
  CHECK("capset.raise", SYS(SYS_capset, &h, d));
}

static void others(void) {
  /* getrandom into a buffer whose end is not mapped: what fit before the hole. */
  char *two = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  munmap(two + 4096, 4096);
  CHECK("getrandom.partial", getrandom(two + 4096 - 8, 16, 0));
  CHECK("getrandom.hole", getrandom(two + 4096, 16, 0));
  munmap(two, 4096);
  CHECK("personality.linux", personality(PER_LINUX));
  CHECK("personality.query", personality(0xffffffff));
  CHECK("personality.addr_no_random", personality(ADDR_NO_RANDOMIZE));
  CHECK("personality.back", personality(PER_LINUX));
  CHECK("ioprio_get", SYS(SYS_ioprio_get, 1, 0));
  CHECK("ioprio_get.bad", SYS(SYS_ioprio_get, 99, 0));
  CHECK("ioprio_set.rt", SYS(SYS_ioprio_set, 1, 0, (1 << 13) | 4));
  CHECK("ioprio_set.be", SYS(SYS_ioprio_set, 1, 0, (2 << 13) | 4));
  CHECK("membarrier.query", SYS(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0) > 0);
  CHECK("membarrier.bad", SYS(SYS_membarrier, 0x4000, 0, 0));
  CHECK("membarrier.private.unregistered", SYS(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
  CHECK("membarrier.register", SYS(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0));
  CHECK("membarrier.private", SYS(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0));
  unsigned cpu = 99, node = 99;
  CHECKX("getcpu", SYS(SYS_getcpu, &cpu, &node, NULL), "node=%u", node);
  CHECK("getcpu.efault", SYS(SYS_getcpu, 8, 0, 0));
  CHECK("unshare.none", unshare(0));
  CHECK("unshare.files", unshare(CLONE_FILES));
  CHECK("unshare.newns", unshare(CLONE_NEWNS));
  CHECK("mount", SYS(SYS_mount, "none", "/tmp", "tmpfs", 0, 0));
  CHECK("umount", SYS(SYS_umount2, "/tmp", 0));
  CHECK("chroot", SYS(SYS_chroot, "."));
  CHECK("sethostname", SYS(SYS_sethostname, "x", 1));
  CHECK("reboot", SYS(SYS_reboot, 0xfee1dead, 672274793, 0, 0));
  CHECK("ptrace.traceme", SYS(SYS_ptrace, 0, 0, 0, 0));
  CHECK("ptrace.attach.init", SYS(SYS_ptrace, 16, 1, 0, 0));
  CHECK("swapoff", SYS(SYS_swapoff, "/nope"));
  CHECK("acct", SYS(SYS_acct, NULL));
  CHECK("syslog.read", SYS(SYS_syslog, 3, NULL, 0));
  CHECK("iopl", SYS(SYS_iopl, 3));
  CHECK("delete_module", SYS(SYS_delete_module, "x", 0));
  CHECK("kexec_load", SYS(SYS_kexec_load, 0, 0, 0, 0));
  CHECK("uselib", SYS(SYS_uselib, "x"));
  CHECK("create_module", SYS(174));
  CHECK("nfsservctl", SYS(180));
  CHECK("vserver", SYS(236));
  CHECK("tuxcall", SYS(184));
  CHECK("unassigned.400", SYS(400));
  CHECK("unassigned.1000", SYS(1000));
  CHECK("mlock2.badflags", SYS(SYS_mlock2, RW_LEN, 0, 4));
  CHECK("quotactl", SYS(SYS_quotactl, 0, NULL, 0, NULL));
  CHECK("setns.bad", SYS(SYS_setns, 999, 0));
  CHECK("pkey_alloc", SYS(SYS_pkey_alloc, 0, 0));
  CHECK("io_uring_setup", SYS(SYS_io_uring_setup, 1, NULL));
  CHECKV("sysfs", SYS(SYS_sysfs, 3));
}


static void random_setup(void) {}
static void one(int i) {
  long r;
  const char *w;
  errno = 0;
  switch (rnd_below(5)) {
  case 0: w = "getrandom"; r = getrandom((void *)rnd_ptr(), (size_t)PICK(0, 1, 16), (unsigned)rnd_flags(7)); break;
  case 1: w = "memfd_create"; r = memfd_create(rnd_below(4) ? "m" : (char *)rnd_ptr(), (unsigned)rnd_flags(3)); if (r >= 0) { close(r); r = 0; } break;
  case 2: w = "membarrier"; r = SYS(SYS_membarrier, PICK(0, 1, 2, 8, 16, 64, 0x4000), rnd_flags(1)); if (r > 0) r = 1; break;
  case 3: w = "ioprio_get"; r = SYS(SYS_ioprio_get, rnd_num(5), PICK(0, 999999)); break;
  default: w = "personality.query"; r = personality(0xffffffff); break;
  }
  report_random(i, w, r, errno, NULL);
}

/* Segment bases: arch_prctl sets the GS base the CPU uses (read back through %gs and
 * through ARCH_GET_GS), refuses a kernel address, and the old base comes back. */
static void segment_bases(void) {
  static long word = 0x5eed;
  long before = 0, got = 0, seen = 0;
  SYS(SYS_arch_prctl, 0x1004 /* ARCH_GET_GS */, &before);
  CHECK("arch_prctl.set_gs", SYS(SYS_arch_prctl, 0x1001 /* ARCH_SET_GS */, &word));
  SYS(SYS_arch_prctl, 0x1004, &got);
  __asm__ volatile("mov %%gs:0, %0" : "=r"(seen));
  FACT("arch_prctl.gs", "get=%d seen=%d", got == (long)&word, seen == 0x5eed);
  CHECK("arch_prctl.set_gs.kernel", SYS(SYS_arch_prctl, 0x1001, 0xffff800000000000UL));
  CHECK("arch_prctl.set_gs.back", SYS(SYS_arch_prctl, 0x1001, before));
  SYS(SYS_arch_prctl, 0x1004, &got);
  FACT("arch_prctl.gs.back", "restored=%d", got == before);
}

int main(int argc, char **argv) {
  FAMILY = "misc";
  scratch();
  if (argc > 1 && strcmp(argv[1], "random") == 0) {
    areas();
    random_setup();
    random_calls(argc, argv, one);
    return 0;
  }
  memfds();
  caps();
  others();
  segment_bases();
  return 0;
}
