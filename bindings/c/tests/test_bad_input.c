/* Bad input gets an error status and an error object, never a crash. No workload runs
 * here, so that this suite also runs under valgrind (whose 3.19 does not know the new
 * mount API the container backend needs). */
#include "check.h"

static hsb_sandbox *sb;

/* Runs `call` (an expression using `&o` and `&err`) and checks it failed with
 * HSB_ERR_INVALID_ARGUMENT and a message containing `words`. */
#define CHECK_INVALID(words, call)                                                   \
  do {                                                                               \
    hsb_error *err = NULL;                                                           \
    hsb_status st_ = (call);                                                         \
    CHECK(st_ == HSB_ERR_INVALID_ARGUMENT);                                          \
    CHECK(err != NULL);                                                              \
    CHECK(hsb_error_status(err) == HSB_ERR_INVALID_ARGUMENT);                        \
    CHECK_STR(hsb_error_kind(err), "invalid_argument");                              \
    CHECK_CONTAINS(hsb_error_message(err), words);                                   \
    CHECK(hsb_error_exit_status(err) == 125);                                        \
    hsb_error_free(err);                                                             \
  } while (0)

static void run_arguments(void) {
  hsb_outcome *o = NULL;
  const char *argv[] = {"echo", "hi"};
  CHECK_INVALID("sandbox is NULL", hsb_run(NULL, argv, 2, NULL, &o, &err));
  CHECK(o == NULL);
  CHECK_INVALID("argv is NULL", hsb_run(sb, NULL, 2, NULL, &o, &err));
  CHECK_INVALID("argc is 0", hsb_run(sb, argv, 0, NULL, &o, &err));
  CHECK_INVALID("out is NULL", hsb_run(sb, argv, 2, NULL, NULL, &err));
  const char *with_null[] = {"echo", NULL};
  CHECK_INVALID("argv[1] is NULL", hsb_run(sb, with_null, 2, NULL, &o, &err));
  const char *not_utf8[] = {"echo", "caf\xe9"};
  CHECK_INVALID("argv[1] is not valid UTF-8", hsb_run(sb, not_utf8, 2, NULL, &o, &err));
  const char *empty[] = {""};
  CHECK_INVALID("argv[0]", hsb_run(sb, empty, 1, NULL, &o, &err));
  CHECK_INVALID("sandbox is NULL",
                hsb_run_streaming(NULL, argv, 2, NULL, NULL, NULL, &o, &err));
  CHECK_INVALID("argc is 0", hsb_run_streaming(sb, argv, 0, NULL, NULL, NULL, &o, &err));
  CHECK(o == NULL);
  /* err may be NULL: the status alone. */
  CHECK(hsb_run(sb, NULL, 0, NULL, &o, NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_run(NULL, NULL, 0, NULL, NULL, NULL) == HSB_ERR_INVALID_ARGUMENT);
}

static void sandbox_arguments(void) {
  hsb_sandbox *other = NULL;
  CHECK_INVALID("out is NULL", hsb_sandbox_new(NULL, NULL, &err));
  CHECK_INVALID("policy_path is not valid UTF-8", hsb_sandbox_new("/tmp/\xff.toml", &other, &err));
  CHECK(other == NULL);
  CHECK_INVALID("toml is NULL", hsb_sandbox_new_from_toml(NULL, NULL, &other, &err));
  CHECK_INVALID("origin is not valid UTF-8",
                hsb_sandbox_new_from_toml("version = 1\n", "\xc3(", &other, &err));
}

static void option_arguments(void) {
  hsb_run_options *opts = hsb_run_options_new();
  CHECK_INVALID("options is NULL", hsb_run_options_set_isolation(NULL, "container", &err));
  CHECK_INVALID("container, microvm or auto", hsb_run_options_set_isolation(opts, "vm", &err));
  CHECK_INVALID("isolation is not valid UTF-8",
                hsb_run_options_set_isolation(opts, "\xff", &err));
  CHECK_INVALID("env key is NULL", hsb_run_options_set_env(opts, NULL, "v", &err));
  CHECK_INVALID("env value is NULL", hsb_run_options_set_env(opts, "K", NULL, &err));
  CHECK_INVALID("without `=`", hsb_run_options_set_env(opts, "A=B", "v", &err));
  CHECK_INVALID("non-empty", hsb_run_options_set_env(opts, "", "v", &err));
  CHECK_INVALID("env value is not valid UTF-8", hsb_run_options_set_env(opts, "K", "\x80", &err));
  CHECK_INVALID("label key is NULL", hsb_run_options_set_label(opts, NULL, "v", &err));
  CHECK_INVALID("need is NULL", hsb_run_options_add_need(opts, NULL, &err));
  CHECK_INVALID("unknown need `gpu`", hsb_run_options_add_need(opts, "gpu", &err));
  CHECK_INVALID("need is not valid UTF-8", hsb_run_options_add_need(opts, "\xfe", &err));
  CHECK_INVALID("image: empty name", hsb_run_options_set_image(opts, "", &err));
  CHECK_INVALID("options is NULL", hsb_run_options_set_image(NULL, "busybox", &err));
  CHECK_INVALID("stdin data is NULL", hsb_run_options_set_stdin(opts, NULL, 5, &err));
  CHECK_INVALID("mount host path is NULL", hsb_run_options_add_mount(opts, NULL, "/x", 0, &err));
  CHECK_INVALID("must not be empty", hsb_run_options_add_mount(opts, "/tmp", "", 0, &err));
  CHECK_INVALID("none, loopback or egress", hsb_run_options_set_network(opts, "wifi", &err));
  CHECK_INVALID("unknown unit", hsb_run_options_set_limit(opts, "memory", "12 parsecs", &err));
  CHECK_INVALID("limit wall_time", hsb_run_options_set_limit(opts, "wall_time", "soon", &err));
  CHECK_INVALID("limit pids", hsb_run_options_set_limit(opts, "pids", "-1", &err));
  CHECK_INVALID("unknown limit `speed`", hsb_run_options_set_limit(opts, "speed", "1", &err));
  CHECK_INVALID("limit name is NULL", hsb_run_options_set_limit(opts, NULL, "1", &err));
  CHECK_INVALID("limit cpus", hsb_run_options_set_limit(opts, "cpus", "lots", &err));
  CHECK_INVALID("limit cpus", hsb_run_options_set_limit(opts, "cpus", "0", &err));
  CHECK_INVALID("tmpfs is NULL", hsb_run_options_add_tmpfs(opts, NULL, &err));
  CHECK_INVALID("mode", hsb_run_options_add_tmpfs(opts, "/x:mode=99999", &err));
  CHECK_INVALID("allow rule `*bad*.com`", hsb_run_options_add_allow(opts, "*bad*.com", &err));
  CHECK_INVALID("allow rule is NULL", hsb_run_options_add_allow(opts, NULL, &err));
  CHECK_INVALID("deny rule `a.com:99999`", hsb_run_options_add_deny(opts, "a.com:99999", &err));
  CHECK_INVALID("port 0 is no port", hsb_run_options_add_expose(opts, 0, &err));
  CHECK_INVALID("no `@`", hsb_run_options_add_secret(opts, "T=ENV", &err));
  CHECK_INVALID("secret is NULL", hsb_run_options_add_secret(opts, NULL, &err));
  CHECK_INVALID("options is NULL", hsb_run_options_add_expose(NULL, 80, &err));
  CHECK_INVALID("options is NULL", hsb_run_options_set_memory(NULL, 1, &err));
  CHECK_INVALID("options is NULL", hsb_run_options_set_wall_time_ms(NULL, 1, &err));
  CHECK(hsb_run_options_set_pids(NULL, 1, NULL) == HSB_ERR_INVALID_ARGUMENT);
  hsb_run_options_free(opts);
}

/* On success *err is set to NULL, whatever it held. */
static void err_cleared_on_success(void) {
  hsb_run_options *opts = hsb_run_options_new();
  hsb_error *err = (hsb_error *)&opts;
  CHECK(hsb_run_options_set_cwd(opts, "/tmp", &err) == HSB_OK);
  CHECK(err == NULL);
  hsb_run_options_free(opts);
}

static void null_accessors(void) {
  size_t len = 7;
  CHECK(hsb_outcome_exit_code(NULL) == -1);
  CHECK(hsb_outcome_signal(NULL) == -1);
  CHECK(hsb_outcome_termination(NULL) == NULL);
  CHECK(hsb_outcome_isolation(NULL) == NULL);
  CHECK(hsb_outcome_stdout(NULL, &len) == NULL && len == 0);
  len = 7;
  CHECK(hsb_outcome_stderr(NULL, &len) == NULL && len == 0);
  CHECK(hsb_outcome_wall_time_ms(NULL) < 0);
  CHECK(hsb_outcome_cpu_time_ms(NULL) < 0);
  CHECK(hsb_outcome_peak_memory(NULL) == 0);
  CHECK(hsb_outcome_shell_status(NULL) == -1);
  CHECK(hsb_outcome_profile(NULL) == NULL);
  CHECK(hsb_outcome_reason_count(NULL) == 0);
  CHECK(hsb_outcome_reason(NULL, 0) == NULL);
  CHECK(hsb_outcome_json(NULL) == NULL);
  CHECK(hsb_outcome_enforcement_json(NULL) == NULL);
  CHECK(hsb_outcome_decision_json(NULL) == NULL);
  CHECK(hsb_error_message(NULL) == NULL);
  CHECK(hsb_error_kind(NULL) == NULL);
  CHECK(hsb_error_status(NULL) == HSB_ERR_INVALID_ARGUMENT);
  CHECK(hsb_error_exit_status(NULL) == 125);
  hsb_outcome_free(NULL);
  hsb_error_free(NULL);
  hsb_sandbox_free(NULL);
  hsb_run_options_free(NULL);
}

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(run_arguments),          TEST(sandbox_arguments), TEST(option_arguments),
        TEST(err_cleared_on_success), TEST(null_accessors),
    };
    rc = run_tests("test_bad_input", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
