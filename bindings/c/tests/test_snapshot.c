/* Snapshots and forks of live sandboxes through the C API: a micro-VM's shell counter
 * kept in a running process goes on in each clone, then diverges; the snapshot outlives
 * the sandbox it was taken of; a container's snapshot says it keeps the writable layer
 * only; a terminal is refused by name; bad input is refused. */
#define _GNU_SOURCE
#include <stdint.h>
#include <unistd.h>

#include "check.h"

static hsb_sandbox *sb;

static hsb_live *create(const char *isolation, char *why, size_t n) {
  hsb_run_options *o = hsb_run_options_new();
  hsb_error *err = NULL;
  CHECK(hsb_run_options_set_isolation(o, isolation, NULL) == HSB_OK);
  hsb_live *live = NULL;
  hsb_status st = hsb_live_create(sb, o, 600000, 0, &live, &err);
  hsb_run_options_free(o);
  if (st != HSB_OK) {
    snprintf(why, n, "%s: %s", hsb_error_kind(err), hsb_error_message(err));
    hsb_error_free(err);
    return NULL;
  }
  return live;
}

/* stdout of `sh -c script` in `live` into buf (NUL-terminated); 0 when it failed. */
static int sh(hsb_live *live, const char *script, char *buf, size_t n) {
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  if (hsb_live_exec(live, ARGV("sh", "-c", script), NULL, NULL, NULL, &o, &err) != HSB_OK) {
    fprintf(stderr, "  exec %s: %s\n", script, hsb_error_message(err));
    hsb_error_free(err);
    return 0;
  }
  size_t len = 0;
  const uint8_t *p = hsb_outcome_stdout(o, &len);
  if (len >= n) len = n - 1;
  memcpy(buf, p ? (const char *)p : "", len);
  buf[len] = 0;
  int ok = hsb_outcome_exit_code(o) == 0;
  if (!ok) {
    size_t elen = 0;
    const uint8_t *e = hsb_outcome_stderr(o, &elen);
    fprintf(stderr, "  exec %s: %s, exit %d, stderr \"%.*s\"\n", script, hsb_outcome_termination(o), hsb_outcome_exit_code(o),
            (int)elen, e ? (const char *)e : "");
  }
  hsb_outcome_free(o);
  return ok;
}

/* A python3 process in the background keeps a count in its own memory: each line
 * written to the FIFO /tmp/in adds to it, and it writes the sum to /tmp/out. (It holds
 * both ends of the FIFO, so that a writer closing never ends its reads.) */
static const char *COUNTER_PY =
    "import os\n"
    "n = 0\n"
    "r = os.open('/tmp/in', os.O_RDONLY | os.O_NONBLOCK)\n"
    "w = os.open('/tmp/in', os.O_WRONLY)\n"
    "os.set_blocking(r, True)\n"
    "f = os.fdopen(r)\n"
    "open('/tmp/ready', 'w').close()\n"
    "while True:\n"
    "    n += int(f.readline())\n"
    "    with open('/tmp/out.tmp', 'w') as o:\n"
    "        o.write('%d' % n)\n"
    "    os.rename('/tmp/out.tmp', '/tmp/out')\n";

static const char *COUNTER =
    "mkfifo /tmp/in && (python3 /tmp/counter.py >/dev/null 2>&1 &) && "
    "while [ ! -e /tmp/ready ]; do sleep 0.01; done; echo started";

/* Adds `add` to the counter of `live`; the count it reports, or -1. */
static long feed(hsb_live *live, int add) {
  char script[256], buf[64];
  snprintf(script, sizeof script,
           "rm -f /tmp/out; echo %d > /tmp/in; i=0; while [ ! -e /tmp/out ] && [ $i -lt 3000 ]; "
           "do sleep 0.01; i=$((i + 1)); done; cat /tmp/out",
           add);
  if (!sh(live, script, buf, sizeof buf)) return -1;
  long n = strtol(buf, NULL, 10);
  return n;
}

static void microvm_snapshot_start_and_fork(void) {
  char why[1024], buf[256];
  hsb_live *parent = create("microvm", why, sizeof why);
  if (!parent) {
    if (strstr(why, "unavailable:") == why) {
      const char *reason = why;
      CHECK_FEATURE_MISSING("KVM", reason);
    } else {
      fprintf(stderr, "  create: %s\n", why);
      check_failed_in_test = 1;
    }
    return;
  }
  CHECK(hsb_live_write_file(parent, "/tmp/counter.py", (const uint8_t *)COUNTER_PY,
                            strlen(COUNTER_PY), 0644, NULL) == HSB_OK);
  CHECK(sh(parent, COUNTER, buf, sizeof buf));
  CHECK(feed(parent, 5) == 5);
  CHECK(sh(parent, "echo parent > /tmp/file", buf, sizeof buf));

  hsb_snapshot *snap = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_live_snapshot(parent, &snap, &err) == HSB_OK);
  if (err) {
    fprintf(stderr, "  snapshot: %s\n", hsb_error_message(err));
    hsb_error_free(err);
  }
  CHECK(snap != NULL);
  if (!snap) {
    hsb_live_free(parent);
    return;
  }
  CHECK(hsb_snapshot_memory_bytes(snap) > 0);
  hsb_bytes *kept = hsb_snapshot_kept(snap);
  CHECK_CONTAINS((const char *)hsb_bytes_data(kept, NULL), "memory");
  hsb_bytes_free(kept);

  hsb_live *a = NULL, *b = NULL;
  CHECK(hsb_snapshot_start(snap, &a, NULL) == HSB_OK && a != NULL);
  CHECK(hsb_snapshot_start(snap, &b, NULL) == HSB_OK && b != NULL);
  if (a && b) {
    /* Each clone goes on from the count at the snapshot, on its own. */
    CHECK(feed(a, 10) == 15);
    CHECK(feed(b, 100) == 105);
    CHECK(feed(parent, 1) == 6);
    CHECK(sh(a, "echo a > /tmp/file; cat /tmp/file", buf, sizeof buf) && strcmp(buf, "a\n") == 0);
    CHECK(sh(b, "cat /tmp/file", buf, sizeof buf) && strcmp(buf, "parent\n") == 0);
    CHECK(sh(parent, "cat /tmp/file", buf, sizeof buf) && strcmp(buf, "parent\n") == 0);
  }
  hsb_live_free(a);
  hsb_live_free(b);

  hsb_live *child = NULL;
  CHECK(hsb_live_fork(parent, &child, NULL) == HSB_OK && child != NULL);
  if (child) CHECK(feed(child, 1000) == 1006);
  hsb_live_free(child);

  /* The snapshot outlives its sandbox. */
  hsb_live_free(parent);
  hsb_live *late = NULL;
  CHECK(hsb_snapshot_start(snap, &late, NULL) == HSB_OK && late != NULL);
  if (late) CHECK(feed(late, 2) == 7);
  hsb_live_free(late);
  hsb_snapshot_free(snap);
}

/* Saved to a file, loaded back (as another process would: a new snapshot object from
 * the file), corrupt copies refused by name, and pause to disk. */
static void microvm_save_load_and_pause_to_disk(void) {
  char why[1024], buf[256];
  hsb_run_options *o = hsb_run_options_new();
  CHECK(hsb_run_options_set_isolation(o, "microvm", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_limit(o, "memory", "64M", NULL) == HSB_OK);
  hsb_live *parent = NULL;
  hsb_error *err = NULL;
  if (hsb_live_create(sb, o, 600000, 0, &parent, &err) != HSB_OK) {
    snprintf(why, sizeof why, "%s: %s", hsb_error_kind(err), hsb_error_message(err));
    hsb_error_free(err);
    hsb_run_options_free(o);
    const char *reason = why;
    CHECK_FEATURE_MISSING("KVM", reason);
    return;
  }
  CHECK(hsb_live_write_file(parent, "/tmp/counter.py", (const uint8_t *)COUNTER_PY,
                            strlen(COUNTER_PY), 0644, NULL) == HSB_OK);
  CHECK(sh(parent, COUNTER, buf, sizeof buf));
  CHECK(feed(parent, 5) == 5);
  char dir[] = "/tmp/hsb-c-snap-XXXXXX";
  CHECK(mkdtemp(dir) != NULL);
  char path[256], bad[256];
  snprintf(path, sizeof path, "%s/counter.hsbsnap", dir);
  snprintf(bad, sizeof bad, "%s/bad.hsbsnap", dir);
  hsb_snapshot *snap = NULL;
  CHECK(hsb_live_snapshot(parent, &snap, NULL) == HSB_OK);
  uint64_t written = 0;
  CHECK(hsb_snapshot_save(snap, path, &written, &err) == HSB_OK && written > 0);
  if (err) {
    fprintf(stderr, "  save: %s\n", hsb_error_message(err));
    hsb_error_free(err);
    err = NULL;
  }
  hsb_snapshot_free(snap);

  hsb_snapshot *loaded = NULL;
  CHECK(hsb_snapshot_load(sb, path, o, &loaded, &err) == HSB_OK && loaded != NULL);
  if (err) {
    fprintf(stderr, "  load: %s\n", hsb_error_message(err));
    hsb_error_free(err);
    err = NULL;
  }
  hsb_live *clone = NULL;
  if (loaded) CHECK(hsb_snapshot_start(loaded, &clone, NULL) == HSB_OK && clone != NULL);
  if (clone) CHECK(feed(clone, 10) == 15);
  /* Its guest memory checks out (checked in the background since the load). */
  if (loaded) CHECK(hsb_snapshot_verify(loaded, NULL) == HSB_OK);
  hsb_live_free(clone);
  hsb_snapshot_free(loaded);

  /* A truncated copy: refused, naming the file. */
  FILE *in = fopen(path, "rb"), *outf = fopen(bad, "wb");
  CHECK(in && outf);
  if (in && outf) {
    char chunk[4096];
    size_t n = fread(chunk, 1, sizeof chunk, in);
    fwrite(chunk, 1, n, outf);
  }
  if (in) fclose(in);
  if (outf) fclose(outf);
  hsb_snapshot *none = NULL;
  CHECK(hsb_snapshot_load(sb, bad, o, &none, &err) != HSB_OK && none == NULL);
  CHECK_CONTAINS(hsb_error_message(err), bad);
  CHECK_CONTAINS(hsb_error_message(err), "truncated");
  hsb_error_free(err);
  err = NULL;

  /* A bit flipped in guest memory: the load does not read it; verify does, and
   * starts are refused after. The first data run's address is at the table's start
   * (its offset: the header's u64 at 104). */
  in = fopen(path, "rb");
  outf = fopen(bad, "wb");
  CHECK(in && outf);
  if (in && outf) {
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0) fwrite(chunk, 1, n, outf);
  }
  if (in) fclose(in);
  if (outf) fclose(outf);
  FILE *f = fopen(bad, "r+b");
  CHECK(f != NULL);
  if (f) {
    uint64_t runs_off = 0, first = 0;
    unsigned char b = 0;
    CHECK(fseek(f, 104, SEEK_SET) == 0 && fread(&runs_off, 8, 1, f) == 1);
    CHECK(fseek(f, (long)runs_off, SEEK_SET) == 0 && fread(&first, 8, 1, f) == 1);
    CHECK(fseek(f, (long)(4096 + first + 17), SEEK_SET) == 0 && fread(&b, 1, 1, f) == 1);
    b ^= 1;
    CHECK(fseek(f, (long)(4096 + first + 17), SEEK_SET) == 0 && fwrite(&b, 1, 1, f) == 1);
    fclose(f);
  }
  hsb_snapshot *flipped = NULL;
  CHECK(hsb_snapshot_load(sb, bad, o, &flipped, NULL) == HSB_OK && flipped != NULL);
  if (flipped) {
    CHECK(hsb_snapshot_verify(flipped, &err) != HSB_OK);
    CHECK_CONTAINS(hsb_error_message(err), bad);
    CHECK_CONTAINS(hsb_error_message(err), "checksum");
    hsb_error_free(err);
    err = NULL;
    hsb_live *refused = NULL;
    CHECK(hsb_snapshot_start(flipped, &refused, NULL) != HSB_OK && refused == NULL);
  }
  hsb_snapshot_free(flipped);

  /* Paused to disk, resumed where it was. */
  hsb_snapshot *paused = NULL;
  CHECK(hsb_live_pause_to_disk(parent, dir, &paused, NULL) == HSB_OK && paused != NULL);
  CHECK_STR(hsb_live_state(parent), "destroyed");
  hsb_live *resumed = NULL;
  if (paused) CHECK(hsb_snapshot_start(paused, &resumed, NULL) == HSB_OK && resumed != NULL);
  if (resumed) CHECK(feed(resumed, 1) == 6);
  hsb_live_free(resumed);
  hsb_snapshot_free(paused);
  hsb_live_free(parent);
  hsb_run_options_free(o);
  unlink(path);
  unlink(bad);
  rmdir(dir);
}

static void microvm_terminal_is_refused_by_name(void) {
  char why[1024], buf[64];
  hsb_live *live = create("microvm", why, sizeof why);
  if (!live) {
    const char *reason = why;
    CHECK_FEATURE_MISSING("KVM", reason);
    return;
  }
  /* A background process holding a pseudo-terminal it opened. */
  CHECK(sh(live,
           "(python3 -c 'import os, time; os.open(\"/dev/ptmx\", os.O_RDWR); "
           "open(\"/tmp/held\", \"w\").close(); time.sleep(60)' &) ; "
           "while [ ! -e /tmp/held ]; do sleep 0.01; done",
           buf, sizeof buf));
  hsb_snapshot *snap = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_live_snapshot(live, &snap, &err) != HSB_OK && snap == NULL);
  CHECK_CONTAINS(hsb_error_message(err), "terminal");
  hsb_error_free(err);
  CHECK(sh(live, "echo alive", buf, sizeof buf) && strcmp(buf, "alive\n") == 0);
  hsb_live_free(live);
}

static void container_snapshot_keeps_the_writable_layer(void) {
  char why[1024], buf[64];
  hsb_live *live = create("container", why, sizeof why);
  CHECK(live != NULL);
  if (!live) {
    fprintf(stderr, "  create: %s\n", why);
    return;
  }
  CHECK(sh(live, "echo yes > /tmp/kept", buf, sizeof buf));
  hsb_snapshot *snap = NULL;
  CHECK(hsb_live_snapshot(live, &snap, NULL) == HSB_OK && snap != NULL);
  hsb_bytes *kept = hsb_snapshot_kept(snap);
  CHECK_CONTAINS((const char *)hsb_bytes_data(kept, NULL), "writable layer only");
  hsb_bytes_free(kept);
  hsb_live *clone = NULL;
  CHECK(hsb_snapshot_start(snap, &clone, NULL) == HSB_OK && clone != NULL);
  if (clone) CHECK(sh(clone, "cat /tmp/kept", buf, sizeof buf) && strcmp(buf, "yes\n") == 0);
  hsb_live_free(clone);
  hsb_snapshot_free(snap);
  hsb_live_free(live);
}

static void bad_input(void) {
  hsb_snapshot *snap = (hsb_snapshot *)1;
  hsb_live *live = (hsb_live *)1;
  CHECK(hsb_live_snapshot(NULL, &snap, NULL) == HSB_ERR_INVALID_ARGUMENT && snap == NULL);
  CHECK(hsb_snapshot_start(NULL, &live, NULL) == HSB_ERR_INVALID_ARGUMENT && live == NULL);
  live = (hsb_live *)1;
  CHECK(hsb_live_fork(NULL, &live, NULL) == HSB_ERR_INVALID_ARGUMENT && live == NULL);
  CHECK(hsb_live_snapshot(NULL, NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_snapshot_memory_bytes(NULL) == 0);
  CHECK(hsb_snapshot_kept(NULL) == NULL);
  CHECK(hsb_snapshot_save(NULL, "/tmp/x", NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_snapshot_load(sb, NULL, NULL, &snap, NULL) == HSB_ERR_INVALID_ARGUMENT && snap == NULL);
  CHECK(hsb_live_pause_to_disk(NULL, "/tmp", &snap, NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_snapshot_free(NULL);
}

int main(void) {
  sb = new_sandbox();
  const struct test_case tests[] = {TEST(microvm_snapshot_start_and_fork),
                                    TEST(microvm_save_load_and_pause_to_disk),
                                    TEST(microvm_terminal_is_refused_by_name),
                                    TEST(container_snapshot_keeps_the_writable_layer),
                                    TEST(bad_input)};
  int r = run_tests("snapshot", tests, sizeof tests / sizeof tests[0]);
  hsb_sandbox_free(sb);
  return r;
}
