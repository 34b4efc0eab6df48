/*
 * test_preflight.c: the preflight's accuracy on the real engine. For each generated model (tiny,
 * demo and small presets, F16 and Q8_0) and context (512 and 4096 tokens), hr_preflight's
 * estimate must be within 10% of the resident memory measured after hr_model_load and one
 * decode of a nearly full batch, in a fresh process per case (this program re-executed), so
 * cases do not share a heap. Also: the formula method against the same measurements, the
 * same errors as hr_model_load for bad files, the verdict turning with the floors, JSON.
 * usage: test_preflight HEADROOM-MKMODEL SCRATCH_DIR
 *        test_preflight measure MODEL CTX    (the child: prints RSS before and after)
 * HEADROOM_PREFLIGHT_PRESETS="tiny demo small 1b" changes the presets (bench/preflight_accuracy.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "headroom.h"

static const char *mkmodel;
static const char *scratch;
static char self_path[4096];

/* ---- the child: load, decode, measure --------------------------------------------------------- */

static int ignore_piece(const char *piece, size_t length, void *user_data)
{
    (void)piece;
    (void)length;
    (void)user_data;
    return 0;
}

/* A prompt of about `words` tokens: " the" is one token in the generator's vocabulary. */
static char *prompt_of(int words)
{
    char *prompt = malloc(32 + (size_t)words * 4);
    if (!prompt) return NULL;
    strcpy(prompt, "Once upon a time");
    char *end = prompt + strlen(prompt);
    for (int i = 0; i < words; i++, end += 4) memcpy(end, " the", 5);
    return prompt;
}

static int generate_one(hr_model *model, int words, int *prompt_tokens)
{
    char *prompt = prompt_of(words);
    if (!prompt) return 1;
    hr_generate_params generate = hr_generate_default_params();
    generate.max_tokens = 1;
    generate.temperature = 0;
    hr_generation_stats stats;
    int rc = hr_generate(model, prompt, &generate, ignore_piece, NULL, &stats);
    free(prompt);
    if (rc != HR_OK) {
        fprintf(stderr, "generate: %s\n", hr_last_error());
        return 1;
    }
    *prompt_tokens = stats.prompt_tokens;
    return 0;
}

/* Prints "BEFORE FIRST FULL TOKENS": the RSS before the load; after the load and a decode of one
 * nearly full batch (about 480 tokens: every weight touched); after a prompt that fills the
 * context (the KV cache in use to the end and the attention mask at its widest: the peak the
 * estimate is for); and that prompt's length in tokens. */
static int measure(const char *path, int n_ctx)
{
    hr_context_params context_params = hr_context_default_params();
    context_params.monitor = false;
    hr_context *ctx = NULL;
    if (hr_context_create(&context_params, &ctx) != HR_OK) return 1;
    hr_memory_status before, first, full;
    if (hr_memory_sample(ctx, &before) != HR_OK) return 1;
    hr_model_params params = hr_model_default_params();
    params.n_ctx = n_ctx;
    hr_model *model = NULL;
    if (hr_model_load(ctx, path, &params, &model) != HR_OK) {
        fprintf(stderr, "load %s: %s\n", path, hr_last_error());
        return 1;
    }
    int tokens = 0;
    if (generate_one(model, 470, &tokens) != 0 || hr_memory_sample(ctx, &first) != HR_OK) return 1;
    if (generate_one(model, n_ctx - 24, &tokens) != 0 || hr_memory_sample(ctx, &full) != HR_OK) return 1;
    printf("%llu %llu %llu %d\n", (unsigned long long)before.process_rss_bytes,
           (unsigned long long)first.process_rss_bytes, (unsigned long long)full.process_rss_bytes, tokens);
    hr_model_free(model);
    hr_context_free(ctx);
    return 0;
}

/* ---- the parent ----------------------------------------------------------------------------- */

static void model_path(char *out, size_t size, const char *preset, const char *type)
{
    snprintf(out, size, "%s/%s-%s.gguf", scratch, preset, type);
}

/* Generated once per scratch directory; the generator's output is deterministic. */
static void ensure_model(const char *preset, const char *type)
{
    char path[1024], command[8192];
    model_path(path, sizeof path, preset, type);
    struct stat st;
    if (stat(path, &st) == 0) return;
    snprintf(command, sizeof command, "'%s' --preset %s --type %s --quiet -o '%s'", mkmodel, preset, type, path);
    assert_int_equal(system(command), 0);
}

/* The RSS a load added, after its first batch (*first) and with its context full (returned). */
static uint64_t measured_bytes(const char *path, int n_ctx, uint64_t *first)
{
    char command[8192];
    snprintf(command, sizeof command, "'%s' measure '%s' %d", self_path, path, n_ctx);
    FILE *child = popen(command, "r");
    assert_non_null(child);
    unsigned long long before = 0, after_first = 0, after_full = 0;
    int prompt_tokens = 0;
    int fields = fscanf(child, "%llu %llu %llu %d", &before, &after_first, &after_full, &prompt_tokens);
    assert_int_equal(pclose(child), 0);
    assert_int_equal(fields, 4);
    assert_true(prompt_tokens > n_ctx - 64 && prompt_tokens < n_ctx);   /* the context is full */
    assert_true(after_first > before && after_full >= after_first);
    *first = after_first - before;
    return after_full - before;
}

static uint64_t formula_total(const char *path, int n_ctx)
{
    hr_engine_estimate_params params = {
        .load = { .n_ctx = n_ctx, .n_seq_max = HR_DEFAULT_SLOTS, .n_threads = 1, .n_gpu_layers = -1, .load_mode = HR_LOAD_AUTO },
        .formula_only = true,
    };
    hr_engine_estimate estimate;
    assert_int_equal(hr_engine_llama()->estimate(path, &params, &estimate), HR_OK);
    assert_string_equal(estimate.method, "formula");
    uint64_t total = 0;
    for (size_t i = 0; i < estimate.n_devices; i++) {
        const hr_engine_device_estimate *d = &estimate.devices[i];
        total += d->weights_bytes + d->kv_bytes + d->compute_bytes + d->overhead_bytes;
    }
    return total;
}

static double error_percent(uint64_t estimate, uint64_t measured)
{
    return ((double)estimate - (double)measured) / (double)measured * 100.0;
}

/* The matrix. Each row: measured in a fresh process, estimated by the engine and the formula. */
static void estimate_within_ten_percent_of_measured(void **state)
{
    (void)state;
    char preset_list[256] = "tiny demo small";
    const char *from_environment = getenv("HEADROOM_PREFLIGHT_PRESETS");
    if (from_environment && from_environment[0])
        snprintf(preset_list, sizeof preset_list, "%s", from_environment);
    const char *presets[8];
    size_t n_presets = 0;
    for (char *save = NULL, *name = strtok_r(preset_list, " ", &save); name && n_presets < 8;
         name = strtok_r(NULL, " ", &save))
        presets[n_presets++] = name;
    static const char *const types[] = { "f16", "q8_0" };
    static const int contexts[] = { 512, 4096 };
    hr_context_params context_params = hr_context_default_params();
    context_params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&context_params, &ctx), HR_OK);

    printf("%-6s %-5s %5s %13s %13s %13s %8s %13s %8s\n", "model", "type", "ctx", "first batch", "context full",
           "engine", "error", "formula", "error");
    double worst_engine = 0, worst_formula = 0;
    for (size_t p = 0; p < n_presets; p++)
        for (size_t t = 0; t < 2; t++) {
            ensure_model(presets[p], types[t]);
            char path[1024];
            model_path(path, sizeof path, presets[p], types[t]);
            for (size_t c = 0; c < 2; c++) {
                uint64_t first = 0;
                uint64_t measured = measured_bytes(path, contexts[c], &first);
                hr_preflight_params params = hr_preflight_default_params();
                params.n_ctx = contexts[c];
                hr_preflight_result result;
                assert_int_equal(hr_preflight(ctx, path, &params, &result), HR_OK);
                assert_int_equal(result.n_ctx, contexts[c]);
                uint64_t formula = formula_total(path, contexts[c]);
                double engine_error = error_percent(result.total_bytes, measured);
                double formula_error = error_percent(formula, measured);
                printf("%-6s %-5s %5d %9.1f MiB %9.1f MiB %9.1f MiB %+7.1f%% %9.1f MiB %+7.1f%%  (%s)\n",
                       presets[p], types[t], contexts[c], first / 1048576.0, measured / 1048576.0,
                       result.total_bytes / 1048576.0, engine_error, formula / 1048576.0, formula_error,
                       result.method);
                fflush(stdout);
                if (engine_error < 0 ? -engine_error > worst_engine : engine_error > worst_engine)
                    worst_engine = engine_error < 0 ? -engine_error : engine_error;
                if (formula_error < 0 ? -formula_error > worst_formula : formula_error > worst_formula)
                    worst_formula = formula_error < 0 ? -formula_error : formula_error;
            }
        }
    printf("worst error: engine %.1f%%, formula %.1f%%\n", worst_engine, worst_formula);
    hr_context_free(ctx);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* a sanitizer's shadow memory and quarantine are in the RSS: the matrix still runs every
     * path above under it, but the comparison means nothing there */
    printf("sanitizer build: accuracy not asserted\n");
#else
    assert_true(worst_engine <= 10.0);
    assert_true(worst_formula <= 10.0);
#endif
}

/* A bad file is an error with hr_model_load's code and sentence, not a verdict. */
static void bad_files_fail_as_load_does(void **state)
{
    (void)state;
    hr_context_params context_params = hr_context_default_params();
    context_params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&context_params, &ctx), HR_OK);
    char missing[1024], text[1024], truncated[1024], good[1024];
    snprintf(missing, sizeof missing, "%s/absent.gguf", scratch);
    snprintf(text, sizeof text, "%s/notes.gguf", scratch);
    snprintf(truncated, sizeof truncated, "%s/half.gguf", scratch);
    FILE *f = fopen(text, "w");
    assert_non_null(f);
    fputs("just some notes\n", f);
    fclose(f);
    ensure_model("tiny", "q8_0");
    model_path(good, sizeof good, "tiny", "q8_0");
    struct stat st;
    assert_int_equal(stat(good, &st), 0);
    char command[8192];
    snprintf(command, sizeof command, "head -c %lld '%s' > '%s'", (long long)st.st_size / 2, good, truncated);
    assert_int_equal(system(command), 0);

    const char *paths[] = { missing, text, truncated };
    const int codes[] = { HR_ENOENT, HR_EFORMAT, HR_EFORMAT };
    for (int i = 0; i < 3; i++) {
        hr_preflight_result result;
        assert_int_equal(hr_preflight(ctx, paths[i], NULL, &result), codes[i]);
        char preflight_error[512];
        snprintf(preflight_error, sizeof preflight_error, "%s", hr_last_error());
        hr_model *model = NULL;
        assert_int_equal(hr_model_load(ctx, paths[i], NULL, &model), codes[i]);
        assert_string_equal(preflight_error, hr_last_error());
    }
    /* a bad parameter: an unknown cache type, a context out of range */
    hr_preflight_params params = hr_preflight_default_params();
    params.type_k = "q3_x";
    hr_preflight_result result;
    assert_int_equal(hr_preflight(ctx, good, &params, &result), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "q3_x"));
    params = hr_preflight_default_params();
    params.n_ctx = 8;
    assert_int_equal(hr_preflight(ctx, good, &params, &result), HR_EINVAL);
    hr_context_free(ctx);
}

/* The floors turn the verdict; the KV cache type changes the estimate as a load would. */
static void floors_and_cache_types(void **state)
{
    (void)state;
    hr_context_params context_params = hr_context_default_params();
    context_params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&context_params, &ctx), HR_OK);
    ensure_model("demo", "q8_0");
    char path[1024];
    model_path(path, sizeof path, "demo", "q8_0");

    hr_preflight_result ok, refused, warned, quantised;
    hr_preflight_params params = hr_preflight_default_params();
    params.n_ctx = 4096;
    assert_int_equal(hr_preflight(ctx, path, &params, &ok), HR_OK);
    assert_int_equal(ok.verdict, HR_VERDICT_OK);   /* 60 MiB on a machine that runs the tests */
    assert_true(ok.n_devices >= 1);
    assert_string_equal(ok.devices[0].name, "CPU");
    assert_true(ok.devices[0].weights_bytes > 20000000 && ok.devices[0].kv_bytes > 0);
    assert_int_equal(ok.missing_bytes, 0);
    assert_string_equal(ok.guidance, "");

    /* a min_free larger than what is available: refused, and the bytes missing say by how much */
    params.min_free_bytes = ok.available_bytes + ((uint64_t)1 << 30);
    assert_int_equal(hr_preflight(ctx, path, &params, &refused), HR_OK);
    assert_int_equal(refused.verdict, HR_VERDICT_REFUSE);
    assert_true(refused.missing_bytes > 0);
    assert_true(refused.guidance[0] != '\0');

    /* a recommended total above the scope's size: a warning */
    params = hr_preflight_default_params();
    params.n_ctx = 4096;
    params.recommended_total_bytes = (uint64_t)1 << 50;
    assert_int_equal(hr_preflight(ctx, path, &params, &warned), HR_OK);
    assert_int_equal(warned.verdict, HR_VERDICT_WARN);

    /* a q8_0 KV cache is 34/64 of an f16 one */
    params = hr_preflight_default_params();
    params.n_ctx = 4096;
    params.type_k = "q8_0";
    params.type_v = "q8_0";
    assert_int_equal(hr_preflight(ctx, path, &params, &quantised), HR_OK);
    assert_int_equal(quantised.devices[0].kv_bytes, ok.devices[0].kv_bytes / 64 * 34);

    /* and a load with those types works */
    hr_model_params model_params = hr_model_default_params();
    model_params.n_ctx = 1024;
    model_params.type_k = "q8_0";
    model_params.type_v = "q8_0";
    hr_model *model = NULL;
    assert_int_equal(hr_model_load(ctx, path, &model_params, &model), HR_OK);
    hr_model_free(model);
    model_params.type_v = "nonsense";
    assert_int_equal(hr_model_load(ctx, path, &model_params, &model), HR_EINVAL);

    char *json = hr_preflight_json(&ok);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"total_bytes\":"));
    assert_non_null(strstr(json, "\"devices\":[{\"name\":\"CPU\""));
    assert_non_null(strstr(json, "\"verdict\":\"ok\""));
    hr_free(json);
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "measure") == 0) return measure(argv[2], atoi(argv[3]));
    if (argc != 3) {
        fprintf(stderr, "usage: test_preflight HEADROOM-MKMODEL SCRATCH_DIR\n");
        return 2;
    }
    mkmodel = argv[1];
    scratch = argv[2];
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
    if (n <= 0) return 2;
    self_path[n] = '\0';
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_files_fail_as_load_does),
        cmocka_unit_test(floors_and_cache_types),
        cmocka_unit_test(estimate_within_ten_percent_of_measured),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
