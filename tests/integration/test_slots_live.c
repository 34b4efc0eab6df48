/*
 * test_slots_live.c: memory decides the parallelism. In a child memory cgroup of 256 MiB a small
 * model with a wide KV cache is registered with a context whose KV takes about 70 MiB per slot, and asks
 * for 4 slots (about 280 MiB: more than the cgroup holds). The registry's load gives it fewer
 * slots, each with its whole context, says why (hr_registry_entry.slots_reason and the JSON),
 * and the model serves sessions on them. Skips where no child cgroup can be made.
 * usage: test_slots_live MODEL.gguf
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "headroom.h"
#include "live_cgroup.h"
#include "skip.h"

enum { LIMIT_MIB = 256, SLOT_MIB = 70 };
static const uint64_t MiB = 1024 * 1024;
static const char *model_path;

static void fewer_slots_when_their_kv_does_not_fit(void **state)
{
    (void)state;
    if (!make_limited_cgroup(LIMIT_MIB)) skip_because("%s", skip_reason);
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);

    /* the KV bytes of one token of one slot, from the engine's own estimate */
    hr_preflight_params pp = hr_preflight_default_params();
    pp.n_ctx = 4096;
    pp.slots = 1;
    hr_preflight_result pf;
    assert_int_equal(hr_preflight(ctx, model_path, &pp, &pf), HR_OK);
    uint64_t kv = 0;
    for (size_t i = 0; i < pf.n_devices; i++) kv += pf.devices[i].kv_bytes;
    uint64_t per_token = kv / (uint64_t)pf.n_ctx;
    assert_true(per_token > 0);
    int32_t n_ctx = (int32_t)((SLOT_MIB * MiB / per_token) / 256 * 256);

    hr_model_params model_params = hr_model_default_params();
    model_params.n_ctx = n_ctx;
    model_params.slots = 4;
    model_params.n_threads = 2;
    assert_int_equal(hr_registry_add(ctx, "wide", model_path, &model_params), HR_OK);
    hr_model *model = NULL;
    int rc = hr_registry_acquire(ctx, "wide", &model);
    if (rc != HR_OK) fail_msg("acquire: %s", hr_last_error());

    hr_model_info info;
    assert_int_equal(hr_model_get_info(model, &info), HR_OK);
    fprintf(stderr, "  %d tokens per slot (%.1f MiB of KV each): %d slots\n", info.n_ctx,
            (double)per_token * info.n_ctx / (double)MiB, info.slots);
    assert_true(info.slots >= 1 && info.slots < 4);
    assert_int_equal(info.n_ctx, n_ctx);   /* each slot keeps its whole context */

    hr_registry_entry *entries = NULL;
    size_t count = 0;
    assert_int_equal(hr_registry_list(ctx, &entries, &count), HR_OK);
    assert_int_equal(count, 1);
    assert_int_equal(entries[0].slots, info.slots);
    assert_non_null(strstr(entries[0].slots_reason, "instead of 4"));
    assert_non_null(strstr(entries[0].slots_reason, "MiB per slot"));
    hr_free(entries);
    char *json = hr_registry_json(ctx);
    assert_non_null(json);
    assert_non_null(strstr(json, "\"slots_reason\":\""));
    hr_free(json);

    /* and it serves on the slots it got */
    hr_session_params sp = hr_session_default_params();
    sp.generate.max_tokens = 4;
    hr_session *s = NULL;
    assert_int_equal(hr_session_start(model, "Hello", &sp, &s), HR_OK);
    char buffer[64];
    size_t length;
    while ((rc = hr_session_read(s, buffer, sizeof buffer, &length, 10.0)) == HR_OK) continue;
    assert_int_equal(rc, HR_EOF);
    hr_session_free(s);

    assert_int_equal(oom_kills(), 0);
    hr_registry_release(ctx, model, 0);
    hr_context_free(ctx);
    remove_limited_cgroup();
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fewer_slots_when_their_kv_does_not_fit),
    };
    int result = run_cases(tests, NULL, NULL);
    live_cgroup_cleanup();
    return result;
}
