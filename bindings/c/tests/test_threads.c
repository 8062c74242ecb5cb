/* One sandbox shared by several threads, each running workloads at the same time. */
#include <pthread.h>

#include "check.h"

#define THREADS 4
#define RUNS 3

static hsb_sandbox *sb;

struct job {
  int id;
  int failures;
};

static int count_chunks(hsb_stream stream, const uint8_t *data, size_t len, void *user_data) {
  (void)stream;
  (void)data;
  (void)len;
  (*(int *)user_data)++;
  return 0;
}

static void *worker(void *arg) {
  struct job *job = arg;
  char id[16], want[64];
  snprintf(id, sizeof id, "t%d", job->id);
  for (int i = 0; i < RUNS; i++) {
    char n[16];
    snprintf(n, sizeof n, "%d", i);
    snprintf(want, sizeof want, "%s %s\n", id, n);
    const char *argv[] = {"sh", "-c", "sleep 0.1; echo \"$0 $1\"", id, n};
    hsb_outcome *o = NULL;
    hsb_error *err = NULL;
    hsb_status st;
    int chunks = 0;
    if (job->id % 2 == 0) {
      st = hsb_run(sb, argv, 5, NULL, &o, &err);
    } else {
      st = hsb_run_streaming(sb, argv, 5, NULL, count_chunks, &chunks, &o, &err);
    }
    if (st != HSB_OK) {
      fprintf(stderr, "  thread %d: %s\n", job->id, hsb_error_message(err));
      job->failures++;
    } else {
      size_t len = 0;
      const uint8_t *p = hsb_outcome_stdout(o, &len);
      if (len != strlen(want) || memcmp(p, want, len) != 0) job->failures++;
      if (job->id % 2 == 1 && chunks < 1) job->failures++;
    }
    hsb_outcome_free(o);
    hsb_error_free(err);
  }
  return NULL;
}

static void shared_sandbox(void) {
  pthread_t threads[THREADS];
  struct job jobs[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (struct job){.id = i, .failures = 0};
    CHECK(pthread_create(&threads[i], NULL, worker, &jobs[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(jobs[i].failures == 0);
  }
}

/* Errors are built on each thread independently too. */
static void *bad_worker(void *arg) {
  int *failures = arg;
  for (int i = 0; i < 20; i++) {
    hsb_outcome *o = NULL;
    hsb_error *err = NULL;
    if (hsb_run(sb, NULL, 0, NULL, &o, &err) != HSB_ERR_INVALID_ARGUMENT) (*failures)++;
    if (err == NULL || strstr(hsb_error_message(err), "argv") == NULL) (*failures)++;
    hsb_error_free(err);
  }
  return NULL;
}

static void concurrent_errors(void) {
  pthread_t threads[THREADS];
  int failures[THREADS] = {0};
  for (int i = 0; i < THREADS; i++) {
    CHECK(pthread_create(&threads[i], NULL, bad_worker, &failures[i]) == 0);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    CHECK(failures[i] == 0);
  }
}

int main(void) {
  sb = new_sandbox();
  int rc;
  do {
    const struct test_case tests[] = {TEST(shared_sandbox), TEST(concurrent_errors)};
    rc = run_tests("test_threads", tests, sizeof tests / sizeof tests[0]);
  } while (0);
  hsb_sandbox_free(sb);
  return rc;
}
