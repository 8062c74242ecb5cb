/* Runs, exit codes, signals, timeouts, errors and the micro-VM request. */
#define _GNU_SOURCE /* memmem */
#include "check.h"

static hsb_sandbox *sb;

static void echo_run(void) {
  hsb_outcome *o = run_ok(sb, ARGV("echo", "hello"), NULL);
  if (!o) return;
  CHECK_STR(hsb_outcome_termination(o), "exited");
  CHECK(hsb_outcome_exit_code(o) == 0);
  CHECK(hsb_outcome_signal(o) == -1);
  CHECK(hsb_outcome_shell_status(o) == 0);
  CHECK(stdout_is(o, "hello\n"));
  CHECK(stderr_is(o, ""));
  CHECK_STR(hsb_outcome_isolation(o), "container");
  CHECK(hsb_outcome_wall_time_ms(o) > 0.0);
  CHECK(hsb_outcome_cpu_time_ms(o) >= 0.0);
  CHECK_STR(hsb_outcome_profile(o), "default");
  size_t n = hsb_outcome_reason_count(o);
  CHECK(n >= 1);
  for (size_t i = 0; i < n; i++) CHECK(hsb_outcome_reason(o, i) != NULL);
  CHECK(hsb_outcome_reason(o, n) == NULL);
  const char *json = hsb_outcome_json(o);
  CHECK(json != NULL && json[0] == '{');
  CHECK_CONTAINS(json, "\"termination\":\"exited\"");
  CHECK_CONTAINS(json, "\"stdout\":\"hello\\n\"");
  CHECK_CONTAINS(hsb_outcome_enforcement_json(o), "\"isolation\":\"container\"");
  CHECK_CONTAINS(hsb_outcome_enforcement_json(o), "\"seccomp\"");
  CHECK_CONTAINS(hsb_outcome_decision_json(o), "\"reasons\"");
  hsb_outcome_free(o);
}

static void exit_codes(void) {
  hsb_outcome *o = run_ok(sb, ARGV("sh", "-c", "exit 3"), NULL);
  if (o) {
    CHECK_STR(hsb_outcome_termination(o), "exited");
    CHECK(hsb_outcome_exit_code(o) == 3);
    CHECK(hsb_outcome_shell_status(o) == 3);
    hsb_outcome_free(o);
  }
  o = run_ok(sb, ARGV("false"), NULL);
  if (o) {
    CHECK(hsb_outcome_exit_code(o) == 1);
    hsb_outcome_free(o);
  }
  o = run_ok(sb, ARGV("sh", "-c", "echo oops >&2; exit 255"), NULL);
  if (o) {
    CHECK(hsb_outcome_exit_code(o) == 255);
    CHECK(stderr_is(o, "oops\n"));
    hsb_outcome_free(o);
  }
}

static void signaled(void) {
  hsb_outcome *o = run_ok(sb, ARGV("sh", "-c", "kill -KILL $$"), NULL);
  if (!o) return;
  CHECK_STR(hsb_outcome_termination(o), "signaled");
  CHECK(hsb_outcome_signal(o) == 9);
  CHECK(hsb_outcome_exit_code(o) == -1);
  CHECK(hsb_outcome_shell_status(o) == 137);
  hsb_outcome_free(o);
}

static void timeout(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_wall_time_ms(opts, 300, NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("sleep", "30"), opts);
  if (o) {
    CHECK_STR(hsb_outcome_termination(o), "timeout");
    CHECK(hsb_outcome_exit_code(o) == -1);
    CHECK(hsb_outcome_shell_status(o) == 124);
    CHECK(hsb_outcome_wall_time_ms(o) >= 250.0);
    CHECK(hsb_outcome_wall_time_ms(o) < 20000.0);
    hsb_outcome_free(o);
  }
  /* The same limit as text. */
  CHECK(hsb_run_options_set_limit(opts, "wall_time", "0.3s", NULL) == HSB_OK);
  o = run_ok(sb, ARGV("sleep", "30"), opts);
  if (o) {
    CHECK_STR(hsb_outcome_termination(o), "timeout");
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

/* tmpfs and cpus: an empty in-memory filesystem with its size and mode, a CPU quota. */
static void tmpfs_and_cpus(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_isolation(opts, "container", NULL) == HSB_OK);
  CHECK(hsb_run_options_add_tmpfs(opts, "/scratch:size=1MiB,mode=700", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_limit(opts, "cpus", "0.5", NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb,
                          ARGV("sh", "-c",
                               "stat -c %a /scratch; dd if=/dev/zero of=/scratch/f bs=4096 "
                               "count=512 2>/dev/null; echo dd=$?"),
                          opts);
  if (o) {
    size_t len = 0;
    const char *out = (const char *)hsb_outcome_stdout(o, &len);
    CHECK(out != NULL && len >= 4 && memcmp(out, "700\n", 4) == 0);
    CHECK(out != NULL && memmem(out, len, "dd=1", 4) != NULL);
    CHECK_CONTAINS(hsb_outcome_enforcement_json(o), "\"cpus\"");
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

static void output_limit(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_output_limit(opts, 1000, NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("yes"), opts);
  if (o) {
    size_t len = 0;
    CHECK_STR(hsb_outcome_termination(o), "output_limit");
    CHECK(hsb_outcome_stdout(o, &len) != NULL);
    CHECK(len <= 1000);
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
}

static void program_not_found(void) {
  hsb_outcome *o = (hsb_outcome *)&o; /* must be reset to NULL */
  hsb_error *err = NULL;
  hsb_status st = hsb_run(sb, ARGV("/no/such/program"), NULL, &o, &err);
  CHECK(st == HSB_ERR_PROGRAM_NOT_FOUND);
  CHECK(o == NULL);
  CHECK(err != NULL);
  CHECK(hsb_error_status(err) == HSB_ERR_PROGRAM_NOT_FOUND);
  CHECK_STR(hsb_error_kind(err), "program_not_found");
  CHECK(hsb_error_exit_status(err) == 127);
  CHECK_CONTAINS(hsb_error_message(err), "/no/such/program");
  hsb_error_free(err);
}

/* The micro-VM backend either runs the workload (a static program: busybox) or says
 * clearly why it cannot. */
static void microvm_or_unavailable(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_isolation(opts, "microvm", NULL) == HSB_OK);
  hsb_outcome *o = NULL;
  hsb_error *err = NULL;
  hsb_status st = hsb_run(sb, ARGV("/usr/bin/busybox", "echo", "hi"), opts, &o, &err);
  if (st == HSB_OK) {
    CHECK_STR(hsb_outcome_isolation(o), "microvm");
    CHECK(stdout_is(o, "hi\n"));
    CHECK_CONTAINS(hsb_outcome_enforcement_json(o), "\"vm\"");
  } else {
    CHECK(st == HSB_ERR_UNAVAILABLE);
    CHECK_STR(hsb_error_kind(err), "unavailable");
    CHECK_CONTAINS(hsb_error_message(err), "microvm");
    CHECK(o == NULL);
    CHECK_FEATURE_MISSING("KVM", hsb_error_message(err));
  }
  hsb_outcome_free(o);
  hsb_error_free(err);
  hsb_run_options_free(opts);
}

static void policy_errors(void) {
  hsb_sandbox *other = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_sandbox_new("/no/such/policy.toml", &other, &err) == HSB_ERR_POLICY);
  CHECK(other == NULL);
  CHECK_STR(hsb_error_kind(err), "policy");
  CHECK_CONTAINS(hsb_error_message(err), "/no/such/policy.toml");
  hsb_error_free(err);

  err = NULL;
  CHECK(hsb_sandbox_new_from_toml("version = 1\n[defaults]\nisolation = 7\n", "inline-policy",
                                  &other, &err) == HSB_ERR_POLICY);
  CHECK_CONTAINS(hsb_error_message(err), "inline-policy");
  hsb_error_free(err);

  /* A profile the policy does not have. */
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_workload(opts, "defualt", NULL) == HSB_OK);
  hsb_outcome *o = NULL;
  err = NULL;
  CHECK(hsb_run(sb, ARGV("true"), opts, &o, &err) == HSB_ERR_POLICY);
  CHECK_CONTAINS(hsb_error_message(err), "defualt");
  CHECK_CONTAINS(hsb_error_message(err), "did you mean");
  hsb_error_free(err);
  hsb_run_options_free(opts);
}

static void policy_from_text(void) {
  const char *policy =
      "version = 1\n"
      "[defaults]\n"
      "isolation = \"container\"\n"
      "[[defaults.mounts]]\nsource = \"/usr\"\n"
      "[[defaults.mounts]]\nsource = \"/bin\"\noptional = true\n"
      "[[defaults.mounts]]\nsource = \"/lib\"\noptional = true\n"
      "[[defaults.mounts]]\nsource = \"/lib64\"\noptional = true\n"
      "[profiles.quick]\ndescription = \"short runs\"\n"
      "[profiles.quick.limits]\nwall_time = \"5s\"\n";
  hsb_sandbox *other = NULL;
  hsb_error *err = NULL;
  CHECK(hsb_sandbox_new_from_toml(policy, "test-policy", &other, &err) == HSB_OK);
  if (err) fprintf(stderr, "  %s\n", hsb_error_message(err));
  CHECK(err == NULL);
  if (!other) return;
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_workload(opts, "quick", NULL) == HSB_OK);
  hsb_outcome *o = run_ok(other, ARGV("echo", "quick"), opts);
  if (o) {
    CHECK_STR(hsb_outcome_profile(o), "quick");
    CHECK(stdout_is(o, "quick\n"));
    hsb_outcome_free(o);
  }
  hsb_run_options_free(opts);
  hsb_sandbox_free(other);
}

/* Needs steer `auto`: a trusted workload that needs the network gets the container (the
 * backend that has one); an untrusted one is refused, with the reason. */
static void needs(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_isolation(opts, "auto", NULL) == HSB_OK);
  CHECK(hsb_run_options_add_need(opts, "network", NULL) == HSB_OK);
  CHECK(hsb_run_options_add_need(opts, "network", NULL) == HSB_OK);
  CHECK(hsb_run_options_set_label(opts, "trust", "trusted", NULL) == HSB_OK);
  hsb_outcome *o = run_ok(sb, ARGV("echo", "needs met"), opts);
  if (o) {
    CHECK_STR(hsb_outcome_isolation(o), "container");
    CHECK(stdout_is(o, "needs met\n"));
    CHECK_CONTAINS(hsb_outcome_decision_json(o), "trust=trusted");
    hsb_outcome_free(o);
  }
  CHECK(hsb_run_options_set_label(opts, "trust", "untrusted", NULL) == HSB_OK);
  hsb_error *err = NULL;
  o = NULL;
  CHECK(hsb_run(sb, ARGV("true"), opts, &o, &err) == HSB_ERR_UNAVAILABLE);
  CHECK(o == NULL);
  CHECK_STR(hsb_error_kind(err), "unavailable");
  CHECK_CONTAINS(hsb_error_message(err), "needs network");
  hsb_error_free(err);
  hsb_run_options_free(opts);
}

/* An image that is neither in the store nor a path: its own status, and the name. */
static void missing_image(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_image(opts, "no-such-image:1", NULL) == HSB_OK);
  hsb_error *err = NULL;
  hsb_outcome *o = NULL;
  CHECK(hsb_run(sb, ARGV("true"), opts, &o, &err) == HSB_ERR_IMAGE);
  CHECK(o == NULL);
  CHECK_STR(hsb_error_kind(err), "image");
  CHECK_CONTAINS(hsb_error_message(err), "no-such-image:1");
  CHECK(hsb_error_exit_status(err) == 125);
  hsb_error_free(err);
  /* NULL takes the image back: the run stands on the policy's mounts again. */
  CHECK(hsb_run_options_set_image(opts, NULL, NULL) == HSB_OK);
  o = run_ok(sb, ARGV("true"), opts);
  CHECK(o != NULL);
  hsb_outcome_free(o);
  hsb_run_options_free(opts);
}

/* An outcome's stdout length may be left out. */
static void null_length(void) {
  hsb_outcome *o = run_ok(sb, ARGV("echo", "x"), NULL);
  if (!o) return;
  CHECK(hsb_outcome_stdout(o, NULL) != NULL);
  CHECK(hsb_outcome_stderr(o, NULL) != NULL);
  hsb_outcome_free(o);
}

/* Options stay usable after setters that failed. */
static void options_after_errors(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK(hsb_run_options_set_isolation(opts, "vm", NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_run_options_set_limit(opts, "memory", "lots", NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_outcome *o = run_ok(sb, ARGV("echo", "still fine"), opts);
  CHECK(o != NULL && stdout_is(o, "still fine\n"));
  hsb_outcome_free(o);
  hsb_run_options_free(opts);
}

static void version(void) {
  const char *v = hsb_version();
  CHECK(v != NULL && strlen(v) >= 5);
}

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(echo_run),     TEST(exit_codes),        TEST(signaled),
        TEST(timeout),      TEST(output_limit),      TEST(program_not_found),
        TEST(microvm_or_unavailable), TEST(policy_errors), TEST(policy_from_text),
        TEST(null_length), TEST(options_after_errors), TEST(version),
        TEST(needs),        TEST(missing_image), TEST(tmpfs_and_cpus),
    };
    rc = run_tests("test_run", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
