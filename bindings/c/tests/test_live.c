/* Live sandboxes through the C API (hsb_live_*), in each isolation that can keep a
 * sandbox alive here: the agent scenario, a background process across execs, pause
 * and resume, files (escapes stay inside), limits named, errors by status and kind. */
#define _GNU_SOURCE
#include <stdint.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static hsb_sandbox *sb;

/* A live sandbox of `isolation` with `limits` ("name=value" pairs, NULL-ended), or
 * NULL with the reason in *why (the micro-VM while its backend has no live mode). */
static hsb_live *create(const char *isolation, const char *const *limits, char *why, size_t n) {
  hsb_run_options *o = hsb_run_options_new();
  hsb_error *err = NULL;
  CHECK(hsb_run_options_set_isolation(o, isolation, NULL) == HSB_OK);
  for (size_t i = 0; limits && limits[i]; i += 2) {
    CHECK(hsb_run_options_set_limit(o, limits[i], limits[i + 1], NULL) == HSB_OK);
  }
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

static hsb_outcome *sh(hsb_live *live, const char *script) {
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  if (hsb_live_exec(live, ARGV("sh", "-c", script), NULL, NULL, NULL, &o, &err) != HSB_OK) {
    fprintf(stderr, "  exec %s: %s\n", script, hsb_error_message(err));
    check_failed_in_test = 1;
    hsb_error_free(err);
  }
  return o;
}

static void agent_scenario_in(const char *isolation) {
  char why[1024];
  hsb_live *live = create(isolation, NULL, why, sizeof why);
  if (!live) {
    /* Micro-VM live sandboxes exist: only a host without KVM skips (the feature rule). */
    if (strcmp(isolation, "microvm") == 0 && strstr(why, "unavailable:") == why) {
      const char *reason = why;
      CHECK_FEATURE_MISSING("KVM", reason);
    } else {
      fprintf(stderr, "  create %s: %s\n", isolation, why);
      check_failed_in_test = 1;
    }
    return;
  }
  CHECK_STR(hsb_live_isolation(live), isolation);
  CHECK_STR(hsb_live_state(live), "running");
  hsb_error *err = NULL;
  /* Write a script, run it, read the file it wrote; run again with state kept. */
  const char *script = "echo \"run $1\" >> /tmp/log; wc -l < /tmp/log";
  CHECK(hsb_live_write_file(live, "/tmp/agent.sh", (const uint8_t *)script, strlen(script), 0644, NULL) == HSB_OK);
  hsb_outcome *o = NULL;
  CHECK(hsb_live_exec(live, ARGV("sh", "/tmp/agent.sh", "one"), NULL, NULL, NULL, &o, NULL) == HSB_OK);
  CHECK(o && hsb_outcome_exit_code(o) == 0 && stdout_is(o, "1\n"));
  hsb_outcome_free(o);
  hsb_bytes *b = NULL;
  CHECK(hsb_live_read_file(live, "/tmp/log", &b, NULL) == HSB_OK);
  size_t len = 0;
  const uint8_t *data = hsb_bytes_data(b, &len);
  CHECK(len == 8 && memcmp(data, "run one\n", 8) == 0);
  hsb_bytes_free(b);
  o = NULL;
  CHECK(hsb_live_exec(live, ARGV("sh", "/tmp/agent.sh", "two"), NULL, NULL, NULL, &o, NULL) == HSB_OK);
  CHECK(o && stdout_is(o, "2\n"));
  hsb_outcome_free(o);
  /* Exec options: env, cwd, stdin; a sandbox-wide option is refused, naming it. */
  hsb_run_options *eo = hsb_run_options_new();
  CHECK(hsb_run_options_set_env(eo, "V", "vee", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_cwd(eo, "/tmp", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_stdin(eo, (const uint8_t *)"in\n", 3, NULL) == HSB_OK);
  o = NULL;
  CHECK(hsb_live_exec(live, ARGV("sh", "-c", "pwd; echo $V; cat; exit 5"), eo, NULL, NULL, &o, NULL) == HSB_OK);
  CHECK(o && hsb_outcome_exit_code(o) == 5 && stdout_is(o, "/tmp\nvee\nin\n"));
  hsb_outcome_free(o);
  CHECK(hsb_run_options_set_memory(eo, 1 << 30, NULL) == HSB_OK);
  o = NULL;
  CHECK(hsb_live_exec(live, ARGV("true"), eo, NULL, NULL, &o, &err) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(o == NULL);
  CHECK_CONTAINS(hsb_error_message(err), "memory belongs to the live sandbox");
  hsb_error_free(err);
  err = NULL;
  hsb_run_options_free(eo);
  /* Errors by status and kind. */
  CHECK(hsb_live_exec(live, ARGV("no-such-program"), NULL, NULL, NULL, &o, &err) == HSB_ERR_PROGRAM_NOT_FOUND);
  CHECK(hsb_error_exit_status(err) == 127);
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_read_file(live, "/tmp/none", &b, &err) == HSB_ERR_FILE);
  CHECK_STR(hsb_error_kind(err), "not_found");
  CHECK(b == NULL);
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_read_file(live, "relative", &b, &err) == HSB_ERR_FILE);
  CHECK_STR(hsb_error_kind(err), "invalid_path");
  hsb_error_free(err);
  err = NULL;
  /* Directories: listing, stat, rename, remove. */
  CHECK(hsb_live_mkdir(live, "/tmp/d/e", 1, NULL) == HSB_OK);
  CHECK(hsb_live_rename(live, "/tmp/log", "/tmp/d/log", NULL) == HSB_OK);
  CHECK(hsb_live_list_dir(live, "/tmp/d", 0, &b, NULL) == HSB_OK);
  CHECK_CONTAINS((const char *)hsb_bytes_data(b, NULL), "\"name\":\"log\"");
  CHECK_CONTAINS((const char *)hsb_bytes_data(b, NULL), "\"name\":\"e\",\"kind\":\"dir\"");
  hsb_bytes_free(b);
  CHECK(hsb_live_list_dir(live, "/tmp/d/log", 1, &b, NULL) == HSB_OK);
  CHECK_CONTAINS((const char *)hsb_bytes_data(b, NULL), "\"size\":16");
  hsb_bytes_free(b);
  CHECK(hsb_live_remove(live, "/tmp/d", 1, NULL) == HSB_OK);
  CHECK(hsb_live_list_dir(live, "/tmp/d", 1, &b, NULL) == HSB_ERR_FILE);
  /* Paths stay inside: `..` and a planted link to a host file. */
  char host[] = "/tmp/hsb-c-live-XXXXXX";
  int fd = mkstemp(host);
  CHECK(fd >= 0 && write(fd, "host secret", 11) == 11);
  close(fd);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "echo own > /tmp/own; ln -s %s /tmp/to-host", host);
  hsb_outcome_free(sh(live, cmd));
  CHECK(hsb_live_read_file(live, "/tmp/../../tmp/own", &b, NULL) == HSB_OK);
  CHECK(b && hsb_bytes_data(b, &len) && len == 4);
  hsb_bytes_free(b);
  b = NULL;
  hsb_status st = hsb_live_read_file(live, "/tmp/to-host", &b, NULL);
  CHECK(st == HSB_ERR_FILE || (b && memcmp(hsb_bytes_data(b, NULL), "host secret", 11) != 0));
  hsb_bytes_free(b);
  (void)hsb_live_write_file(live, "/tmp/to-host", (const uint8_t *)"x", 1, 0644, NULL);
  char back[16] = {0};
  fd = open(host, O_RDONLY);
  CHECK(fd >= 0 && read(fd, back, sizeof back - 1) == 11 && strcmp(back, "host secret") == 0);
  close(fd);
  unlink(host);
  /* A background process keeps running between execs; pause stops it. */
  hsb_outcome_free(sh(live, "(while :; do echo t >> /tmp/ticks; sleep 0.02; done) >/dev/null 2>&1 &"));
  usleep(300000);
  CHECK(hsb_live_pause(live, NULL) == HSB_OK);
  CHECK_STR(hsb_live_state(live), "paused");
  CHECK(hsb_live_exec(live, ARGV("true"), NULL, NULL, NULL, &o, &err) == HSB_ERR_WRONG_STATE);
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_resume(live, NULL) == HSB_OK);
  o = sh(live, "wc -l < /tmp/ticks");
  long before = o ? strtol((const char *)hsb_outcome_stdout(o, NULL), NULL, 10) : 0;
  hsb_outcome_free(o);
  CHECK(hsb_live_pause(live, NULL) == HSB_OK);
  usleep(400000);
  CHECK(hsb_live_resume(live, NULL) == HSB_OK);
  o = sh(live, "wc -l < /tmp/ticks");
  long after = o ? strtol((const char *)hsb_outcome_stdout(o, NULL), NULL, 10) : 0;
  hsb_outcome_free(o);
  CHECK(before > 0 && after < before + 10); /* 400 ms paused: not ~20 more ticks */
  usleep(300000);
  o = sh(live, "wc -l < /tmp/ticks");
  CHECK(o && strtol((const char *)hsb_outcome_stdout(o, NULL), NULL, 10) > after + 3);
  hsb_outcome_free(o);
  CHECK(hsb_live_stats(live, &b, NULL) == HSB_OK);
  CHECK_CONTAINS((const char *)hsb_bytes_data(b, NULL), "\"paused_ms\":");
  hsb_bytes_free(b);
  /* No broker here: the network report is the mode alone (the default loopback). */
  CHECK(hsb_live_network(live, &b, NULL) == HSB_OK);
  CHECK_CONTAINS((const char *)hsb_bytes_data(b, NULL), "\"mode\":\"loopback\"");
  hsb_bytes_free(b);
  /* Destroy: then wrong state; idempotent. */
  CHECK(hsb_live_destroy(live, NULL) == HSB_OK);
  CHECK_STR(hsb_live_state(live), "destroyed");
  CHECK(hsb_live_exec(live, ARGV("true"), NULL, NULL, NULL, &o, NULL) == HSB_ERR_WRONG_STATE);
  CHECK(hsb_live_destroy(live, NULL) == HSB_OK);
  hsb_live_free(live);
}

static void agent_scenario_container(void) { agent_scenario_in("container"); }
static void agent_scenario_microvm(void) { agent_scenario_in("microvm"); }

static void uploads_past_the_limits_name_them(void) {
  char why[512];
  const char *limits[] = {"tmp_size", "2MiB", "file_size", "1MiB", NULL};
  hsb_live *live = create("container", limits, why, sizeof why);
  CHECK(live != NULL);
  if (!live) return;
  size_t n = 3 << 20;
  uint8_t *big = calloc(1, n);
  hsb_error *err = NULL;
  CHECK(hsb_live_write_file(live, "/tmp/big", big, n, 0644, &err) == HSB_ERR_LIMIT);
  CHECK_STR(hsb_error_kind(err), "limit");
  CHECK_CONTAINS(hsb_error_message(err), "file_size");
  hsb_error_free(err);
  err = NULL;
  hsb_status st = HSB_OK;
  for (int i = 0; i < 4 && st == HSB_OK; i++) {
    char p[32];
    snprintf(p, sizeof p, "/tmp/part%d", i);
    st = hsb_live_write_file(live, p, big, 900 << 10, 0644, &err);
  }
  CHECK(st == HSB_ERR_LIMIT);
  CHECK_CONTAINS(hsb_error_message(err), "tmp_size");
  hsb_error_free(err);
  free(big);
  hsb_live_free(live); /* destroys */
}

/* A container's limits change while it runs: pids lowered stops forks, raised lets
 * them through; out of range, fixed or unknown limits are refused by name; a
 * micro-VM's limits are fixed. */
static void limits_change_while_it_runs(void) {
  char why[512];
  const char *limits[] = {"pids", "64", "cpus", "2", NULL};
  hsb_live *live = create("container", limits, why, sizeof why);
  CHECK(live != NULL);
  if (!live) return;
  const char *forks = "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; wait";
  hsb_error *err = NULL;
  CHECK(hsb_live_update_limit(live, "pids", "4", NULL) == HSB_OK);
  hsb_outcome *o = sh(live, forks);
  size_t elen = 0;
  const uint8_t *e = o ? hsb_outcome_stderr(o, &elen) : NULL;
  CHECK(e && memmem(e, elen, "fork", 4) != NULL);
  hsb_outcome_free(o);
  CHECK(hsb_live_update_limit(live, "pids", "0", &err) == HSB_ERR_POLICY);
  CHECK_CONTAINS(hsb_error_message(err), "pids");
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_update_limit(live, "wall_time", "5s", &err) == HSB_ERR_INVALID_ARGUMENT);
  CHECK_CONTAINS(hsb_error_message(err), "wall_time");
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_update_limit(live, "nonsense", "1", &err) == HSB_ERR_INVALID_ARGUMENT);
  hsb_error_free(err);
  err = NULL;
  CHECK(hsb_live_update_limit(live, NULL, "1", NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_update_limit(live, "pids", "64", NULL) == HSB_OK);
  CHECK(hsb_live_update_limit(live, "cpus", "0.5", NULL) == HSB_OK);
  o = sh(live, forks);
  elen = 1;
  if (o) (void)hsb_outcome_stderr(o, &elen);
  CHECK(o && hsb_outcome_exit_code(o) == 0 && elen == 0);
  hsb_outcome_free(o);
  hsb_live_free(live);
  live = create("microvm", limits, why, sizeof why);
  if (!live) return; /* no KVM: agent_scenario_microvm says so */
  CHECK(hsb_live_update_limit(live, "pids", "4", &err) == HSB_ERR_UNSUPPORTED);
  CHECK_CONTAINS(hsb_error_message(err), "fixed when it is created");
  hsb_error_free(err);
  hsb_live_free(live);
}

static int stop_at_two(hsb_stream stream, const uint8_t *data, size_t len, void *user) {
  (void)stream, (void)data, (void)len;
  return ++*(int *)user >= 2;
}

static void streaming_exec_stops_the_exec_not_the_sandbox(void) {
  char why[512];
  hsb_live *live = create("container", NULL, why, sizeof why);
  CHECK(live != NULL);
  if (!live) return;
  int chunks = 0;
  hsb_outcome *o = NULL;
  CHECK(hsb_live_exec(live, ARGV("sh", "-c", "while :; do echo x; sleep 0.01; done"), NULL, stop_at_two,
                      &chunks, &o, NULL) == HSB_OK);
  CHECK(chunks == 2 && o && strcmp(hsb_outcome_termination(o), "killed") == 0);
  hsb_outcome_free(o);
  o = NULL;
  CHECK(hsb_live_exec(live, ARGV("echo", "alive"), NULL, NULL, NULL, &o, NULL) == HSB_OK);
  CHECK(o && stdout_is(o, "alive\n"));
  hsb_outcome_free(o);
  hsb_live_free(live);
}

static void bad_input(void) {
  hsb_live *live = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_live_create(NULL, NULL, 0, 0, &live, &err) == HSB_ERR_INVALID_ARGUMENT);
  hsb_error_free(err);
  CHECK(hsb_live_create(sb, NULL, 0, 0, NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_run_options *o = hsb_run_options_new();
  CHECK(hsb_run_options_set_stdin(o, (const uint8_t *)"x", 1, NULL) == HSB_OK);
  err = NULL;
  CHECK(hsb_live_create(sb, o, 0, 0, &live, &err) == HSB_ERR_INVALID_ARGUMENT);
  CHECK_CONTAINS(hsb_error_message(err), "no stdin");
  hsb_error_free(err);
  hsb_run_options_free(o);
  CHECK(hsb_live_create(sb, NULL, 0, 0, &live, NULL) == HSB_OK);
  hsb_bytes *b = NULL;
  hsb_outcome *out = NULL;
  CHECK(hsb_live_read_file(live, NULL, &b, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_read_file(live, "/tmp", NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_write_file(live, "/tmp/x", NULL, 5, 0644, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_rename(live, "/tmp/x", NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_exec(live, NULL, 0, NULL, NULL, NULL, &out, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_exec(NULL, ARGV("true"), NULL, NULL, NULL, &out, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_stats(live, NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_network(live, NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_bytes *nb = NULL;
  CHECK(hsb_live_network(NULL, &nb, NULL) == HSB_ERR_INVALID_ARGUMENT && nb == NULL);
  CHECK(hsb_live_pause(NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_live_state(NULL) == NULL && hsb_live_isolation(NULL) == NULL);
  CHECK(hsb_bytes_data(NULL, NULL) == NULL);
  const char bad[] = {'/', 't', (char)0xff, 0};
  CHECK(hsb_live_mkdir(live, bad, 0, NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_bytes_free(NULL);
  hsb_live_free(NULL);
  hsb_live_free(live);
}

int main(void) {
  sb = new_sandbox();
  const struct test_case tests[] = {TEST(agent_scenario_container), TEST(agent_scenario_microvm),
                                    TEST(uploads_past_the_limits_name_them),
                                    TEST(limits_change_while_it_runs),
                                    TEST(streaming_exec_stops_the_exec_not_the_sandbox),
                                    TEST(bad_input)};
  int r = run_tests("live", tests, sizeof tests / sizeof tests[0]);
  hsb_sandbox_free(sb);
  return r;
}
