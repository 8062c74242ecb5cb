/* hsb_json: runs a workload through the C API and prints its outcome as JSON, the way
 * `hsb run --json` does (the parity test compares the two, and the Python package).
 *
 *   hsb_json [--policy FILE] [--isolation LEVEL] [--workload NAME] [--env KEY=VALUE]...
 *            [--mount HOST:SANDBOX[:ro|:rw]]... [--stdin-text TEXT] [--wall-time DURATION]
 *            [--memory SIZE] -- PROGRAM [ARGS...]
 *
 * Exit status: the workload's shell status, or the error's (125, 126, 127). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsb.h"

static void print_json_string(const char *s) {
  putchar('"');
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
      case '"': fputs("\\\"", stdout); break;
      case '\\': fputs("\\\\", stdout); break;
      case '\n': fputs("\\n", stdout); break;
      case '\t': fputs("\\t", stdout); break;
      case '\r': fputs("\\r", stdout); break;
      default:
        if (*p < 0x20) {
          printf("\\u%04x", *p);
        } else {
          putchar(*p);
        }
    }
  }
  putchar('"');
}

static int fail(hsb_error *err) {
  int code = hsb_error_exit_status(err);
  fprintf(stderr, "hsb_json: %s\n", hsb_error_message(err));
  fputs("{\"error\":{\"kind\":", stdout);
  print_json_string(hsb_error_kind(err));
  fputs(",\"message\":", stdout);
  print_json_string(hsb_error_message(err));
  printf("},\"exit_status\":%d}\n", code);
  hsb_error_free(err);
  return code;
}

static int usage(const char *msg) {
  fprintf(stderr, "hsb_json: %s\nusage: hsb_json [OPTIONS] -- PROGRAM [ARGS...]\n", msg);
  return 125;
}

int main(int argc, char **argv) {
  const char *policy = NULL;
  hsb_run_options *opts = hsb_run_options_new();
  hsb_error *err = NULL;
  hsb_status st = HSB_OK;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i += 2) {
    const char *flag = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
    if (value == NULL) return usage("an option lacks its value");
    if (strcmp(flag, "--policy") == 0) {
      policy = value;
    } else if (strcmp(flag, "--isolation") == 0) {
      st = hsb_run_options_set_isolation(opts, value, &err);
    } else if (strcmp(flag, "--workload") == 0) {
      st = hsb_run_options_set_workload(opts, value, &err);
    } else if (strcmp(flag, "--stdin-text") == 0) {
      st = hsb_run_options_set_stdin(opts, (const uint8_t *)value, strlen(value), &err);
    } else if (strcmp(flag, "--wall-time") == 0) {
      st = hsb_run_options_set_limit(opts, "wall_time", value, &err);
    } else if (strcmp(flag, "--memory") == 0) {
      st = hsb_run_options_set_limit(opts, "memory", value, &err);
    } else if (strcmp(flag, "--env") == 0) {
      char *kv = strdup(value), *eq = strchr(kv, '=');
      if (eq == NULL) {
        free(kv);
        return usage("--env needs KEY=VALUE");
      }
      *eq = 0;
      st = hsb_run_options_set_env(opts, kv, eq + 1, &err);
      free(kv);
    } else if (strcmp(flag, "--mount") == 0) {
      char *spec = strdup(value), *target = strchr(spec, ':'), *mode = NULL;
      if (target) {
        *target++ = 0;
        mode = strchr(target, ':');
        if (mode) *mode++ = 0;
      }
      st = hsb_run_options_add_mount(opts, spec, target, mode && strcmp(mode, "rw") == 0, &err);
      free(spec);
    } else {
      return usage("unknown option");
    }
    if (st != HSB_OK) return fail(err);
  }
  if (i + 1 >= argc) return usage("no program given");

  hsb_sandbox *sb = NULL;
  if (hsb_sandbox_new(policy, &sb, &err) != HSB_OK) return fail(err);
  hsb_outcome *outcome = NULL;
  st = hsb_run(sb, (const char *const *)&argv[i + 1], (size_t)(argc - i - 1), opts, &outcome,
               &err);
  hsb_run_options_free(opts);
  hsb_sandbox_free(sb);
  if (st != HSB_OK) return fail(err);
  puts(hsb_outcome_json(outcome));
  int code = hsb_outcome_shell_status(outcome);
  hsb_outcome_free(outcome);
  return code;
}
