/*
 * cmd_check.c: `headroom check MODEL`: will the model fit? The preflight's estimate per device,
 * the memory available in the scope that binds, the verdict with its reason and guidance, as
 * text or JSON. Exit status 0 ok, 1 warn, 2 refuse; a bad file or argument is an error (3 and
 * 64 here, since 1 and 2 are verdicts). Reads only through headroom.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* 0, 1, 2 are the verdicts; errors need codes of their own (sysexits.h's EX_USAGE for usage). */
enum { EXIT_CHECK_ERROR = 3, EXIT_CHECK_USAGE = 64 };

static void usage(FILE *out)
{
    fprintf(out,
            "usage: headroom check MODEL [options]\n"
            "\n"
            "Estimates the memory loading MODEL (a GGUF file) would take on each device, compares it\n"
            "with the memory available now in the scope that binds (the host or a container's limit;\n"
            "each GPU's free memory), and says whether it fits, with what to do when it does not.\n"
            "\n"
            "options:\n"
            "  -c, --ctx N            context window in tokens (default: the model's, at most 4096)\n"
            "  -b, --batch N          tokens per prompt decode step (default 512)\n"
            "  -g, --gpu-layers N     layers to place on a GPU; -1 all (default -1)\n"
            "      --type-k T         K cache type: f16 (default), q8_0, q4_0, f32, ...\n"
            "      --type-v T         V cache type\n"
            "      --load-mode M      auto, mmap, copy or mlock (default auto)\n"
            "      --min-total BYTES  refuse below this scope size (default: the model's needs)\n"
            "      --recommended-total BYTES  warn below this scope size\n"
            "      --min-free BYTES   memory that must stay available after the load\n"
            "      --json             one JSON object (total_bytes, devices[], verdict, ...)\n"
            "  -v, --verbose          show the library's and the engine's log\n"
            "  -h, --help             this help\n"
            "\n"
            "Exit status: 0 ok, 1 warn, 2 refuse, 3 an error (a missing or corrupt file), 64 a usage error.\n");
}

static void print_report(const char *path, const hr_preflight_result *r)
{
    char w[32], k[32], c[32], o[32], t[32], a[32];
    printf("model:      %s\n", path);
    printf("context:    %d tokens (trained for %d), %d layers, %s of weights; estimated by %s\n", r->n_ctx,
           r->n_ctx_train, r->n_layer, cli_bytes(r->weight_bytes, w, sizeof w),
           strcmp(r->method, "engine") == 0 ? "llama.cpp's own dry run" : "formula");
    printf("\n%-32s %10s %10s %10s %10s %10s %10s\n", "device", "weights", "kv cache", "compute", "overhead",
           "total", "available");
    for (size_t i = 0; i < r->n_devices; i++) {
        const hr_device_estimate *d = &r->devices[i];
        printf("%-32.32s %10s %10s %10s %10s %10s %10s\n", d->name, cli_bytes(d->weights_bytes, w, sizeof w),
               cli_bytes(d->kv_bytes, k, sizeof k), cli_bytes(d->compute_bytes, c, sizeof c),
               cli_bytes(d->overhead_bytes, o, sizeof o), cli_bytes(d->total_bytes, t, sizeof t),
               d->available_bytes ? cli_bytes(d->available_bytes, a, sizeof a) : "?");
    }
    printf("%-32s %10s %10s %10s %10s %10s\n", "all", "", "", "", "", cli_bytes(r->total_bytes, t, sizeof t));
    printf("\nverdict:    %s\n", hr_verdict_name(r->verdict));
    printf("reason:     %s\n", r->reason);
    printf("binds:      %s\n", r->binding_scope);
    if (r->missing_bytes) printf("missing:    %s\n", cli_bytes(r->missing_bytes, a, sizeof a));
    if (r->max_ctx_that_fits > 0) printf("largest context that fits: %d tokens\n", r->max_ctx_that_fits);
    else printf("largest context that fits: none\n");
    if (r->guidance[0]) printf("guidance:   %s\n", r->guidance);
}

int cmd_check(int argc, char **argv)
{
    static const struct option options[] = {
        { "ctx", required_argument, NULL, 'c' },
        { "batch", required_argument, NULL, 'b' },
        { "gpu-layers", required_argument, NULL, 'g' },
        { "type-k", required_argument, NULL, 'K' },
        { "type-v", required_argument, NULL, 'V' },
        { "load-mode", required_argument, NULL, 'L' },
        { "min-total", required_argument, NULL, 'T' },
        { "recommended-total", required_argument, NULL, 'R' },
        { "min-free", required_argument, NULL, 'F' },
        { "json", no_argument, NULL, 'J' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    hr_preflight_params params = hr_preflight_default_params();
    bool json = false, verbose = false;
    long number;
    int option;
    while ((option = getopt_long(argc, argv, "c:b:g:vh", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            if (!cli_parse_int("--ctx", optarg, 16, 1 << 20, &number)) return EXIT_CHECK_USAGE;
            params.n_ctx = (int32_t)number;
            break;
        case 'b':
            if (!cli_parse_int("--batch", optarg, 1, 1 << 20, &number)) return EXIT_CHECK_USAGE;
            params.n_batch = (int32_t)number;
            break;
        case 'g':
            if (!cli_parse_int("--gpu-layers", optarg, -1, 1 << 20, &number)) return EXIT_CHECK_USAGE;
            params.n_gpu_layers = (int32_t)number;
            break;
        case 'K': params.type_k = optarg; break;
        case 'V': params.type_v = optarg; break;
        case 'L':
            if (!cli_parse_load_mode(optarg, &params.load_mode)) return EXIT_CHECK_USAGE;
            break;
        case 'T':
            if (!cli_parse_u64("--min-total", optarg, &params.min_total_bytes)) return EXIT_CHECK_USAGE;
            break;
        case 'R':
            if (!cli_parse_u64("--recommended-total", optarg, &params.recommended_total_bytes)) return EXIT_CHECK_USAGE;
            break;
        case 'F':
            if (!cli_parse_u64("--min-free", optarg, &params.min_free_bytes)) return EXIT_CHECK_USAGE;
            break;
        case 'J': json = true; break;
        case 'v': verbose = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_CHECK_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "headroom check: no model given\n");
        usage(stderr);
        return EXIT_CHECK_USAGE;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "headroom check: too many arguments: give one model\n");
        return EXIT_CHECK_USAGE;
    }
    const char *model_path = argv[optind];

    hr_context_params context_params = hr_context_default_params();
    context_params.log_fn = verbose ? cli_log : NULL;
    context_params.log_level = HR_LOG_INFO;
    context_params.monitor = false;   /* one look at memory, no watching */
    hr_context *ctx = NULL;
    if (hr_context_create(&context_params, &ctx) != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        return EXIT_CHECK_ERROR;
    }
    hr_preflight_result result;
    int rc = hr_preflight(ctx, model_path, &params, &result);
    hr_context_free(ctx);
    if (rc != HR_OK) {
        fprintf(stderr, "headroom: error: %s\n", hr_last_error());
        return rc == HR_EINVAL ? EXIT_CHECK_USAGE : EXIT_CHECK_ERROR;
    }
    if (json) {
        char *text = hr_preflight_json(&result);
        if (!text) {
            fprintf(stderr, "headroom: error: out of memory writing JSON\n");
            return EXIT_CHECK_ERROR;
        }
        puts(text);
        hr_free(text);
    } else {
        print_report(model_path, &result);
    }
    return (int)result.verdict;
}
