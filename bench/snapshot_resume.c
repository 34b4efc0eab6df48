/*
 * snapshot_resume.c: what a KV snapshot saves a resumed conversation. A long first turn is
 * generated and saved; the model is unloaded and loaded again; the second turn is answered
 * (a) after restoring the snapshot and (b) by a fresh model that decodes the whole history.
 * Prints the prompt time of both, the snapshot's size and the save, load and restore times,
 * and whether both answers are the same text (greedy sampling).
 *   cmake --build build --target bench_snapshot_resume && bench/snapshot_resume.sh build
 * usage: bench_snapshot_resume MODEL.gguf SCRATCH_DIR [PROMPT_REPEATS] [THREADS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "headroom.h"

struct text {
    char *data;
    size_t length, capacity;
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct text *t = user_data;
    if (t->length + length + 1 > t->capacity) {
        size_t capacity = (t->length + length + 1) * 2;
        char *bigger = realloc(t->data, capacity);
        if (!bigger) return 1;
        t->data = bigger;
        t->capacity = capacity;
    }
    memcpy(t->data + t->length, piece, length);
    t->length += length;
    t->data[t->length] = '\0';
    return 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void check(int rc, const char *what)
{
    if (rc == HR_OK) return;
    fprintf(stderr, "bench_snapshot_resume: %s: %s: %s\n", what, hr_strerror(rc), hr_last_error());
    exit(1);
}

static hr_model *load(hr_context *ctx, const char *path, int threads, double *seconds)
{
    hr_model_params params = hr_model_default_params();
    params.n_ctx = 2048;
    params.n_threads = threads;
    hr_model *model = NULL;
    double started = now();
    check(hr_model_load(ctx, path, &params, &model), "load");
    if (seconds) *seconds = now() - started;
    return model;
}

static void generate(hr_model *model, const char *prompt, struct text *out, hr_generation_stats *stats)
{
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = 16;
    params.temperature = 0;
    out->length = 0;
    check(hr_generate(model, prompt, &params, collect, out, stats), "generate");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf SCRATCH_DIR [PROMPT_REPEATS] [THREADS]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    int repeats = argc > 3 ? atoi(argv[3]) : 40;
    int threads = argc > 4 ? atoi(argv[4]) : 2;
    static const char sentence[] = "The harbour master wrote down every boat that left and every boat that came back. ";
    size_t prompt_size = (size_t)repeats * strlen(sentence) + 1;
    char *prompt = calloc(1, prompt_size);
    for (int i = 0; i < repeats; i++) strcat(prompt, sentence);

    hr_context_params context_params = hr_context_default_params();
    context_params.monitor = false;
    context_params.cache_dir = argv[2];
    hr_context *ctx = NULL;
    check(hr_context_create(&context_params, &ctx), "context");
    hr_cache_clear_report cleared;
    hr_cache_clear(ctx, &cleared, NULL, NULL);

    struct text first = { 0 }, resumed = { 0 }, scratch = { 0 };
    hr_generation_stats first_stats, resumed_stats, scratch_stats;

    /* the first turn, saved */
    hr_model *model = load(ctx, model_path, threads, NULL);
    generate(model, prompt, &first, &first_stats);
    bool saved = false;
    double started = now();
    check(hr_model_snapshot_save(model, &saved), "save");
    double save_seconds = now() - started;
    hr_model_free(model);
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    check(hr_cache_list(ctx, &entries, &count), "list");
    uint64_t snapshot_bytes = count > 0 ? entries[0].bytes : 0;
    int32_t snapshot_tokens = count > 0 ? entries[0].tokens : 0;
    hr_free(entries);

    size_t follow_size = strlen(prompt) + first.length + 64;
    char *follow = malloc(follow_size);
    snprintf(follow, follow_size, "%s%s\nThe next morning,", prompt, first.data);

    /* (a) resumed from the snapshot */
    double load_seconds = 0;
    model = load(ctx, model_path, threads, &load_seconds);
    started = now();
    check(hr_model_snapshot_restore(model), "restore");
    double restore_seconds = now() - started;
    generate(model, follow, &resumed, &resumed_stats);
    hr_model_free(model);

    /* (b) a fresh model decodes the whole history */
    model = load(ctx, model_path, threads, NULL);
    generate(model, follow, &scratch, &scratch_stats);
    hr_model_free(model);

    uint64_t released = 0;
    hr_cache_release_memory(ctx, &released);
    hr_cache_clear(ctx, &cleared, NULL, NULL);
    hr_context_free(ctx);

    printf("first turn: %d prompt tokens in %.3f s (%.1f tokens/s)\n", first_stats.prompt_tokens,
           first_stats.prompt_seconds, first_stats.prompt_tokens_per_second);
    printf("snapshot: %d tokens, %.1f MiB, saved in %.3f s; page cache dropped after: %.1f MiB\n", snapshot_tokens,
           (double)snapshot_bytes / 1048576, save_seconds, (double)released / 1048576);
    printf("second turn, %d prompt tokens:\n", scratch_stats.prompt_tokens);
    printf("  from scratch: prompt %.3f s\n", scratch_stats.prompt_seconds);
    printf("  resumed:      restore %.3f s + prompt %.3f s (%d tokens reused, %d decoded); load %.3f s either way\n",
           restore_seconds, resumed_stats.prompt_seconds, resumed_stats.cached_tokens,
           resumed_stats.prompt_tokens - resumed_stats.cached_tokens, load_seconds);
    printf("  resumed / scratch (restore + prompt): %.3f\n",
           (restore_seconds + resumed_stats.prompt_seconds) / scratch_stats.prompt_seconds);
    printf("  same answer: %s\n", strcmp(resumed.data ? resumed.data : "", scratch.data ? scratch.data : "") == 0 ? "yes" : "NO");
    free(first.data);
    free(resumed.data);
    free(scratch.data);
    free(follow);
    free(prompt);
    return 0;
}
