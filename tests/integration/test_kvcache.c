/*
 * test_kvcache.c: prompt-prefix reuse and KV snapshots with the real llama.cpp engine on a model
 * made by headroom-mkmodel: a restored conversation gives the same next tokens as one that never
 * stopped (and as one decoded from scratch), snapshots are kept to their model and window, the
 * budget evicts the least recently used, clearing touches only headroom's files and goes on past
 * a permission error, a full disk leaves nothing behind, and a damaged or foreign snapshot is
 * refused with a sentence while the next generation decodes its prompt afresh to the same text.
 * usage: test_kvcache [--only=CASE,... | --except=CASE,...] TINY_MODEL.gguf SCRATCH_DIR
 *        test_kvcache --make-snapshots MODEL.gguf CACHE_DIR COUNT   (a fixture for test_cli_cache.sh)
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "headroom.h"
#include "runtime/model.h"
#include "runtime/snapshot_file.h"
#include "skip.h"

static const char *tiny_model;
static const char *scratch;

struct text {
    char data[8192];
    size_t length;
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct text *t = user_data;
    if (t->length + length < sizeof t->data) {
        memcpy(t->data + t->length, piece, length);
        t->length += length;
        t->data[t->length] = '\0';
    }
    return 0;
}

/* A fresh cache directory for one test: scratch/<name> emptied (rm -rf) first. */
static void fresh_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", scratch, name);
    char command[1200];
    snprintf(command, sizeof command, "rm -rf '%s' && mkdir -p '%s'", out, out);
    assert_int_equal(system(command), 0);
}

static hr_context *new_context(const char *cache_dir, uint64_t budget)
{
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.cache_dir = cache_dir;
    params.cache_budget_bytes = budget;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    return ctx;
}

static hr_model *load(hr_context *ctx, int32_t n_ctx)
{
    hr_model_params params = hr_model_default_params();
    params.n_ctx = n_ctx;
    params.n_threads = 2;
    hr_model *model = NULL;
    int rc = hr_model_load(ctx, tiny_model, &params, &model);
    if (rc != HR_OK) fail_msg("loading %s: %s: %s", tiny_model, hr_strerror(rc), hr_last_error());
    return model;
}

static void generate(hr_model *model, const char *prompt, int max_tokens, struct text *out, hr_generation_stats *stats)
{
    hr_generate_params params = hr_generate_default_params();
    params.max_tokens = max_tokens;
    params.temperature = 0;   /* greedy: the same logits always give the same tokens */
    memset(out, 0, sizeof *out);
    int rc = hr_generate(model, prompt, &params, collect, out, stats);
    if (rc != HR_OK) fail_msg("generate: %s: %s", hr_strerror(rc), hr_last_error());
}

static size_t count_entries(const char *directory)
{
    DIR *dir = opendir(directory);
    if (!dir) return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(dir);
    return n;
}

static const char *const PROMPT = "Once upon a time, in a small village by the sea, there lived an old fisherman who";
static const char *const FOLLOW_UP = "\nAnd then the fisherman said:";

/* (a) P -> A; then P+A+Q -> B: uninterrupted, from an empty window, and restored from a
 * snapshot after the model was unloaded; all three B are the same. */
static void restored_conversation_continues_the_same(void **state)
{
    (void)state;
    char cache[1024];
    fresh_dir(cache, sizeof cache, "same");
    hr_context *ctx = new_context(cache, 0);
    static struct text a, b_uninterrupted, b_scratch, b_restored, a_again;
    static char follow[16384];
    hr_generation_stats stats, uninterrupted_stats, restored_stats;

    /* uninterrupted: one model, two turns */
    hr_model *model = load(ctx, 512);
    generate(model, PROMPT, 12, &a, &stats);
    assert_int_equal(stats.cached_tokens, 0);
    int32_t first_window = stats.prompt_tokens + stats.generated_tokens - 1;   /* the last sampled is not decoded */
    snprintf(follow, sizeof follow, "%s%s%s", PROMPT, a.data, FOLLOW_UP);
    generate(model, follow, 16, &b_uninterrupted, &uninterrupted_stats);
    assert_true(uninterrupted_stats.cached_tokens > 0);
    hr_model_free(model);

    /* from scratch: a model that never saw the first turn */
    model = load(ctx, 512);
    generate(model, follow, 16, &b_scratch, &stats);
    assert_int_equal(stats.cached_tokens, 0);
    assert_string_equal(b_scratch.data, b_uninterrupted.data);
    hr_model_free(model);

    /* restored: first turn, snapshot, unload, load, restore, second turn */
    model = load(ctx, 512);
    generate(model, PROMPT, 12, &a_again, &stats);
    assert_string_equal(a_again.data, a.data);
    bool saved = false;
    int rc = hr_model_snapshot_save(model, &saved);
    if (rc != HR_OK) fail_msg("save: %s", hr_last_error());
    assert_true(saved);
    /* nothing new: not saved twice */
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    assert_false(saved);
    hr_model_free(model);

    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
    assert_int_equal(count, 1);
    assert_int_equal(entries[0].tokens, first_window);
    assert_int_equal(entries[0].n_ctx, 512);
    char name[256];
    const char *base = strrchr(tiny_model, '/');
    snprintf(name, sizeof name, "%s", base ? base + 1 : tiny_model);
    if (strlen(name) > 5) name[strlen(name) - 5] = '\0';   /* the file name without .gguf */
    assert_string_equal(entries[0].model, name);
    assert_true(entries[0].bytes > 1024);
    assert_true(entries[0].last_used_at >= entries[0].created_at);
    hr_free(entries);

    model = load(ctx, 512);
    rc = hr_model_snapshot_restore(model);
    if (rc != HR_OK) fail_msg("restore: %s", hr_last_error());
    assert_int_equal(model->slots[0].count, first_window);
    /* What can be reused: the snapshot's tokens that the new prompt's tokens begin with. A
     * tokenizer may read the answer's text back as other tokens near its end (the demo model's
     * does, by two tokens; the tiny model's reads it back whole). */
    static hr_token follow_tokens[4096];
    int32_t follow_count = model->engine->tokenize(model->engine_model, follow, strlen(follow), true,
                                                   follow_tokens, 4096);
    assert_true(follow_count > first_window);
    int32_t common = 0;
    while (common < first_window && model->slots[0].tokens[common] == follow_tokens[common]) common++;
    assert_true(common > first_window - 12);   /* at least the whole first prompt */
    generate(model, follow, 16, &b_restored, &restored_stats);
    assert_string_equal(b_restored.data, b_uninterrupted.data);
    assert_int_equal(restored_stats.cached_tokens, common);
    print_message("restored %d tokens, reused %d of them for a prompt of %d\n", first_window, common,
                  restored_stats.prompt_tokens);
    assert_int_equal(restored_stats.cached_tokens, uninterrupted_stats.cached_tokens);
    assert_int_equal(restored_stats.prompt_tokens, uninterrupted_stats.prompt_tokens);

    /* the same prompt again: only its last token is decoded */
    generate(model, follow, 16, &b_restored, &restored_stats);
    assert_string_equal(b_restored.data, b_uninterrupted.data);
    assert_int_equal(restored_stats.cached_tokens, restored_stats.prompt_tokens - 1);
    hr_model_free(model);

    /* the page cache of the snapshot just written and read is dropped, and measured; the
     * second time only the page that reading its trailer brought back in is left to drop */
    uint64_t released = 0, again = 0;
    assert_int_equal(hr_cache_release_memory(ctx, &released), HR_OK);
    assert_true(released > 0);
    assert_int_equal(hr_cache_release_memory(ctx, &again), HR_OK);
    assert_true(again < released && again <= 8192);
    hr_context_free(ctx);
}

/* (b) a snapshot is restored only into the same file and window */
static void snapshot_is_kept_to_its_model_and_window(void **state)
{
    (void)state;
    char cache[1024];
    fresh_dir(cache, sizeof cache, "identity");
    hr_context *ctx = new_context(cache, 0);
    hr_model *model = load(ctx, 256);
    assert_int_equal(hr_model_snapshot_restore(model), HR_ENOENT);   /* none yet */
    struct text out;
    generate(model, PROMPT, 4, &out, NULL);
    bool saved = false;
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    assert_true(saved);
    hr_model_free(model);

    model = load(ctx, 512);
    assert_int_equal(hr_model_snapshot_restore(model), HR_ENOENT);
    assert_non_null(strstr(hr_last_error(), "made for another window"));
    hr_model_free(model);

    /* the same path, but the file changed since (its modification time) */
    char copy[1200];
    snprintf(copy, sizeof copy, "%s/model-copy.gguf", scratch);
    char command[2600];
    snprintf(command, sizeof command, "cp '%s' '%s'", tiny_model, copy);
    assert_int_equal(system(command), 0);
    hr_model_params params = hr_model_default_params();
    params.n_ctx = 256;
    assert_int_equal(hr_model_load(ctx, copy, &params, &model), HR_OK);
    generate(model, PROMPT, 4, &out, NULL);
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    hr_model_free(model);
    struct timespec later[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = time(NULL) + 10 } };
    assert_int_equal(utimensat(AT_FDCWD, copy, later, 0), 0);
    assert_int_equal(hr_model_load(ctx, copy, &params, &model), HR_OK);
    assert_int_equal(hr_model_snapshot_restore(model), HR_ENOENT);
    hr_model_free(model);

    /* the right model and window still finds its own */
    model = load(ctx, 256);
    assert_int_equal(hr_model_snapshot_restore(model), HR_OK);
    hr_model_free(model);
    unlink(copy);
    hr_context_free(ctx);
}

/* kv/ must be private: one open to other users is closed up before a save, one that belongs to
 * another user is refused (they could plant the snapshots the engine loads) */
static void the_cache_directory_must_be_private(void **state)
{
    (void)state;
    char cache[1024], kv[1100];
    fresh_dir(cache, sizeof cache, "private");
    snprintf(kv, sizeof kv, "%s/kv", cache);
    assert_int_equal(mkdir(kv, 0700), 0);
    assert_int_equal(chmod(kv, 0777), 0);
    hr_context *ctx = new_context(cache, 0);
    hr_model *model = load(ctx, 256);
    struct text out;
    generate(model, PROMPT, 4, &out, NULL);
    bool saved = false;
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    assert_true(saved);
    struct stat st;
    assert_int_equal(stat(kv, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);   /* closed up */

    if (geteuid() == 0) {   /* only root can give the directory away; others' case is the same code */
        assert_int_equal(chown(kv, 65534, 65534), 0);
        assert_int_equal(hr_model_snapshot_save(model, &saved), HR_EACCES);
        fprintf(stderr, "  %s\n", hr_last_error());
        assert_non_null(strstr(hr_last_error(), "belongs to uid 65534"));
        hr_model *fresh = load(ctx, 256);
        assert_int_equal(hr_model_snapshot_restore(fresh), HR_EACCES);   /* nothing is loaded from it */
        hr_model_free(fresh);
        hr_cache_entry *entries = NULL;
        size_t count = 0;
        assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);   /* listing names trusts nothing */
        hr_free(entries);
        assert_int_equal(chown(kv, 0, 0), 0);
    }
    hr_model_free(model);
    hr_context_free(ctx);
}

/* (c) over budget, the least recently used snapshot goes first */
static void budget_evicts_least_recently_used(void **state)
{
    (void)state;
    char cache[1024];
    fresh_dir(cache, sizeof cache, "budget");
    struct text out;
    bool saved;

    /* one snapshot's size, with the default budget */
    hr_context *ctx = new_context(cache, 0);
    hr_model *model = load(ctx, 256);
    generate(model, PROMPT, 4, &out, NULL);
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    hr_model_free(model);
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
    assert_int_equal(count, 1);
    uint64_t size = entries[0].bytes;
    hr_free(entries);
    assert_int_equal(hr_cache_clear(ctx, NULL, NULL, NULL), HR_OK);
    hr_context_free(ctx);

    /* room for two and a half: each save of the same window is the same size */
    ctx = new_context(cache, size * 5 / 2);
    model = load(ctx, 256);
    char names[3][512];
    for (int i = 0; i < 3; i++) {
        generate(model, PROMPT, 4, &out, NULL);   /* re-decodes the last prompt token: a new window */
        assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
        assert_true(saved);
        assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
        assert_int_equal(count, i < 2 ? (size_t)(i + 1) : 2);   /* the third save evicts one */
        size_t newest = 0;
        for (size_t j = 1; j < count; j++)
            if (entries[j].created_at > entries[newest].created_at) newest = j;
        snprintf(names[i], sizeof names[i], "%s", entries[newest].path);
        hr_free(entries);
        if (i == 1) {
            /* Last use is the file's modification time (a restore touches it). The first was used
             * after the second: set explicitly, as the kernel's clock ticks coarser than a save. */
            time_t now = time(NULL);
            struct timespec first[2] = { { .tv_sec = now - 10 }, { .tv_sec = now - 10 } };
            struct timespec second[2] = { { .tv_sec = now - 20 }, { .tv_sec = now - 20 } };
            assert_int_equal(utimensat(AT_FDCWD, names[0], first, 0), 0);
            assert_int_equal(utimensat(AT_FDCWD, names[1], second, 0), 0);
        }
    }
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
    assert_int_equal(count, 2);
    assert_string_equal(entries[0].path, names[2]);   /* most recently used first */
    assert_string_equal(entries[1].path, names[0]);
    assert_int_equal(access(names[1], F_OK), -1);     /* the least recently used went */
    hr_free(entries);
    hr_cache_status status;
    assert_int_equal(hr_cache_get_status(ctx, &status), HR_OK);
    assert_int_equal(status.snapshots, 2);
    assert_true(status.used_bytes <= status.budget_bytes);
    assert_int_equal(status.budget_bytes, size * 5 / 2);
    hr_model_free(model);
    hr_context_free(ctx);
}

struct problems {
    int count;
    int code;
    char path[1024];
};

static void on_problem(const char *path, int code, const char *sentence, void *user_data)
{
    struct problems *p = user_data;
    p->count++;
    p->code = code;
    snprintf(p->path, sizeof p->path, "%s", path);
    assert_non_null(strstr(sentence, path));
}

static void write_file(const char *path, const void *data, size_t length)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, length, f), length);
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    char command[2200];
    snprintf(command, sizeof command, "cp -p '%s' '%s'", from, to);
    assert_int_equal(system(command), 0);
}

/* FS_IMMUTABLE_FL: unlink fails with EPERM even for root. false where the file system or the
 * process's capabilities do not allow it. */
static bool set_immutable(const char *path, bool on)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return false;
    int flags = 0;
    bool ok = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
    if (ok) {
        flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
        ok = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
    }
    close(fd);
    return ok;
}

/* Three snapshots of one growing conversation in CTX's cache; their paths in SNAPSHOTS. */
static void save_three_snapshots(hr_context *ctx, char snapshots[3][512])
{
    hr_model *model = load(ctx, 256);
    struct text out;
    bool saved;
    for (int i = 0; i < 3; i++) {
        generate(model, PROMPT, 4, &out, NULL);
        assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
        hr_cache_entry *entries = NULL;
        size_t count = 0;
        assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_OK);
        snprintf(snapshots[i], 512, "%s", entries[0].path);
        hr_free(entries);
    }
    hr_model_free(model);
}

/* Starts sessions for `count` prompts at once (each in a slot of its own), greedy, and reads them
 * to their end: texts into out[], cached prompt tokens into cached[]. */
static void run_sessions(hr_model *model, const char *const *prompts, int count, struct text *out, int32_t *cached)
{
    hr_session *sessions[4];
    for (int i = 0; i < count; i++) {
        hr_session_params sp = hr_session_default_params();
        sp.generate.max_tokens = 8;
        sp.generate.temperature = 0;
        if (hr_session_start(model, prompts[i], &sp, &sessions[i]) != HR_OK) fail_msg("session: %s", hr_last_error());
    }
    for (int i = 0; i < count; i++) {
        memset(&out[i], 0, sizeof out[i]);
        char piece[256];
        size_t length;
        int rc;
        while ((rc = hr_session_read(sessions[i], piece, sizeof piece, &length, 30.0)) == HR_OK)
            collect(piece, length, &out[i]);
        assert_int_equal(rc, HR_EOF);
        hr_generation_stats stats;
        assert_int_equal(hr_session_stats(sessions[i], &stats), HR_OK);
        cached[i] = stats.cached_tokens;
        hr_session_free(sessions[i]);
    }
}

/* (c2) one snapshot per conversation, and a prompt brings back the one it continues: two
 * conversations held in two slots are saved as two files; in a model loaded afresh each one's
 * continuation restores its own snapshot (the older one too, not just the newest) and gives the
 * text an empty cache gives. */
static void each_conversation_is_saved_and_restored_by_its_prompt(void **state)
{
    (void)state;
    static const char *const openings[2] = {
        PROMPT,
        "The old clockmaker opened his shop at dawn and wound every clock on the long wall, one by one, until",
    };
    char cache[1024], empty[1024];
    fresh_dir(cache, sizeof cache, "per-conversation");
    fresh_dir(empty, sizeof empty, "per-conversation-empty");
    hr_context *ctx = new_context(cache, 0);
    hr_model *model = load(ctx, 256);
    struct text first[2];
    int32_t cached[2];
    run_sessions(model, openings, 2, first, cached);
    bool saved = false;
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    assert_true(saved);
    char kv[1100];
    snprintf(kv, sizeof kv, "%s/kv", cache);
    assert_int_equal(count_entries(kv), 2);   /* one file per conversation */
    hr_model_free(model);

    static char follow[2][8400];
    const char *follows[2];
    for (int i = 0; i < 2; i++) {
        snprintf(follow[i], sizeof follow[i], "%s%s%s", openings[i], first[i].data, FOLLOW_UP);
        follows[i] = follow[i];
    }
    /* what an empty cache gives */
    hr_context *fresh = new_context(empty, 0);
    hr_model *plain = load(fresh, 256);
    struct text expected[2], got[2];
    for (int i = 0; i < 2; i++) {
        run_sessions(plain, &follows[i], 1, &expected[i], &cached[i]);
        assert_true(cached[i] <= 1);   /* at most the start token the two share */
    }
    hr_model_free(plain);
    hr_context_free(fresh);

    model = load(ctx, 256);
    for (int i = 1; i >= 0; i--) {   /* the older conversation's continuation first, then the newer */
        run_sessions(model, &follows[i], 1, &got[i], &cached[i]);
        fprintf(stderr, "  conversation %d: %d prompt tokens restored\n", i, cached[i]);
        assert_true(cached[i] >= 16);
        assert_string_equal(got[i].data, expected[i].data);
    }
    hr_model_free(model);
    hr_context_free(ctx);
}

/* (d) clear removes headroom's files only and follows no link */
static void clear_touches_only_its_own_files(void **state)
{
    (void)state;
    char cache[1024], kv[1100], outside[1100], path[1400], target[1400];
    fresh_dir(cache, sizeof cache, "clear");
    snprintf(kv, sizeof kv, "%s/kv", cache);
    snprintf(outside, sizeof outside, "%s/outside", cache);
    hr_context *ctx = new_context(cache, 0);
    char snapshots[3][512];
    save_three_snapshots(ctx, snapshots);

    /* what must survive: a person's file, a file with headroom's name pattern but not its
     * contents, a link (with headroom's name) to a real snapshot outside kv/, a subdirectory */
    assert_int_equal(mkdir(outside, 0700), 0);
    snprintf(target, sizeof target, "%s/kept.hrkv", outside);
    copy_file(snapshots[0], target);
    snprintf(path, sizeof path, "%s/notes.txt", kv);
    write_file(path, "mine", 4);
    snprintf(path, sizeof path, "%s/0123456789abcdef-0123456789abcdef-01234567.hrkv", kv);
    write_file(path, "not a snapshot", 14);
    snprintf(path, sizeof path, "%s/fedcba9876543210-0123456789abcdef-01234567.hrkv", kv);
    assert_int_equal(symlink(target, path), 0);
    snprintf(path, sizeof path, "%s/sub", kv);
    assert_int_equal(mkdir(path, 0700), 0);
    /* what goes: the leftover of a save interrupted two minutes ago (llama.cpp's magic 'ggsq') */
    char leftover[1400];
    snprintf(leftover, sizeof leftover, "%s/.aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-cccccccc.hrkv.tmp", kv);
    write_file(leftover, "qsgg\x01\x00\x00\x00", 8);
    struct timespec old[2] = { { .tv_sec = time(NULL) - 120 }, { .tv_sec = time(NULL) - 120 } };
    assert_int_equal(utimensat(AT_FDCWD, leftover, old, 0), 0);
    /* ... but not a save in progress (a fresh temporary file) */
    snprintf(path, sizeof path, "%s/.aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-dddddddd.hrkv.tmp", kv);
    write_file(path, "qsgg", 4);

    hr_cache_clear_report report;
    struct problems problems = { 0 };
    assert_int_equal(hr_cache_clear(ctx, &report, on_problem, &problems), HR_OK);
    assert_int_equal(report.removed, 4);   /* three snapshots and the leftover */
    assert_int_equal(report.skipped, 5);   /* notes, the impostor, the link, sub/, the fresh temp */
    assert_true(report.bytes_removed > 0);
    for (int i = 0; i < 3; i++) assert_int_equal(access(snapshots[i], F_OK), -1);
    assert_int_equal(access(leftover, F_OK), -1);
    snprintf(path, sizeof path, "%s/notes.txt", kv);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/0123456789abcdef-0123456789abcdef-01234567.hrkv", kv);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/fedcba9876543210-0123456789abcdef-01234567.hrkv", kv);
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(access(target, F_OK), 0);   /* the link's target, a valid snapshot, untouched */

    /* a kv/ that is itself a link is refused, and what it points to is left alone */
    char moved[1200];
    snprintf(moved, sizeof moved, "%s/real-kv", cache);
    assert_int_equal(rename(kv, moved), 0);
    assert_int_equal(symlink(moved, kv), 0);
    size_t before = count_entries(moved);
    assert_int_equal(hr_cache_clear(ctx, &report, on_problem, &problems), HR_EACCES);
    assert_non_null(strstr(hr_last_error(), "is a symbolic link"));
    assert_int_equal(report.removed, 0);
    assert_int_equal(count_entries(moved), before);
    hr_cache_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_cache_list(ctx, &entries, &count), HR_EACCES);
    hr_model *model = load(ctx, 256);
    struct text out;
    bool saved = true;
    generate(model, PROMPT, 4, &out, NULL);
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_EACCES);
    assert_false(saved);
    assert_int_equal(count_entries(moved), before);
    hr_model_free(model);
    hr_context_free(ctx);
}

/* (d) ... and goes on past a file it cannot remove, saying which */
static void clear_goes_on_past_a_file_it_cannot_remove(void **state)
{
    (void)state;
    char cache[1024];
    fresh_dir(cache, sizeof cache, "clear-failure");
    hr_context *ctx = new_context(cache, 0);
    char snapshots[3][512];
    save_three_snapshots(ctx, snapshots);
    if (!set_immutable(snapshots[1], true)) {
        int error = errno;
        hr_context_free(ctx);
        skip_because("cannot make a file that cannot be removed: the immutable flag on %s needs CAP_LINUX_IMMUTABLE "
                     "and a file system that has it (%s)", snapshots[1], strerror(error));
    }
    hr_cache_clear_report report;
    struct problems problems = { 0 };
    int rc = hr_cache_clear(ctx, &report, on_problem, &problems);
    set_immutable(snapshots[1], false);
    assert_int_equal(rc, HR_EACCES);
    assert_non_null(strstr(hr_last_error(), "1 of headroom's files could not be removed"));
    assert_int_equal(report.failed, 1);
    assert_int_equal(problems.count, 1);
    assert_int_equal(problems.code, HR_EACCES);
    assert_string_equal(problems.path, snapshots[1]);
    assert_int_equal(report.removed, 2);   /* the other two snapshots: clear went on past it */
    assert_int_equal(access(snapshots[0], F_OK), -1);
    assert_int_equal(access(snapshots[1], F_OK), 0);
    assert_int_equal(access(snapshots[2], F_OK), -1);
    hr_context_free(ctx);
}

static bool write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    return close(fd) == 0 && ok;
}

/* A 64 KiB tmpfs on MOUNTPOINT, a file system that fills up: as root directly; otherwise in a
 * user and mount namespace of this process's own, where the kernel lets ordinary users have one
 * (the process must be single-threaded then: the case runs in an entry of its own). 0 or the
 * errno of the plain mount. */
static int mount_small_tmpfs(const char *mountpoint)
{
    if (mount("tmpfs", mountpoint, "tmpfs", 0, "size=64k") == 0) return 0;
    int error = errno;
    if (geteuid() == 0) return error;
    char map[64];
    snprintf(map, sizeof map, "0 %d 1", (int)geteuid());
    char group_map[64];
    snprintf(group_map, sizeof group_map, "0 %d 1", (int)getegid());
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0 || !write_text("/proc/self/setgroups", "deny") ||
        !write_text("/proc/self/uid_map", map) || !write_text("/proc/self/gid_map", group_map) ||
        mount("tmpfs", mountpoint, "tmpfs", 0, "size=64k") != 0)
        return error;
    return 0;
}

/* (e) a full disk: HR_EIO with a sentence that says so, and no file left, both where headroom
 * sees it coming (free space) and where the engine's write fails */
static void full_disk_leaves_nothing(void **state)
{
    (void)state;
    char mountpoint[1100], cache[1200], kv[1300], path[1400];
    snprintf(mountpoint, sizeof mountpoint, "%s/full", scratch);
    umount(mountpoint);
    mkdir(mountpoint, 0700);
    int error = mount_small_tmpfs(mountpoint);
    if (error != 0)
        skip_because("cannot mount a 64 KiB tmpfs on %s to fill up (%s; root may, and ordinary users where the "
                     "kernel allows them a user namespace)", mountpoint, strerror(error));
    snprintf(cache, sizeof cache, "%s/cache", mountpoint);
    snprintf(kv, sizeof kv, "%s/kv", cache);
    hr_context *ctx = new_context(cache, 0);
    hr_model *model = load(ctx, 512);
    /* about 420 tokens: some 115 KB of state, more than the file system holds */
    static char prompt[4096];
    prompt[0] = '\0';
    for (int i = 0; i < 45; i++) strcat(prompt, "The fisherman went out to sea again. ");
    struct text out;
    generate(model, prompt, 4, &out, NULL);

    bool saved = true;
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_EIO);
    assert_false(saved);
    assert_non_null(strstr(hr_last_error(), "is full"));
    assert_int_equal(count_entries(kv), 0);

    /* the engine's own write running out of room (no headroom check before it) */
    snprintf(path, sizeof path, "%s/direct.state", kv);
    int rc = model->engine->state_save(model->engine_model, 0, path, model->slots[0].tokens, model->slots[0].count);
    assert_int_equal(rc, HR_EIO);
    assert_non_null(strstr(hr_last_error(), "is full"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_entries(kv), 0);

    /* the model is unharmed and still answers the same */
    struct text again;
    generate(model, prompt, 4, &again, NULL);
    assert_string_equal(again.data, out.data);
    hr_model_free(model);
    hr_context_free(ctx);
    assert_int_equal(umount(mountpoint), 0);
}

/* Saves COUNT snapshots of MODEL into CACHE_DIR, for the CLI's test. */
static int make_snapshots(const char *model_path, const char *cache_dir, int count)
{
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    params.cache_dir = cache_dir;
    hr_context *ctx = NULL;
    hr_model *model = NULL;
    hr_model_params model_params = hr_model_default_params();
    model_params.n_ctx = 256;
    if (hr_context_create(&params, &ctx) != HR_OK || hr_model_load(ctx, model_path, &model_params, &model) != HR_OK) {
        fprintf(stderr, "test_kvcache: %s\n", hr_last_error());
        return 1;
    }
    hr_generate_params generate = hr_generate_default_params();
    generate.max_tokens = 4;
    generate.temperature = 0;
    for (int i = 0; i < count; i++) {
        struct text out = { 0 };
        bool saved = false;
        if (hr_generate(model, PROMPT, &generate, collect, &out, NULL) != HR_OK ||
            hr_model_snapshot_save(model, &saved) != HR_OK || !saved) {
            fprintf(stderr, "test_kvcache: snapshot %d: %s\n", i, hr_last_error());
            return 1;
        }
    }
    hr_model_free(model);
    hr_context_free(ctx);
    return 0;
}

/* The one snapshot in <cache>/kv: its name in `name`, its bytes in a malloc'd buffer. */
static char *read_only_snapshot(const char *cache, char *name, size_t name_size, size_t *length)
{
    char kv[1100];
    snprintf(kv, sizeof kv, "%s/kv", cache);
    DIR *dir = opendir(kv);
    assert_non_null(dir);
    name[0] = '\0';
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        if (hr_snapshot_is_name(e->d_name)) {
            assert_string_equal(name, "");   /* only one */
            snprintf(name, name_size, "%s", e->d_name);
        }
    closedir(dir);
    assert_true(name[0] != '\0');
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", kv, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *length = (size_t)ftell(f);
    rewind(f);
    char *bytes = malloc(*length);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, *length, f), *length);
    fclose(f);
    return bytes;
}

/* A snapshot whose trailer is intact and whose engine part is cut to `state_bytes`: the trailer
 * is re-made by hr_snapshot_finish, so it is well formed and its checksum right. */
static void write_short_state(const char *cache, const char *name, const char *bytes, size_t length,
                              size_t state_bytes)
{
    char kv[1100];
    snprintf(kv, sizeof kv, "%s/kv", cache);
    struct hr_snapshot_trailer trailer;
    memcpy(&trailer, bytes + length - sizeof trailer, sizeof trailer);
    char temp[1200], path[1400];
    snprintf(temp, sizeof temp, "%s/short.tmp", kv);
    write_file(temp, bytes, state_bytes);
    int dirfd = open(kv, O_RDONLY | O_DIRECTORY);
    assert_true(dirfd >= 0);
    assert_int_equal(hr_snapshot_finish(dirfd, "short.tmp", kv, &trailer), HR_OK);
    close(dirfd);
    snprintf(path, sizeof path, "%s/%s", kv, name);
    assert_int_equal(rename(temp, path), 0);
}

/* A snapshot truncated, with a wrong magic, with the engine's own header damaged, with its engine
 * part cut short under a well-formed trailer, or made by another model, is refused with a
 * sentence; the model is left usable, and the next generation decodes the whole prompt and gives
 * the text a model that never saw a snapshot gives. The intact file is then restored and reused,
 * so the refusals are the damage's doing. */
static void damaged_snapshots_are_refused_and_recomputed(void **state)
{
    (void)state;
    char cache[1024];
    fresh_dir(cache, sizeof cache, "damaged");
    hr_context *ctx = new_context(cache, 0);
    static struct text a, expected, got;
    static char follow[16384];
    hr_generation_stats stats;
    hr_model *model = load(ctx, 512);
    generate(model, PROMPT, 12, &a, &stats);
    bool saved = false;
    assert_int_equal(hr_model_snapshot_save(model, &saved), HR_OK);
    assert_true(saved);
    hr_model_free(model);
    snprintf(follow, sizeof follow, "%s%s%s", PROMPT, a.data, FOLLOW_UP);
    model = load(ctx, 512);
    generate(model, follow, 16, &expected, &stats);
    assert_int_equal(stats.cached_tokens, 0);
    hr_model_free(model);

    char name[256], path[1400];
    size_t length = 0;
    char *good = read_only_snapshot(cache, name, sizeof name, &length);
    snprintf(path, sizeof path, "%s/kv/%s", cache, name);
    size_t trailer_at = length - sizeof(struct hr_snapshot_trailer);
    char *damaged = malloc(length);
    assert_non_null(damaged);

    /* another model's snapshot (a copy of the file elsewhere: another identity) under this name */
    char other_path[1200], other_name[256];
    snprintf(other_path, sizeof other_path, "%s/other-model.gguf", scratch);
    copy_file(tiny_model, other_path);
    hr_model_params params = hr_model_default_params();
    params.n_ctx = 512;
    hr_model *other = NULL;
    assert_int_equal(hr_model_load(ctx, other_path, &params, &other), HR_OK);
    generate(other, "A different story starts here, far from the sea, where", 12, &got, NULL);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(hr_model_snapshot_save(other, &saved), HR_OK);
    hr_model_free(other);
    size_t other_length = 0;
    char *foreign = read_only_snapshot(cache, other_name, sizeof other_name, &other_length);
    char foreign_path[1400];
    snprintf(foreign_path, sizeof foreign_path, "%s/kv/%s", cache, other_name);
    assert_int_equal(unlink(foreign_path), 0);

    for (int damage = 0; damage < 5; damage++) {
        static const char *const labels[] = { "truncated to half", "wrong trailer magic", "engine header damaged",
                                              "engine part cut short under a good trailer", "another model's" };
        memcpy(damaged, good, length);
        if (damage == 0) write_file(path, damaged, length / 2);
        if (damage == 1) {
            memcpy(damaged + trailer_at, "XXXXXXXX", 8);
            write_file(path, damaged, length);
        }
        if (damage == 2) {
            damaged[0] ^= 0x5a;
            damaged[1] ^= 0x5a;
            write_file(path, damaged, length);
        }
        if (damage == 3) write_short_state(cache, name, good, length, trailer_at / 2);
        if (damage == 4) write_file(path, foreign, other_length);

        model = load(ctx, 512);
        int rc = hr_model_snapshot_restore(model);
        if (rc == HR_OK) fail_msg("%s: the snapshot was restored", labels[damage]);
        const char *why = hr_last_error();
        assert_true(strlen(why) > 20);
        print_message("%s: %s: %s\n", labels[damage], hr_strerror(rc), why);
        assert_int_equal(model->slots[0].count, 0);
        generate(model, follow, 16, &got, &stats);
        assert_string_equal(got.data, expected.data);
        assert_int_equal(stats.cached_tokens, 0);
        hr_model_free(model);
        unlink(path);
    }

    write_file(path, good, length);
    model = load(ctx, 512);
    assert_int_equal(hr_model_snapshot_restore(model), HR_OK);
    generate(model, follow, 16, &got, &stats);
    assert_string_equal(got.data, expected.data);
    assert_true(stats.cached_tokens > 0);
    hr_model_free(model);
    free(foreign);
    free(damaged);
    free(good);
    unlink(other_path);
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--make-snapshots") == 0) return make_snapshots(argv[2], argv[3], atoi(argv[4]));
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 3) {
        fprintf(stderr, "usage: %s TINY_MODEL.gguf SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    tiny_model = argv[1];
    scratch = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(restored_conversation_continues_the_same),
        cmocka_unit_test(snapshot_is_kept_to_its_model_and_window),
        cmocka_unit_test(the_cache_directory_must_be_private),
        cmocka_unit_test(budget_evicts_least_recently_used),
        cmocka_unit_test(each_conversation_is_saved_and_restored_by_its_prompt),
        cmocka_unit_test(clear_touches_only_its_own_files),
        cmocka_unit_test(clear_goes_on_past_a_file_it_cannot_remove),
        cmocka_unit_test(full_disk_leaves_nothing),
        cmocka_unit_test(damaged_snapshots_are_refused_and_recomputed),
    };
    return run_cases(tests, NULL, NULL);
}
