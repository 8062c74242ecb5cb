/* stdin, environment, mounts, working directory, and SIGPIPE. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

static hsb_sandbox *sb;

static void stdin_bytes(void) {
  static const uint8_t data[] = {'a', 0, 'b', '\n', 0xff};
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_stdin(opts, data, sizeof data, NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("cat"), opts);
  if (o) {
    size_t len = 0;
    const uint8_t *p = hsb_outcome_stdout(o, &len);
    CHECK(len == sizeof data);
    CHECK(p != NULL && memcmp(p, data, sizeof data) == 0);
    hsb_outcome_free(o);
  }
  /* Empty stdin, and /dev/null without one. */
  CHECK(hsb_run_options_set_stdin(opts, NULL, 0, NULL) == HSB_OK);
  o = run_ok(sb, ARGV("wc", "-c"), opts);
  if (o) {
    CHECK(stdout_is(o, "0\n"));
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
  o = run_ok(sb, ARGV("wc", "-c"), NULL);
  if (o) {
    CHECK(stdout_is(o, "0\n"));
    hsb_outcome_free(o);
  }
}

/* A workload that never reads a large stdin: the library gets EPIPE, and this process
 * must not die of SIGPIPE. */
static void stdin_not_read(void) {
  struct sigaction sa;
  CHECK(sigaction(SIGPIPE, NULL, &sa) == 0);
  CHECK(sa.sa_handler == SIG_IGN);
  size_t n = 4u << 20;
  uint8_t *big = calloc(n, 1);
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_stdin(opts, big, n, NULL) == HSB_OK);
  free(big);
  hsb_outcome *o = run_ok(sb, ARGV("true"), opts);
  if (o) {
    CHECK_STR(hsb_outcome_termination(o), "exited");
    CHECK(hsb_outcome_exit_code(o) == 0);
    hsb_outcome_free(o);
  }
  o = run_ok(sb, ARGV("head", "-c", "3"), opts);
  if (o) {
    size_t len = 0;
    hsb_outcome_stdout(o, &len);
    CHECK(len == 3);
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

static void env(void) {
  setenv("HSB_TEST_LEAK", "from-the-host", 1);
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_env(opts, "GREETING", "hello world", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_env(opts, "EMPTY", "", NULL) == HSB_OK);
  hsb_outcome *o = run_ok(
      sb, ARGV("sh", "-c", "printf '%s|%s|%s' \"$GREETING\" \"${EMPTY-unset}\" \"${HSB_TEST_LEAK-unset}\""),
      opts);
  if (o) {
    CHECK(stdout_is(o, "hello world||unset"));
    hsb_outcome_free(o);
  }
  /* A later value replaces the earlier one. */
  CHECK(hsb_run_options_set_env(opts, "GREETING", "bye", NULL) == HSB_OK);
  o = run_ok(sb, ARGV("sh", "-c", "printf %s \"$GREETING\""), opts);
  if (o) {
    CHECK(stdout_is(o, "bye"));
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  CHECK(f != NULL);
  if (!f) return;
  fputs(text, f);
  fclose(f);
  chmod(path, 0644);
}

static char *read_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f) return NULL;
  size_t n = fread(buf, 1, cap - 1, f);
  buf[n] = 0;
  fclose(f);
  return buf;
}

static void mounts(void) {
  char ro[] = "/tmp/hsb-c-ro-XXXXXX", rw[] = "/tmp/hsb-c-rw-XXXXXX";
  CHECK(mkdtemp(ro) != NULL && mkdtemp(rw) != NULL);
  /* The sandbox's user maps to an unprivileged host uid: let it read and write. */
  chmod(ro, 0755);
  chmod(rw, 0777);
  char path[256], buf[256];
  snprintf(path, sizeof path, "%s/data.txt", ro);
  write_file(path, "payload\n");

  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_add_mount(opts, ro, "/data", 0, NULL) == HSB_OK);
  CHECK(hsb_run_options_add_mount(opts, rw, "/out", 1, NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("cat", "/data/data.txt"), opts);
  if (o) {
    CHECK(stdout_is(o, "payload\n"));
    hsb_outcome_free(o);
  }
  /* Read-only stays read-only. */
  o = run_ok(sb, ARGV("sh", "-c", "echo x > /data/new"), opts);
  if (o) {
    CHECK(hsb_outcome_exit_code(o) != 0);
    hsb_outcome_free(o);
  }
  snprintf(path, sizeof path, "%s/new", ro);
  CHECK(access(path, F_OK) != 0);
  /* Read-write writes through to the host. */
  o = run_ok(sb, ARGV("sh", "-c", "echo written > /out/result"), opts);
  if (o) {
    CHECK(hsb_outcome_exit_code(o) == 0);
    hsb_outcome_free(o);
  }
  snprintf(path, sizeof path, "%s/result", rw);
  CHECK_STR(read_file(path, buf, sizeof buf), "written\n");
  unlink(path);
  /* The working directory. */
  CHECK(hsb_run_options_set_cwd(opts, "/data", NULL) == HSB_OK);
  o = run_ok(sb, ARGV("cat", "data.txt"), opts);
  if (o) {
    CHECK(stdout_is(o, "payload\n"));
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);

  /* A host path that does not exist is an error that names it. */
  opts = hsb_run_options_new();
  CHECK(hsb_run_options_add_mount(opts, "/no/such/dir", "/x", 0, NULL) == HSB_OK);
  hsb_outcome *none = NULL;
  hsb_error *err = NULL;
  hsb_status st = hsb_run(sb, ARGV("true"), opts, &none, &err);
  CHECK(st != HSB_OK);
  CHECK(none == NULL);
  CHECK_CONTAINS(hsb_error_message(err), "/no/such/dir");
  hsb_error_free(err);
  hsb_run_options_free(opts);

  snprintf(path, sizeof path, "%s/data.txt", ro);
  unlink(path);
  rmdir(ro);
  rmdir(rw);
}

static void limits_as_text(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_limit(opts, "memory", "256MiB", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_limit(opts, "cpu_time", "5s", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_limit(opts, "pids", "32", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_limit(opts, "output", "1MiB", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_memory(opts, 128u << 20, NULL) == HSB_OK);
  CHECK(hsb_run_options_set_cpu_time_ms(opts, 5000, NULL) == HSB_OK);
  CHECK(hsb_run_options_set_pids(opts, 16, NULL) == HSB_OK);
  CHECK(hsb_run_options_set_network(opts, "none", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_label(opts, "trust", "trusted", NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("echo", "limited"), opts);
  if (o) {
    CHECK(stdout_is(o, "limited\n"));
    CHECK_CONTAINS(hsb_outcome_enforcement_json(o), "\"memory\"");
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

int main(void) {
  signal(SIGPIPE, SIG_DFL);
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(stdin_bytes), TEST(stdin_not_read), TEST(env), TEST(mounts), TEST(limits_as_text),
    };
    rc = run_tests("test_io", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
