/*
 * api_embed.c: embeddings for both APIs (OpenAI's /v1/embeddings, Ollama's /api/embed and the
 * older /api/embeddings are shaped in api_openai.c and api_ollama.c): the inputs checked, each
 * embedded by hr_model_embed, and OpenAI's base64 encoding of the floats.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

bool embed_check_input(field_check *c, const cJSON *body, const char *key, bool required, int *count)
{
    *count = 0;
    if (c->failed) return false;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, key);
    if (!input || cJSON_IsNull(input)) {
        if (!required) return true;
        c->reply = reply_error(c->r, 400, key, "'%s' is required: a string or an array of strings", key);
        c->failed = true;
        return false;
    }
    if (cJSON_IsString(input)) {
        *count = 1;
        return true;
    }
    const char *why = NULL;
    if (!cJSON_IsArray(input)) why = "must be a string or an array of strings";
    else if (cJSON_GetArraySize(input) == 0) why = "must not be an empty array";
    else if (cJSON_GetArraySize(input) > MAX_EMBED_INPUTS) why = "holds too many strings (at most 2048)";
    const cJSON *item;
    if (!why) cJSON_ArrayForEach(item, input) {
        if (cJSON_IsNumber(item) || cJSON_IsArray(item)) {
            why = "holds token ids: only text is accepted (send the strings)";
            break;
        }
        if (!cJSON_IsString(item)) {
            why = "must be a string or an array of strings";
            break;
        }
    }
    if (why) {
        c->reply = reply_error(c->r, 400, key, "'%s' %s", key, why);
        c->failed = true;
        return false;
    }
    *count = cJSON_GetArraySize(input);
    return true;
}

int embed_inputs(hr_model *model, const cJSON *body, const char *key, bool normalize, bool truncate,
                 embed_batch *out)
{
    memset(out, 0, sizeof *out);
    hr_model_info info;
    int rc = hr_model_get_info(model, &info);
    if (rc != HR_OK) return rc;
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(body, key);
    int count = !input || cJSON_IsNull(input) ? 0 : cJSON_IsString(input) ? 1 : cJSON_GetArraySize(input);
    out->dimensions = info.n_embd;
    out->vectors = calloc((size_t)(count ? count : 1) * (size_t)(info.n_embd > 0 ? info.n_embd : 1), sizeof(float));
    if (!out->vectors) return HR_ENOMEM;
    double started = wall_seconds();
    for (int i = 0; i < count; i++) {
        const cJSON *text = cJSON_IsString(input) ? input : cJSON_GetArrayItem(input, i);
        hr_embed_params params = hr_embed_default_params();
        params.normalize = normalize;
        params.truncate = truncate;
        hr_embed_result result;
        rc = hr_model_embed(model, text->valuestring, &params, out->vectors + (size_t)i * (size_t)info.n_embd,
                            (size_t)info.n_embd, &result);
        if (rc != HR_OK) return rc;
        out->tokens += result.n_tokens;
        if (result.truncated) out->truncated++;
        out->count++;
    }
    out->seconds = wall_seconds() - started;
    return HR_OK;
}

void embed_batch_free(embed_batch *batch)
{
    free(batch->vectors);
    memset(batch, 0, sizeof *batch);
}

cJSON *embed_vector_json(const float *vector, int32_t dimensions)
{
    cJSON *array = cJSON_CreateArray();
    for (int32_t i = 0; i < dimensions; i++) {
        double value = isfinite(vector[i]) ? (double)vector[i] : 0;
        cJSON_AddItemToArray(array, cJSON_CreateNumber(value));
    }
    return array;
}

char *embed_vector_base64(const float *vector, int32_t dimensions)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t length = (size_t)dimensions * sizeof(float);
    unsigned char *bytes = malloc(length ? length : 1);
    char *text = malloc((length + 2) / 3 * 4 + 1);
    if (!bytes || !text) {
        free(bytes);
        free(text);
        return NULL;
    }
    /* OpenAI's base64 is the little-endian float32 array */
    for (int32_t i = 0; i < dimensions; i++) {
        uint32_t bits;
        memcpy(&bits, &vector[i], sizeof bits);
        for (int k = 0; k < 4; k++) bytes[(size_t)i * 4 + (size_t)k] = (unsigned char)(bits >> (8 * k));
    }
    size_t j = 0;
    for (size_t i = 0; i < length; i += 3) {
        uint32_t group = (uint32_t)bytes[i] << 16;
        if (i + 1 < length) group |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < length) group |= bytes[i + 2];
        text[j++] = alphabet[(group >> 18) & 63];
        text[j++] = alphabet[(group >> 12) & 63];
        text[j++] = i + 1 < length ? alphabet[(group >> 6) & 63] : '=';
        text[j++] = i + 2 < length ? alphabet[group & 63] : '=';
    }
    text[j] = '\0';
    free(bytes);
    return text;
}
