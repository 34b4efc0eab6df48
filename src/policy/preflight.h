/*
 * preflight.h: pure preflight policy: what a load would need per device, against what each
 * device has available, with floors, gives a verdict (ok, warn, refuse), the bytes missing and
 * guidance a person can act on. No I/O, no clock, no engine: plain structs in, a decision out
 * (tests/unit/test_preflight.c); src/runtime/preflight.c gathers the inputs.
 */
#ifndef HR_POLICY_PREFLIGHT_H
#define HR_POLICY_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/memory.h"

enum { HR_PREFLIGHT_MAX_DEVICES = 8 };

typedef enum hr_preflight_verdict {
    HR_PREFLIGHT_OK = 0,
    HR_PREFLIGHT_WARN = 1,
    HR_PREFLIGHT_REFUSE = 2,
} hr_preflight_verdict;

typedef struct hr_preflight_device {
    char name[64];                 /* "CPU", "CUDA0 (NVIDIA H100 80GB HBM3)" */
    bool is_gpu;
    uint64_t weights, kv, compute, overhead;  /* the estimate, bytes */
    uint64_t kv_per_token;         /* growth of kv and compute with each token of context */
    uint64_t compute_per_token;
    bool memory_known;             /* false: nothing says what this device has */
    uint64_t total;                /* the binding scope's size (host) or the device's memory */
    uint64_t available;            /* effective available now */
    char scope[HR_SCOPE_NAME_MAX]; /* what binds: "host", "cgroup /app (memory.max)", a GPU's name */
} hr_preflight_device;

typedef struct hr_preflight_input {
    size_t n_devices;              /* the host first */
    hr_preflight_device devices[HR_PREFLIGHT_MAX_DEVICES];
    int32_t n_ctx;                 /* the context the estimate is for */
    int32_t n_ctx_train;           /* 0: unknown */
    uint64_t n_params;
    uint64_t weight_bytes;
    bool kv_f16;                   /* the KV cache is f16 (a q8_0 cache would be about half) */
    /* Floors for the host scope; 0: derived from the model's own needs (docs/preflight.md). */
    uint64_t min_total;            /* the scope's size below which the model is refused */
    uint64_t recommended_total;    /* ... below which it is loaded with a warning */
    uint64_t min_free;             /* memory that must stay available after the load */
    double critical_free_percent;  /* the pressure classifier's critical band: min_free's default */
    const char *fallback;          /* a remote fall-back that would serve instead; NULL: none */
} hr_preflight_input;

typedef struct hr_preflight_decision {
    hr_preflight_verdict verdict;
    uint64_t total;                /* the estimate over every device */
    size_t binding_device;         /* index into the input's devices */
    char binding_scope[HR_SCOPE_NAME_MAX];
    uint64_t available;            /* on the binding device */
    uint64_t missing;              /* 0 when ok */
    uint64_t min_free;             /* the floors applied on the host, defaults resolved */
    uint64_t min_total;
    uint64_t recommended_total;
    int32_t max_ctx_that_fits;     /* 0: not even 256 tokens; a multiple of 256 */
    char reason[256];
    char guidance[1024];
} hr_preflight_decision;

/* The estimate of one device: weights + kv + compute + overhead. */
uint64_t hr_preflight_device_total(const hr_preflight_device *device);

void hr_preflight_decide(const hr_preflight_input *input, hr_preflight_decision *out);

const char *hr_preflight_verdict_name(hr_preflight_verdict verdict);

#endif /* HR_POLICY_PREFLIGHT_H */
