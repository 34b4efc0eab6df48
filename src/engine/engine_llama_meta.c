/*
 * engine_llama_meta.c: a model file's GGUF header as JSON, read with ggml's own GGUF reader and
 * without loading anything: every key (arrays as null, they are the vocabulary's tables), and
 * what clients ask for besides (the parameter count, the weights' type). For describing a model
 * (Ollama's /api/show); holds no policy.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <ggml.h>
#include <gguf.h>

#include "core/error.h"
#include "engine/engine_llama_internal.h"

static cJSON *value_json(const struct gguf_context *gguf, int64_t id)
{
    switch (gguf_get_kv_type(gguf, id)) {
    case GGUF_TYPE_UINT8:   return cJSON_CreateNumber(gguf_get_val_u8(gguf, id));
    case GGUF_TYPE_INT8:    return cJSON_CreateNumber(gguf_get_val_i8(gguf, id));
    case GGUF_TYPE_UINT16:  return cJSON_CreateNumber(gguf_get_val_u16(gguf, id));
    case GGUF_TYPE_INT16:   return cJSON_CreateNumber(gguf_get_val_i16(gguf, id));
    case GGUF_TYPE_UINT32:  return cJSON_CreateNumber(gguf_get_val_u32(gguf, id));
    case GGUF_TYPE_INT32:   return cJSON_CreateNumber(gguf_get_val_i32(gguf, id));
    case GGUF_TYPE_UINT64:  return cJSON_CreateNumber((double)gguf_get_val_u64(gguf, id));
    case GGUF_TYPE_INT64:   return cJSON_CreateNumber((double)gguf_get_val_i64(gguf, id));
    case GGUF_TYPE_FLOAT32: return cJSON_CreateNumber(gguf_get_val_f32(gguf, id));
    case GGUF_TYPE_FLOAT64: return cJSON_CreateNumber(gguf_get_val_f64(gguf, id));
    case GGUF_TYPE_BOOL:    return cJSON_CreateBool(gguf_get_val_bool(gguf, id));
    case GGUF_TYPE_STRING:  return cJSON_CreateString(gguf_get_val_str(gguf, id));
    default:                return cJSON_CreateNull();   /* arrays: tokens, merges, scores */
    }
}

/* llama.cpp's file types by their number (llama.h's llama_ftype), as Ollama names them. */
static const char *file_type_name(uint32_t type)
{
    static const char *const names[] = {
        [0] = "F32", [1] = "F16", [2] = "Q4_0", [3] = "Q4_1", [7] = "Q8_0", [8] = "Q5_0", [9] = "Q5_1",
        [10] = "Q2_K", [11] = "Q3_K_S", [12] = "Q3_K_M", [13] = "Q3_K_L", [14] = "Q4_K_S", [15] = "Q4_K_M",
        [16] = "Q5_K_S", [17] = "Q5_K_M", [18] = "Q6_K", [19] = "IQ2_XXS", [20] = "IQ2_XS", [21] = "Q2_K_S",
        [22] = "IQ3_XS", [23] = "IQ3_XXS", [24] = "IQ1_S", [25] = "IQ4_NL", [26] = "IQ3_S", [27] = "IQ3_M",
        [28] = "IQ2_S", [29] = "IQ2_M", [30] = "IQ4_XS", [31] = "IQ1_M", [32] = "BF16", [36] = "TQ1_0",
        [37] = "TQ2_0", [38] = "MXFP4",
    };
    return type < sizeof names / sizeof names[0] ? names[type] : NULL;
}

int hr_engine_llama_file_metadata(const char *path, cJSON **out)
{
    *out = NULL;
    hr_llama_backend_once();
    hr_llama_file_facts facts;
    int rc = hr_llama_check_model_file(path, &facts);
    if (rc != HR_OK) return rc;
    struct gguf_init_params header_only = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *gguf = gguf_init_from_file(path, header_only);
    if (!gguf) return hr_fail(HR_EFORMAT, "cannot read the GGUF header of %s", path);
    cJSON *info = cJSON_CreateObject();
    for (int64_t id = 0; id < gguf_get_n_kv(gguf); id++)
        cJSON_AddItemToObject(info, gguf_get_key(gguf, id), value_json(gguf, id));

    /* the parameter count and the type holding most weight bytes, from the tensor table */
    double parameters = 0;
    uint64_t bytes_by_type[GGML_TYPE_COUNT] = { 0 };
    for (int64_t t = 0; t < gguf_get_n_tensors(gguf); t++) {
        enum ggml_type type = gguf_get_tensor_type(gguf, t);
        size_t size = gguf_get_tensor_size(gguf, t);
        if (type < 0 || type >= GGML_TYPE_COUNT || ggml_type_size(type) == 0) continue;
        parameters += (double)size / (double)ggml_type_size(type) * (double)ggml_blck_size(type);
        bytes_by_type[type] += size;
    }
    if (!cJSON_GetObjectItemCaseSensitive(info, "general.parameter_count"))
        cJSON_AddNumberToObject(info, "general.parameter_count", parameters);
    int64_t key = gguf_find_key(gguf, "general.file_type");
    const char *level = key >= 0 && gguf_get_kv_type(gguf, key) == GGUF_TYPE_UINT32
                            ? file_type_name(gguf_get_val_u32(gguf, key)) : NULL;
    char dominant[32] = "";
    if (!level) {
        int best = -1;
        for (int type = 0; type < GGML_TYPE_COUNT; type++)
            if (bytes_by_type[type] > 0 && (best < 0 || bytes_by_type[type] > bytes_by_type[best])) best = type;
        if (best >= 0) {
            snprintf(dominant, sizeof dominant, "%s", ggml_type_name((enum ggml_type)best));
            for (char *c = dominant; *c; c++) *c = (char)toupper((unsigned char)*c);
            level = dominant;
        }
    }
    /* not GGUF keys: headroom's, for the caller */
    cJSON_AddStringToObject(info, "headroom.quantization_level", level ? level : "unknown");
    gguf_free(gguf);
    *out = info;
    return HR_OK;
}
