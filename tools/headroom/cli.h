/*
 * cli.h: what the headroom command's subcommands share: argument parsing that says what is
 * wrong with a value, and the log function that shows library warnings on stderr.
 * The CLI uses only include/headroom.h; anything more it needs, the library grows.
 */
#ifndef HEADROOM_CLI_H
#define HEADROOM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "headroom.h"

enum { EXIT_USAGE = 2, EXIT_INTERRUPTED = 130 };

/* Parse `text` as the value of `option`; on failure print why and return false. */
bool cli_parse_int(const char *option, const char *text, long min, long max, long *out);
bool cli_parse_u64(const char *option, const char *text, uint64_t *out);
bool cli_parse_float(const char *option, const char *text, double min, double max, double *out);
/* --load-mode: auto, mmap, copy or mlock. */
bool cli_parse_load_mode(const char *text, enum hr_load_mode *out);

/* A byte count in the unit a person reads fastest ("1.5 GiB"), written into buffer. */
const char *cli_bytes(uint64_t bytes, char *buffer, size_t size);

/* A hr_log_fn that prints "headroom: warning: ..." lines to stderr. */
void cli_log(enum hr_log_level level, const char *message, void *user_data);

int cmd_run(int argc, char **argv);
int cmd_pressure(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_check(int argc, char **argv);
/* A running headroomd's (cmd_server.c, over client.c). */
int cmd_ps(int argc, char **argv);
int cmd_load(int argc, char **argv);
int cmd_unload(int argc, char **argv);
int cmd_top(int argc, char **argv);

#endif
