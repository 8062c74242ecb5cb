/* Warm templates through the C API (hsb_run_template): the default policy's `py`
 * (a fork of its micro-VM snapshot) and `py-container` (its pool) run print(6*7) from
 * their stdin; two runs read different random values; a wall-time limit ends a run;
 * options that do not go with a template and an unknown template are refused. */
#include <stdint.h>

#include "check.h"

static hsb_sandbox *sb;

static hsb_outcome *run(const char *name, const char *code, int64_t wall_ms, hsb_error **err) {
  hsb_run_options *o = hsb_run_options_new();
  CHECK(hsb_run_options_set_stdin(o, (const uint8_t *)code, strlen(code), NULL) == HSB_OK);
  if (wall_ms > 0) {
    CHECK(hsb_run_options_set_wall_time_ms(o, (uint64_t)wall_ms, NULL) == HSB_OK);
  }
  hsb_outcome *out = NULL;
  hsb_status st = hsb_run_template(sb, name, o, &out, err);
  hsb_run_options_free(o);
  CHECK((st == HSB_OK) == (out != NULL));
  return out;
}

static void template_in(const char *name, const char *isolation) {
  hsb_error *err = NULL;
  hsb_outcome *o = run(name, "print(6*7)", 0, &err);
  if (!o) {
    if (strcmp(isolation, "microvm") == 0 && strcmp(hsb_error_kind(err), "unavailable") == 0) {
      const char *reason = hsb_error_message(err);
      CHECK_FEATURE_MISSING("KVM", reason);
    } else {
      fprintf(stderr, "  %s: %s: %s\n", name, hsb_error_kind(err), hsb_error_message(err));
      check_failed_in_test = 1;
    }
    hsb_error_free(err);
    return;
  }
  size_t n = 0;
  const uint8_t *out = hsb_outcome_stdout(o, &n);
  CHECK(n == 3 && memcmp(out, "42\n", 3) == 0);
  CHECK_STR(hsb_outcome_isolation(o), isolation);
  hsb_outcome_free(o);

  const char *code = "import os, random\nprint(os.urandom(8).hex(), random.random())";
  hsb_outcome *a = run(name, code, 0, NULL);
  hsb_outcome *b = run(name, code, 0, NULL);
  CHECK(a && b);
  if (a && b) {
    size_t na = 0, nb = 0;
    const uint8_t *sa = hsb_outcome_stdout(a, &na);
    const uint8_t *sb_ = hsb_outcome_stdout(b, &nb);
    CHECK(na > 20 && !(na == nb && memcmp(sa, sb_, na) == 0));
  }
  hsb_outcome_free(a);
  hsb_outcome_free(b);

  hsb_outcome *t = run(name, "import time\ntime.sleep(30)", 300, NULL);
  CHECK(t != NULL);
  if (t) {
    CHECK_STR(hsb_outcome_termination(t), "timeout");
  }
  hsb_outcome_free(t);
}

static void refusals(void) {
  hsb_run_options *o = hsb_run_options_new();
  CHECK(hsb_run_options_set_env(o, "A", "B", NULL) == HSB_OK);
  hsb_outcome *out = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_run_template(sb, "py", o, &out, &err) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(out == NULL);
  CHECK(err && strstr(hsb_error_message(err), "template run takes only") != NULL);
  hsb_error_free(err);
  hsb_run_options_free(o);
  err = NULL;
  CHECK(hsb_run_template(sb, "nope", NULL, &out, &err) == HSB_ERR_POLICY);
  CHECK(err && strstr(hsb_error_message(err), "no template `nope`") != NULL);
  hsb_error_free(err);
  CHECK(hsb_run_template(sb, NULL, NULL, &out, NULL) == HSB_ERR_INVALID_ARGUMENT);
}

static void py_microvm(void) { template_in("py", "microvm"); }
static void py_container(void) { template_in("py-container", "container"); }

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(refusals), TEST(py_container), TEST(py_microvm),
    };
    rc = run_tests("test_template", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
