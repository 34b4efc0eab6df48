/*
 * main.c: the headroom command: dispatches to one cmd_<name>.c per subcommand.
 * Thin by design: every capability lives in libheadroom, reached through headroom.h.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroom <command> [options]\n"
            "\n"
            "commands:\n"
            "  run MODEL [PROMPT]   load a GGUF model and stream a generation to stdout\n"
            "  check MODEL          will the model fit? estimate per device, verdict, guidance\n"
            "  pressure             memory pressure level, reasons and the watermark\n"
            "  cache ls|clear       headroom's KV snapshots: list them, or remove them\n"
            "\n"
            "with a running headroomd (HEADROOM_HOST, default http://127.0.0.1:11435):\n"
            "  ps                   the models it holds in memory\n"
            "  load MODEL           load a model (--keep-alive D)\n"
            "  unload MODEL         unload a model\n"
            "  top                  level, memory, models and generations, live (q quits)\n"
            "\n"
            "  version              print the version\n"
            "  help                 print this help\n"
            "\n"
            "'headroom <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *command = argv[1];
    if (strcmp(command, "run") == 0) return cmd_run(argc - 1, argv + 1);
    if (strcmp(command, "check") == 0) return cmd_check(argc - 1, argv + 1);
    if (strcmp(command, "pressure") == 0) return cmd_pressure(argc - 1, argv + 1);
    if (strcmp(command, "cache") == 0) return cmd_cache(argc - 1, argv + 1);
    if (strcmp(command, "ps") == 0) return cmd_ps(argc - 1, argv + 1);
    if (strcmp(command, "load") == 0) return cmd_load(argc - 1, argv + 1);
    if (strcmp(command, "unload") == 0) return cmd_unload(argc - 1, argv + 1);
    if (strcmp(command, "top") == 0) return cmd_top(argc - 1, argv + 1);
    if (strcmp(command, "version") == 0 || strcmp(command, "--version") == 0) {
        printf("headroom %s\n", hr_version());
        return 0;
    }
    if (strcmp(command, "help") == 0 || strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "headroom: unknown command '%s'\n", command);
    usage(stderr);
    return EXIT_USAGE;
}
