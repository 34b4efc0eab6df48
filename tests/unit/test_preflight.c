/*
 * test_preflight.c: the pure preflight policy (src/policy/preflight.c) on hand-made inputs: each
 * verdict and its boundary, the floors and their defaults, the device that binds, the largest
 * context that fits, and the guidance's alternatives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy/preflight.h"

#define MiB ((uint64_t)1 << 20)
#define GiB ((uint64_t)1 << 30)

/* A host-only model: 1 GiB of weights, 2048 tokens of KV at 64 KiB each (128 MiB), 64 MiB of
 * compute growing 1 KiB per token, 16 MiB overhead: 1232 MiB in all. The host has 16 GiB. */
static hr_preflight_input host_input(uint64_t available)
{
    hr_preflight_input in;
    memset(&in, 0, sizeof in);
    in.n_devices = 1;
    hr_preflight_device *d = &in.devices[0];
    snprintf(d->name, sizeof d->name, "CPU");
    d->weights = GiB;
    d->kv = 128 * MiB;
    d->kv_per_token = 64 * 1024;
    d->compute = 64 * MiB;
    d->compute_per_token = 1024;
    d->overhead = 16 * MiB;
    d->memory_known = true;
    d->total = 16 * GiB;
    d->available = available;
    snprintf(d->scope, sizeof d->scope, "host");
    in.n_ctx = 2048;
    in.n_ctx_train = 8192;
    in.n_params = GiB / 2;         /* 1 GiB of weights for 0.5 Gi parameters: 16 bits each (F16) */
    in.weight_bytes = GiB;
    in.kv_f16 = true;
    in.critical_free_percent = 5.0;
    return in;
}

static const uint64_t estimate = GiB + 128 * MiB + 64 * MiB + 16 * MiB;
static const uint64_t min_free = 16 * GiB / 20;   /* 5% of the scope */

static void fits_with_room_is_ok(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(12 * GiB);
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_OK);
    assert_int_equal(out.total, estimate);
    assert_int_equal(out.missing, 0);
    assert_int_equal(out.min_free, min_free);
    assert_int_equal(out.min_total, estimate + min_free);
    assert_int_equal(out.recommended_total, estimate + estimate / 5 + min_free);
    assert_string_equal(out.binding_scope, "host");
    assert_int_equal(out.available, 12 * GiB);
    assert_string_equal(out.guidance, "");
    assert_non_null(strstr(out.reason, "fits"));
    /* plenty of room: the largest context is the trained length */
    assert_int_equal(out.max_ctx_that_fits, 8192);
}

/* The boundaries: refuse below estimate + min_free, warn below estimate * 1.2 + min_free. */
static void verdict_boundaries(void **state)
{
    (void)state;
    hr_preflight_decision out;
    hr_preflight_input in = host_input(estimate + min_free);
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_WARN);   /* fits, but without the 20% margin */
    assert_int_equal(out.missing, estimate / 5);

    in = host_input(estimate + min_free - 1);
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.missing, 1);

    in = host_input(estimate + estimate / 5 + min_free);
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_OK);
    in = host_input(estimate + estimate / 5 + min_free - 1);
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_WARN);
    assert_int_equal(out.missing, 1);
    assert_non_null(strstr(out.reason, "tightly"));
}

static void refusal_says_what_is_missing_and_what_fits(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(GiB + min_free + 100 * MiB);   /* 1.1 GiB to spend */
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.missing, estimate - GiB - 100 * MiB);
    assert_non_null(strstr(out.reason, "missing"));
    assert_non_null(strstr(out.guidance, "Free 108.0 MiB in host"));
    /* without KV and compute growth: 1 GiB + 64 MiB - 2 MiB (compute's growth at 2048) + 16 MiB
     * fixed; 100 MiB - 78 MiB... worked out: budget 1124 MiB, fixed 1024 + 62 + 16 = 1102 MiB,
     * 22 MiB / 65 KiB per token = 346 tokens -> 256 */
    assert_int_equal(out.max_ctx_that_fits, 256);
    assert_non_null(strstr(out.guidance, "up to 256 tokens fit (--ctx 256)"));
    /* 16 bits per weight: a Q8_0 build (8.5) would need about 1232 - 1024 + 544 MiB = 752 MiB */
    assert_non_null(strstr(out.guidance, "Q8_0 build"));
    assert_non_null(strstr(out.guidance, "752.0 MiB"));
    assert_null(strstr(out.guidance, "fall-back"));
}

static void nothing_fits_says_so(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(min_free + 200 * MiB);
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.max_ctx_that_fits, 0);
    assert_null(strstr(out.guidance, "smaller context"));
    assert_non_null(strstr(out.guidance, "Even a Q4_0 build would need"));
    in.fallback = "openai at http://gpu-box:8080";
    hr_preflight_decide(&in, &out);
    assert_non_null(strstr(out.guidance, "remote fall-back (openai at http://gpu-box:8080)"));
}

static void kv_cache_quantisation_is_offered_when_it_fits(void **state)
{
    (void)state;
    /* a 16k context: KV 1 GiB; a q8_0 cache saves 1 GiB * 15/32 = 480 MiB */
    hr_preflight_input in = host_input(0);
    in.devices[0].kv = GiB;
    in.n_ctx = 16384;
    uint64_t total = GiB + GiB + 64 * MiB + 16 * MiB;
    in.devices[0].available = total + min_free - 300 * MiB;
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_non_null(strstr(out.guidance, "q8_0 KV cache"));
    assert_non_null(strstr(out.guidance, "saves 480.0 MiB"));
    in.kv_f16 = false;   /* already quantised: not offered */
    hr_preflight_decide(&in, &out);
    assert_null(strstr(out.guidance, "q8_0 KV cache"));
}

/* Configured floors (the macOS request's 16, 24 and 4 GB for a 20B model) apply to the host. */
static void configured_floors(void **state)
{
    (void)state;
    hr_preflight_decision out;
    hr_preflight_input in = host_input(12 * GiB);
    in.min_total = 24 * GiB;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.missing, 8 * GiB);
    assert_non_null(strstr(out.reason, "minimum"));
    assert_non_null(strstr(out.guidance, "use a machine with more memory"));

    in = host_input(12 * GiB);
    in.min_total = 16 * GiB;
    in.recommended_total = 24 * GiB;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_WARN);
    assert_int_equal(out.missing, 8 * GiB);
    assert_non_null(strstr(out.reason, "recommended"));

    in = host_input(12 * GiB);
    in.min_free = 11 * GiB;   /* 12 GiB available, 1.2 GiB needed: 11 must stay free */
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.min_free, 11 * GiB);
    assert_int_equal(out.missing, estimate + 11 * GiB - 12 * GiB);
}

static void a_cgroup_limit_binds(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(GiB);
    in.devices[0].total = 2 * GiB;
    snprintf(in.devices[0].scope, sizeof in.devices[0].scope, "cgroup /app.slice (memory.max)");
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_string_equal(out.binding_scope, "cgroup /app.slice (memory.max)");
    assert_non_null(strstr(out.guidance, "raise the container's memory limit"));
    assert_int_equal(out.min_free, 2 * GiB / 20);
}

static void a_gpu_that_is_short_binds(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(12 * GiB);
    in.devices[0].weights = 100 * MiB;   /* the token embeddings stay on the host */
    in.devices[0].kv = 0;
    in.devices[0].kv_per_token = 0;
    in.devices[0].compute = 8 * MiB;
    in.devices[0].compute_per_token = 0;
    in.n_devices = 2;
    hr_preflight_device *gpu = &in.devices[1];
    snprintf(gpu->name, sizeof gpu->name, "CUDA0 (NVIDIA test)");
    snprintf(gpu->scope, sizeof gpu->scope, "CUDA0 (NVIDIA test)");
    gpu->is_gpu = true;
    gpu->weights = 900 * MiB;
    gpu->kv = 128 * MiB;
    gpu->kv_per_token = 64 * 1024;
    gpu->compute = 100 * MiB;
    gpu->memory_known = true;
    gpu->total = 2 * GiB;
    gpu->available = GiB;
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_REFUSE);
    assert_int_equal(out.binding_device, 1);
    assert_string_equal(out.binding_scope, "CUDA0 (NVIDIA test)");
    assert_int_equal(out.available, GiB);
    /* need 1128 MiB + 5% of 2 GiB (102.4 MiB) against 1024 MiB */
    assert_int_equal(out.missing, 1128 * MiB + 2 * GiB / 20 - GiB);
    assert_non_null(strstr(out.guidance, "fewer layers on the GPU"));
    assert_int_equal(out.total, 108 * MiB + 16 * MiB + 1128 * MiB);
    /* the GPU bounds the context: (1024 - 102.4 - (1128 - 128)) MiB is negative: none */
    assert_int_equal(out.max_ctx_that_fits, 0);
}

static void unknown_memory_warns(void **state)
{
    (void)state;
    hr_preflight_input in = host_input(0);
    in.devices[0].memory_known = false;
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_WARN);
    assert_non_null(strstr(out.reason, "unknown"));
    assert_non_null(strstr(out.guidance, "/proc/meminfo"));
}

static void largest_context(void **state)
{
    (void)state;
    /* budget 6 GiB + 1232 MiB - min_free... choose available so the budget is exactly fixed + N
     * tokens: fixed = 1232 MiB - 2048 * 65 KiB = 1102 MiB */
    uint64_t per_token = 64 * 1024 + 1024;
    uint64_t fixed = estimate - 2048 * per_token;
    hr_preflight_input in = host_input(fixed + min_free + 5000 * per_token);
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.max_ctx_that_fits, 4864);   /* 5000 rounded down to a multiple of 256 */
    in.n_ctx_train = 4096;                           /* never beyond the trained length ... */
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.max_ctx_that_fits, 4096);
    in.n_ctx = 4608;                                 /* ... unless that much was asked for */
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.max_ctx_that_fits, 4608);
}

static void no_devices(void **state)
{
    (void)state;
    hr_preflight_input in;
    memset(&in, 0, sizeof in);
    hr_preflight_decision out;
    hr_preflight_decide(&in, &out);
    assert_int_equal(out.verdict, HR_PREFLIGHT_WARN);
    assert_string_equal(hr_preflight_verdict_name(HR_PREFLIGHT_REFUSE), "refuse");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fits_with_room_is_ok),
        cmocka_unit_test(verdict_boundaries),
        cmocka_unit_test(refusal_says_what_is_missing_and_what_fits),
        cmocka_unit_test(nothing_fits_says_so),
        cmocka_unit_test(kv_cache_quantisation_is_offered_when_it_fits),
        cmocka_unit_test(configured_floors),
        cmocka_unit_test(a_cgroup_limit_binds),
        cmocka_unit_test(a_gpu_that_is_short_binds),
        cmocka_unit_test(unknown_memory_warns),
        cmocka_unit_test(largest_context),
        cmocka_unit_test(no_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
