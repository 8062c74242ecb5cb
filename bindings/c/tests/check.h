/* A tiny test harness for the C API tests: CHECK macros, helpers that run workloads,
 * and a main loop that prints one line per test and "N passed, N failed" at the end. */
#ifndef HSB_CHECK_H
#define HSB_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsb.h"

static int check_failed_in_test;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);     \
      check_failed_in_test = 1;                                                      \
    }                                                                                \
  } while (0)

/* Compares strings; a NULL on either side fails. */
#define CHECK_STR(got, want)                                                         \
  do {                                                                               \
    const char *g_ = (got), *w_ = (want);                                            \
    if (g_ == NULL || w_ == NULL || strcmp(g_, w_) != 0) {                           \
      fprintf(stderr, "  %s:%d: CHECK_STR failed: %s is \"%s\", expected \"%s\"\n",  \
              __FILE__, __LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)");     \
      check_failed_in_test = 1;                                                      \
    }                                                                                \
  } while (0)

/* `haystack` (may be NULL) contains `needle`. */
#define CHECK_CONTAINS(haystack, needle)                                             \
  do {                                                                               \
    const char *h_ = (haystack), *n_ = (needle);                                     \
    if (h_ == NULL || strstr(h_, n_) == NULL) {                                      \
      fprintf(stderr, "  %s:%d: CHECK_CONTAINS failed: %s is \"%s\", lacks \"%s\"\n", \
              __FILE__, __LINE__, #haystack, h_ ? h_ : "(null)", n_);                \
      check_failed_in_test = 1;                                                      \
    }                                                                                \
  } while (0)

/* The feature rule: a test that meets a missing feature (KVM...) and checks only what
 * holds without it fails instead under HSB_REQUIRE_FEATURES=1 (CI sets it; for KVM,
 * HSB_REQUIRE_KVM=1 too); otherwise it says so on stderr. */
#define CHECK_FEATURE_MISSING(feature, why)                                          \
  do {                                                                               \
    const char *rf_ = getenv("HSB_REQUIRE_FEATURES");                                \
    const char *rk_ = getenv("HSB_REQUIRE_KVM");                                     \
    int required_ = (rf_ && strcmp(rf_, "1") == 0) ||                                \
                    (strcmp((feature), "KVM") == 0 && rk_ && strcmp(rk_, "1") == 0); \
    fprintf(stderr, "  %s: %s:%d: needs %s: %s\n", required_ ? "FAILED" : "SKIPPED",   \
            __FILE__, __LINE__, (feature), (why) ? (why) : "");                     \
    if (required_) check_failed_in_test = 1;                                         \
  } while (0)

/* An argv array and its length: run(sb, ARGV("echo", "hi"), NULL). */
#define ARGV(...)                                                                    \
  (const char *const[]){__VA_ARGS__},                                                \
      sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* The captured stdout of `o` equals `want` (text without NUL). */
static inline int stdout_is(const hsb_outcome *o, const char *want) {
  size_t len = 0;
  const uint8_t *p = hsb_outcome_stdout(o, &len);
  int same = p != NULL && len == strlen(want) && memcmp(p, want, len) == 0;
  if (!same) {
    fprintf(stderr, "  stdout is \"%.*s\" (%zu bytes), expected \"%s\"\n", (int)len,
            p ? (const char *)p : "", len, want);
  }
  return same;
}

static inline int stderr_is(const hsb_outcome *o, const char *want) {
  size_t len = 0;
  const uint8_t *p = hsb_outcome_stderr(o, &len);
  int same = p != NULL && len == strlen(want) && memcmp(p, want, len) == 0;
  if (!same) {
    fprintf(stderr, "  stderr is \"%.*s\" (%zu bytes), expected \"%s\"\n", (int)len,
            p ? (const char *)p : "", len, want);
  }
  return same;
}

/* A sandbox under the embedded default policy; exits the test program if none. */
static inline hsb_sandbox *new_sandbox(void) {
  hsb_sandbox *sb = NULL;
  hsb_error *err = NULL;
  if (hsb_sandbox_new(NULL, &sb, &err) != HSB_OK) {
    fprintf(stderr, "hsb_sandbox_new: %s\n", hsb_error_message(err));
    hsb_error_free(err);
    exit(2);
  }
  return sb;
}

/* Runs a workload that must start; returns its outcome or NULL (and fails the test). */
static inline hsb_outcome *run_ok_at(const char *file, int line, hsb_sandbox *sb,
                                     const char *const *argv, size_t argc,
                                     const hsb_run_options *opts) {
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  hsb_status st = hsb_run(sb, argv, argc, opts, &o, &err);
  if (st != HSB_OK) {
    fprintf(stderr, "  %s:%d: hsb_run(%s) failed with %d (%s): %s\n", file, line, argv[0],
            (int)st, hsb_error_kind(err), hsb_error_message(err));
    check_failed_in_test = 1;
    hsb_error_free(err);
    return NULL;
  }
  return o;
}
#define run_ok(sb, ...) run_ok_at(__FILE__, __LINE__, sb, __VA_ARGS__)

typedef void (*test_fn)(void);
struct test_case {
  const char *name;
  test_fn fn;
};
#define TEST(name) {#name, name}

/* Runs the tests; the exit status is 0 only when every one passed. */
static inline int run_tests(const char *suite, const struct test_case *tests, size_t n) {
  int passed = 0, failed = 0;
  for (size_t i = 0; i < n; i++) {
    check_failed_in_test = 0;
    tests[i].fn();
    printf("%s %s::%s\n", check_failed_in_test ? "FAIL" : "ok  ", suite, tests[i].name);
    fflush(stdout);
    if (check_failed_in_test) {
      failed++;
    } else {
      passed++;
    }
  }
  printf("%s: %d passed, %d failed\n", suite, passed, failed);
  return failed == 0 ? 0 : 1;
}
#define RUN_TESTS(suite, ...)                                                        \
  do {                                                                               \
    const struct test_case tests_[] = {__VA_ARGS__};                                 \
    return run_tests(suite, tests_, sizeof tests_ / sizeof tests_[0]);               \
  } while (0)

#endif
