/* The embedded default policy honours trust labels through the C API as it does in
 * `hsb`: trust=untrusted and any tenant label get the micro-VM, or (without KVM) a
 * refusal that says so; unlabeled runs get the container. */
#include "check.h"

static hsb_sandbox *sb;

static void unlabeled_in_the_container(void) {
  hsb_outcome *o = run_ok(sb, ARGV("true"), NULL);
  if (!o) return;
  CHECK_STR(hsb_outcome_isolation(o), "container");
  CHECK_STR(hsb_outcome_profile(o), "default");
  hsb_outcome_free(o);
}

static void labelled_in_the_micro_vm_or_refused(void) {
  const char *labels[][2] = {{"trust", "untrusted"}, {"tenant", "acme"}};
  for (size_t i = 0; i < 2; i++) {
    hsb_run_options *opts = hsb_run_options_new();
    CHECK(hsb_run_options_set_label(opts, labels[i][0], labels[i][1], NULL) == HSB_OK);
    hsb_outcome *o = NULL;
    hsb_error *err = NULL;
    hsb_status st = hsb_run(sb, ARGV("/usr/bin/busybox", "true"), opts, &o, &err);
    if (st == HSB_OK) {
      CHECK_STR(hsb_outcome_isolation(o), "microvm");
      CHECK_STR(hsb_outcome_profile(o), "labelled");
      hsb_outcome_free(o);
    } else {
      /* Never a container: the micro-VM is missing here, and the error says so. */
      CHECK(st == HSB_ERR_UNAVAILABLE);
      CHECK_CONTAINS(hsb_error_message(err), "microvm isolation is not available");
      CHECK(hsb_error_exit_status(err) == 125);
      CHECK_FEATURE_MISSING("KVM", hsb_error_message(err));
      hsb_error_free(err);
    }
    /* Asking for a container does not get around the label. */
    CHECK(hsb_run_options_set_isolation(opts, "container", NULL) == HSB_OK);
    o = NULL;
    err = NULL;
    CHECK(hsb_run(sb, ARGV("true"), opts, &o, &err) == HSB_ERR_POLICY);
    CHECK(o == NULL);
    CHECK_CONTAINS(hsb_error_message(err), "requires microvm");
    hsb_error_free(err);
    hsb_run_options_free(opts);
  }
}

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {
        TEST(unlabeled_in_the_container),
        TEST(labelled_in_the_micro_vm_or_refused),
    };
    rc = run_tests("test_labels", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
