/*
 * engine_llama_kv.c: the memory of one sequence's KV cache. llama.cpp allocates the cache once
 * per context (and writes zeros over all of it), so forgetting a sequence's cells gives nothing
 * back (measured: 0 KiB of RSS). Here the pages of the sequence's own stream of every K and V
 * tensor are handed back to the kernel (madvise MADV_DONTNEED on the host buffer), which really
 * frees them; the kernel gives zeros on the next touch, what llama.cpp's cache starts from.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

/* llama.cpp offers no call that reaches its cache's tensors, but every decode's graph reads
 * them: the eval callback sees each node, and the cache tensors ("cache_k_l<n>", "cache_v_l<n>")
 * are the view sources of the nodes that read and write them. Asked only (ask = true), returning
 * false, the scheduler still computes each split as one graph. Runs on the decoding thread;
 * stops looking once a decode found them (hr_llama_kv_note_decoded). */
static void note(hr_engine_model *model, struct ggml_tensor *t)
{
    if (!t) return;
    if (t->view_src) t = t->view_src;
    if (strncmp(t->name, "cache_", 6) != 0 || ggml_n_dims(t) < 3) return;
    for (int32_t i = 0; i < model->n_kv_tensors; i++)
        if (model->kv_tensors[i] == t) return;
    if (model->n_kv_tensors < HR_LLAMA_MAX_KV_TENSORS) model->kv_tensors[model->n_kv_tensors++] = t;
}

bool hr_llama_kv_eval_callback(struct ggml_tensor *t, bool ask, void *user_data)
{
    hr_engine_model *model = user_data;
    if (!ask || __atomic_load_n(&model->kv_found, __ATOMIC_RELAXED)) return false;
    note(model, t);
    for (int i = 0; i < GGML_MAX_SRC; i++) note(model, t->src[i]);
    return false;
}

void hr_llama_kv_note_decoded(hr_engine_model *model)
{
    if (!__atomic_load_n(&model->kv_found, __ATOMIC_RELAXED) && model->n_kv_tensors > 0)
        __atomic_store_n(&model->kv_found, true, __ATOMIC_RELEASE);
}

/* Plain host memory (not a GPU's, not pinned memory a driver owns): the pages madvise may drop. */
static bool droppable(const struct ggml_tensor *t)
{
    return t->buffer && t->data && ggml_backend_buffer_is_host(t->buffer) &&
           ggml_backend_buffer_get_type(t->buffer) == ggml_backend_cpu_buffer_type();
}

/* The whole pages inside sequence `seq`'s stream of tensor `t`: [*begin, *end). */
static bool stream_pages(const struct ggml_tensor *t, int32_t seq, uintptr_t *begin, uintptr_t *end)
{
    if (seq >= t->ne[2]) return false;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = (uintptr_t)t->data + (uintptr_t)seq * (uintptr_t)t->nb[2];
    *begin = (first + page - 1) & ~(page - 1);
    *end = (first + (uintptr_t)t->nb[2]) & ~(page - 1);
    return *end > *begin;
}

uint64_t hr_llama_seq_resident_bytes(hr_engine_model *model, int32_t seq)
{
    if (seq < 0 || seq >= model->n_seq_max || !__atomic_load_n(&model->kv_found, __ATOMIC_ACQUIRE))
        return 0;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    unsigned char vector[4096];
    uint64_t resident = 0;
    for (int32_t i = 0; i < model->n_kv_tensors; i++) {
        uintptr_t begin, end;
        if (!droppable(model->kv_tensors[i]) || !stream_pages(model->kv_tensors[i], seq, &begin, &end)) continue;
        for (uintptr_t at = begin; at < end;) {
            uintptr_t length = end - at < sizeof vector * page ? end - at : sizeof vector * page;
            if (mincore((void *)at, length, vector) != 0) break;
            for (uintptr_t p = 0; p < length / page; p++) resident += (vector[p] & 1) ? page : 0;
            at += length;
        }
    }
    return resident;
}

int hr_llama_seq_release(hr_engine_model *model, int32_t seq, uint64_t *released)
{
    *released = 0;
    if (seq < 0 || seq >= model->n_seq_max)
        return hr_fail(HR_EINVAL, "there is no sequence %d in a window of %d", seq, model->n_seq_max);
    if (!llama_memory_seq_rm(llama_get_memory(model->ctx), seq, -1, -1))
        return hr_fail(HR_ENOTSUP, "this model's sequence %d cannot be forgotten", seq);
    if (!__atomic_load_n(&model->kv_found, __ATOMIC_ACQUIRE))
        return hr_fail(HR_ENOTSUP, "the KV cache's memory is not known before the first decode");
    for (int32_t i = 0; i < model->n_kv_tensors; i++) {
        uintptr_t begin, end;
        if (!droppable(model->kv_tensors[i]) || !stream_pages(model->kv_tensors[i], seq, &begin, &end)) continue;
        if (madvise((void *)begin, end - begin, MADV_DONTNEED) == 0) *released += end - begin;
    }
    return HR_OK;
}
