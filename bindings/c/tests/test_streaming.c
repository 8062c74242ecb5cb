/* Output streamed through a callback while the workload runs. */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>

#include "check.h"

static hsb_sandbox *sb;

struct collected {
  char out[4096], err[4096];
  size_t out_len, err_len;
  int chunks, other_thread, stop_after;
  pthread_t caller;
  double first_ms;
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int collect(hsb_stream stream, const uint8_t *data, size_t len, void *user_data) {
  struct collected *c = user_data;
  if (c->chunks == 0) c->first_ms = now_ms();
  c->chunks++;
  if (!pthread_equal(pthread_self(), c->caller)) c->other_thread = 1;
  char *buf = stream == HSB_STREAM_STDOUT ? c->out : c->err;
  size_t *n = stream == HSB_STREAM_STDOUT ? &c->out_len : &c->err_len;
  size_t room = sizeof c->out - 1 - *n;
  size_t take = len < room ? len : room;
  memcpy(buf + *n, data, take);
  *n += take;
  buf[*n] = 0;
  return c->stop_after > 0 && c->chunks >= c->stop_after;
}

static void both_streams(void) {
  struct collected c = {0};
  c.caller = pthread_self();
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  hsb_status st = hsb_run_streaming(sb, ARGV("sh", "-c", "echo out1; echo err1 >&2; echo out2"),
                                    NULL, collect, &c, &o, &err);
  CHECK(st == HSB_OK);
  if (st != HSB_OK) {
    fprintf(stderr, "  %s\n", hsb_error_message(err));
    hsb_error_free(err);
    return;
  }
  CHECK_STR(c.out, "out1\nout2\n");
  CHECK_STR(c.err, "err1\n");
  CHECK(c.chunks >= 2);
  CHECK(!c.other_thread);
  /* The outcome captures the output too. */
  CHECK(stdout_is(o, "out1\nout2\n"));
  CHECK(stderr_is(o, "err1\n"));
  CHECK_STR(hsb_outcome_termination(o), "exited");
  hsb_outcome_free(o);
}

/* Chunks arrive while the workload runs, not at its end. */
static void arrives_early(void) {
  struct collected c = {0};
  c.caller = pthread_self();
  hsb_outcome *o = NULL;
  double start = now_ms();
  CHECK(hsb_run_streaming(sb, ARGV("sh", "-c", "echo early; sleep 1.5; echo late"), NULL,
                          collect, &c, &o, NULL) == HSB_OK);
  double end = now_ms();
  CHECK(c.chunks >= 2);
  CHECK(c.first_ms - start < end - start - 1000.0);
  CHECK_STR(c.out, "early\nlate\n");
  hsb_outcome_free(o);
}

/* A non-zero return kills the run. */
static void stop_early(void) {
  struct collected c = {0};
  c.caller = pthread_self();
  c.stop_after = 1;
  hsb_outcome *o = NULL;
  double start = now_ms();
  CHECK(hsb_run_streaming(sb, ARGV("sh", "-c", "echo first; sleep 30; echo never"), NULL,
                          collect, &c, &o, NULL) == HSB_OK);
  CHECK(now_ms() - start < 15000.0);
  CHECK(c.chunks == 1);
  CHECK_STR(c.out, "first\n");
  CHECK_STR(hsb_outcome_termination(o), "killed");
  hsb_outcome_free(o);
}

/* A run started from inside a callback is refused, not a deadlock or a crash. */
static int nested(hsb_stream stream, const uint8_t *data, size_t len, void *user_data) {
  (void)stream;
  (void)data;
  (void)len;
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  const char *argv[] = {"true"};
  int *result = user_data;
  *result = hsb_run(sb, argv, 1, NULL, &o, &err) == HSB_ERR_INVALID_ARGUMENT && o == NULL &&
            strstr(hsb_error_message(err), "callback") != NULL;
  hsb_error_free(err);
  return 0;
}

static void run_inside_callback(void) {
  int refused = 0;
  hsb_outcome *o = NULL;
  CHECK(hsb_run_streaming(sb, ARGV("echo", "x"), NULL, nested, &refused, &o, NULL) == HSB_OK);
  CHECK(refused == 1);
  CHECK(o != NULL && stdout_is(o, "x\n"));
  hsb_outcome_free(o);
}

/* No callback: the same as hsb_run. */
static void null_callback(void) {
  hsb_outcome *o = NULL;
  CHECK(hsb_run_streaming(sb, ARGV("echo", "plain"), NULL, NULL, NULL, &o, NULL) == HSB_OK);
  CHECK(o != NULL && stdout_is(o, "plain\n"));
  hsb_outcome_free(o);
}

/* Lots of output, in many chunks, all of it delivered in order. */
static void large_output(void) {
  struct collected c = {0};
  c.caller = pthread_self();
  hsb_outcome *o = NULL;
  CHECK(hsb_run_streaming(sb, ARGV("sh", "-c", "seq 1 100000 >/dev/null; seq 1 500"), NULL,
                          collect, &c, &o, NULL) == HSB_OK);
  size_t len = 0;
  const uint8_t *p = hsb_outcome_stdout(o, &len);
  CHECK(len == c.out_len);
  CHECK(p != NULL && memcmp(p, c.out, len) == 0);
  CHECK(strncmp(c.out, "1\n2\n3\n", 6) == 0);
  hsb_outcome_free(o);
}

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(both_streams), TEST(arrives_early), TEST(stop_early), TEST(null_callback),
        TEST(large_output), TEST(run_inside_callback),
    };
    rc = run_tests("test_streaming", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
