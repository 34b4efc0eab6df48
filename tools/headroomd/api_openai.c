/*
 * api_openai.c: the OpenAI-compatible API: GET /v1/models, POST /v1/completions and
 * POST /v1/chat/completions, streamed as server-sent events or whole, with usage filled in and
 * errors in OpenAI's shape. Validation is strict: a field of the wrong type is a 400 that names it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

static atomic_ulong next_id = 1;

struct openai_stream {
    char id[48];
    long created;
    char model[256];
    bool chat;
    bool include_usage;
    bool logprobs;          /* asked for: each chunk carries its tokens' log-probabilities */
    int32_t top_logprobs;
    hr_session *session;    /* the session the stream reads (valid until the stream is freed) */
    size_t next_record;     /* the first logprob record not yet sent */
    size_t text_offset;     /* completions: where the next token's text begins */
    /* a chat with tools: the answer is the template's syntax, read back by hr_chat_parse; the
     * stream sends the content as it becomes certain and each call whole at the end */
    hr_chat *tool_chat;     /* owned; NULL without tools */
    bool parse_tools;       /* its answer may hold calls (tool_choice is not none) */
    char *answer;           /* the text so far */
    size_t answer_length;
    size_t content_sent;    /* bytes of the parsed content already sent */
    bool role_sent;
};

static void free_stream(void *state)
{
    struct openai_stream *s = state;
    if (!s) return;
    hr_chat_free(s->tool_chat);   /* the session that used it is freed before its stream state */
    free(s->answer);
    free(s);
}

/* ---- log-probabilities ------------------------------------------------------------------------ */

/* A token's bytes as a JSON string: whole UTF-8 characters as they are, the bytes of a character
 * split across tokens as U+FFFD (`bytes` carries them exactly). */
static cJSON *token_string(const hr_logprob *lp)
{
    char text[HR_MAX_PIECE_BYTES * 3 + 1];
    size_t used = 0;
    const unsigned char *b = (const unsigned char *)lp->piece;
    for (int32_t i = 0; i < lp->length;) {
        int n = b[i] < 0x80 ? 1 : (b[i] & 0xe0) == 0xc0 ? 2 : (b[i] & 0xf0) == 0xe0 ? 3 : (b[i] & 0xf8) == 0xf0 ? 4 : 0;
        bool whole = n > 0 && i + n <= lp->length && !(n == 1 && b[i] == 0);
        for (int k = 1; whole && k < n; k++) whole = (b[i + k] & 0xc0) == 0x80;
        if (whole) {
            memcpy(text + used, b + i, (size_t)n);
            used += (size_t)n;
            i += n;
        } else {
            memcpy(text + used, "\xef\xbf\xbd", 3);
            used += 3;
            i++;
        }
    }
    text[used] = '\0';
    return cJSON_CreateString(text);
}

static cJSON *token_bytes(const hr_logprob *lp)
{
    cJSON *bytes = cJSON_CreateArray();
    for (int32_t i = 0; i < lp->length; i++) cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)lp->piece[i]));
    return bytes;
}

static cJSON *chat_logprob(const hr_logprob *lp)
{
    cJSON *item = cJSON_CreateObject();
    cJSON_AddItemToObject(item, "token", token_string(lp));
    cJSON_AddNumberToObject(item, "logprob", lp->logprob);
    cJSON_AddItemToObject(item, "bytes", token_bytes(lp));
    return item;
}

/* The records of the tokens the reader has read since the last call, in OpenAI's shape for chat
 * ({"content":[...]}) or completions ({"tokens","token_logprobs","top_logprobs","text_offset"}). */
static cJSON *logprobs_json(struct openai_stream *s)
{
    hr_token_logprobs records[32];
    cJSON *body = cJSON_CreateObject();
    cJSON *content = NULL, *tokens = NULL, *token_logprobs = NULL, *top = NULL, *offsets = NULL;
    if (s->chat) {
        content = cJSON_AddArrayToObject(body, "content");
        cJSON_AddNullToObject(body, "refusal");
    } else {
        tokens = cJSON_AddArrayToObject(body, "tokens");
        token_logprobs = cJSON_AddArrayToObject(body, "token_logprobs");
        top = cJSON_AddArrayToObject(body, "top_logprobs");
        offsets = cJSON_AddArrayToObject(body, "text_offset");
    }
    size_t count;
    while (hr_session_logprobs(s->session, s->next_record, records, 32, &count) == HR_OK && count > 0) {
        for (size_t i = 0; i < count; i++) {
            const hr_token_logprobs *r = &records[i];
            if (s->chat) {
                cJSON *item = chat_logprob(&r->chosen);
                cJSON *alternatives = cJSON_AddArrayToObject(item, "top_logprobs");
                for (int32_t k = 0; k < r->top_count && k < s->top_logprobs; k++)
                    cJSON_AddItemToArray(alternatives, chat_logprob(&r->top[k]));
                cJSON_AddItemToArray(content, item);
            } else {
                cJSON_AddItemToArray(tokens, token_string(&r->chosen));
                cJSON_AddItemToArray(token_logprobs, cJSON_CreateNumber(r->chosen.logprob));
                cJSON *alternatives = cJSON_CreateObject();
                for (int32_t k = 0; k < r->top_count && k < s->top_logprobs; k++) {
                    cJSON *name = token_string(&r->top[k]);
                    if (!cJSON_GetObjectItemCaseSensitive(alternatives, name->valuestring))
                        cJSON_AddNumberToObject(alternatives, name->valuestring, r->top[k].logprob);
                    cJSON_Delete(name);
                }
                cJSON_AddItemToArray(top, alternatives);
                cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)s->text_offset));
                s->text_offset += (size_t)r->chosen.length;
            }
        }
        s->next_record += count;
    }
    return body;
}

static const char *finish_reason(enum hr_stop_reason reason)
{
    return reason == HR_STOP_END_OF_TEXT || reason == HR_STOP_SEQUENCE ? "stop" : "length";
}

/* OpenAI's tool_calls from the parsed answer's calls: with the index when streamed. */
static cJSON *openai_tool_calls(const cJSON *calls, bool indexed)
{
    cJSON *list = cJSON_CreateArray();
    int index = 0;
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        cJSON *item = cJSON_CreateObject();
        if (indexed) cJSON_AddNumberToObject(item, "index", index);
        cJSON_AddStringToObject(item, "id", cJSON_GetStringValue(cJSON_GetObjectItem(call, "id")));
        cJSON_AddStringToObject(item, "type", "function");
        cJSON *function = cJSON_AddObjectToObject(item, "function");
        cJSON_AddStringToObject(function, "name", cJSON_GetStringValue(cJSON_GetObjectItem(call, "name")));
        cJSON_AddStringToObject(function, "arguments", cJSON_GetStringValue(cJSON_GetObjectItem(call, "arguments")));
        cJSON_AddItemToArray(list, item);
        index++;
    }
    return list;
}

/* Calls end the answer with finish_reason "tool_calls", unless it was cut short. */
static const char *tools_finish_reason(const cJSON *parsed, enum hr_stop_reason reason)
{
    if (cJSON_GetArraySize(cJSON_GetObjectItem(parsed, "tool_calls")) > 0 &&
        (reason == HR_STOP_END_OF_TEXT || reason == HR_STOP_SEQUENCE))
        return "tool_calls";
    return finish_reason(reason);
}

static cJSON *usage_json(const hr_generation_stats *stats)
{
    cJSON *usage = cJSON_CreateObject();
    cJSON_AddNumberToObject(usage, "prompt_tokens", stats->prompt_tokens);
    cJSON_AddNumberToObject(usage, "completion_tokens", stats->generated_tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", stats->prompt_tokens + stats->generated_tokens);
    return usage;
}

static cJSON *chunk_head(const struct openai_stream *s)
{
    cJSON *chunk = cJSON_CreateObject();
    cJSON_AddStringToObject(chunk, "id", s->id);
    cJSON_AddStringToObject(chunk, "object", s->chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(chunk, "created", (double)s->created);
    cJSON_AddStringToObject(chunk, "model", s->model);
    return chunk;
}

/* One choice of a chunk: text for completions, a delta for chat. */
static cJSON *chunk_choice(struct openai_stream *s, const char *text, size_t length, bool first,
                           const char *reason)
{
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    char *copy = strndup(text, length);
    if (s->chat) {
        cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
        if (first) cJSON_AddStringToObject(delta, "role", "assistant");
        if (length > 0 || !reason) cJSON_AddStringToObject(delta, "content", copy ? copy : "");
    } else {
        cJSON_AddStringToObject(choice, "text", copy ? copy : "");
    }
    free(copy);
    if (s->logprobs) cJSON_AddItemToObject(choice, "logprobs", logprobs_json(s));
    else cJSON_AddNullToObject(choice, "logprobs");
    if (reason) cJSON_AddStringToObject(choice, "finish_reason", reason);
    else cJSON_AddNullToObject(choice, "finish_reason");
    return choice;
}

/* A chunk with a delta of the parsed content (and the role, once). */
static void sse_content(struct openai_stream *s, const char *content, size_t length, char **out, size_t *out_length)
{
    cJSON *chunk = chunk_head(s);
    cJSON *choices = cJSON_AddArrayToObject(chunk, "choices");
    cJSON_AddItemToArray(choices, chunk_choice(s, content, length, !s->role_sent, NULL));
    s->role_sent = true;
    append_json_line(out, out_length, "data: ", chunk, "\n\n");
}

/* Content that the parse of the text so far is sure of, beyond what was sent. A parse that no
 * longer begins with what was sent (the template's syntax seen late) sends nothing more. */
static void sse_tools_piece(struct openai_stream *s, const char *piece, size_t length, char **out, size_t *out_length)
{
    append(&s->answer, &s->answer_length, piece, length);
    cJSON *parsed = tools_parse(s->tool_chat, s->answer, s->answer_length, true);
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content"));
    size_t content_length = content ? strlen(content) : 0;
    if (content && content_length > s->content_sent)
        sse_content(s, content + s->content_sent, content_length - s->content_sent, out, out_length);
    if (content && content_length > s->content_sent) s->content_sent = content_length;
    cJSON_Delete(parsed);
}

/* The end of a chat with tools: the rest of the content, then every call in one chunk each
 * (index, id, type, name and the whole arguments), then the finish reason. */
static const char *sse_tools_finish(struct openai_stream *s, const hr_generation_stats *stats, char **out,
                                    size_t *out_length)
{
    cJSON *parsed = tools_parse_answer(s->tool_chat, s->answer, s->answer_length);
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content"));
    size_t content_length = content ? strlen(content) : 0;
    if (content && content_length > s->content_sent)
        sse_content(s, content + s->content_sent, content_length - s->content_sent, out, out_length);
    cJSON *calls = openai_tool_calls(cJSON_GetObjectItem(parsed, "tool_calls"), true);
    cJSON *call = calls->child;
    while (call) {
        cJSON *next = call->next;
        cJSON *chunk = chunk_head(s);
        cJSON *choice = cJSON_CreateObject();
        cJSON_AddNumberToObject(choice, "index", 0);
        cJSON *delta = cJSON_AddObjectToObject(choice, "delta");
        if (!s->role_sent) cJSON_AddStringToObject(delta, "role", "assistant");
        s->role_sent = true;
        cJSON *one = cJSON_AddArrayToObject(delta, "tool_calls");
        cJSON_AddItemToArray(one, cJSON_DetachItemViaPointer(calls, call));
        cJSON_AddNullToObject(choice, "logprobs");
        cJSON_AddNullToObject(choice, "finish_reason");
        cJSON_AddItemToArray(cJSON_AddArrayToObject(chunk, "choices"), choice);
        append_json_line(out, out_length, "data: ", chunk, "\n\n");
        call = next;
    }
    cJSON_Delete(calls);
    const char *reason = tools_finish_reason(parsed, stats->stop_reason);
    cJSON_Delete(parsed);
    return reason;
}

static void sse_piece(void *state, const char *piece, size_t length, cJSON_bool first, char **out, size_t *out_length)
{
    struct openai_stream *s = state;
    if (s->parse_tools) {
        sse_tools_piece(s, piece, length, out, out_length);
        return;
    }
    s->role_sent = true;
    cJSON *chunk = chunk_head(s);
    cJSON *choices = cJSON_AddArrayToObject(chunk, "choices");
    cJSON_AddItemToArray(choices, chunk_choice(s, piece, length, first, NULL));
    append_json_line(out, out_length, "data: ", chunk, "\n\n");
}

static void sse_finish(void *state, int result, const char *message, const hr_generation_stats *stats,
                       char **out, size_t *out_length)
{
    struct openai_stream *s = state;
    if (result == HR_OK) {
        const char *reason = s->parse_tools ? sse_tools_finish(s, stats, out, out_length) : finish_reason(stats->stop_reason);
        cJSON *chunk = chunk_head(s);
        cJSON *choices = cJSON_AddArrayToObject(chunk, "choices");
        cJSON_AddItemToArray(choices, chunk_choice(s, "", 0, !s->role_sent, reason));
        append_json_line(out, out_length, "data: ", chunk, "\n\n");
        if (s->include_usage) {
            chunk = chunk_head(s);
            cJSON_AddArrayToObject(chunk, "choices");
            cJSON_AddItemToObject(chunk, "usage", usage_json(stats));
            append_json_line(out, out_length, "data: ", chunk, "\n\n");
        }
    } else {
        cJSON *body = cJSON_CreateObject();
        cJSON *error = cJSON_AddObjectToObject(body, "error");
        cJSON_AddStringToObject(error, "message", message && message[0] ? message : hr_strerror(result));
        cJSON_AddStringToObject(error, "type", "server_error");
        append_json_line(out, out_length, "data: ", body, "\n\n");
    }
    static const char done[] = "data: [DONE]\n\n";
    append(out, out_length, done, sizeof done - 1);
}

static const stream_format sse_format = {
    .content_type = "text/event-stream",
    .piece = sse_piece,
    .finish = sse_finish,
    .keep_alive = ": keep-alive\n\n",
    .free_state = free_stream,
};

/* ---- requests ------------------------------------------------------------------------------- */

/* The text of a chat message: a string, or OpenAI's array of parts of which the text ones count. */
static char *message_text(field_check *c, const cJSON *content, int index)
{
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    if (!cJSON_IsArray(content)) {
        c->reply = reply_error(c->r, 400, "messages", "messages[%d].content must be a string or an array of parts", index);
        c->failed = true;
        return NULL;
    }
    size_t length = 0;
    char *text = calloc(1, 1);
    const cJSON *part;
    cJSON_ArrayForEach(part, content) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(value)) {
            free(text);
            c->reply = reply_error(c->r, 400, "messages", "messages[%d]: only parts of type 'text' are supported", index);
            c->failed = true;
            return NULL;
        }
        append(&text, &length, value->valuestring, strlen(value->valuestring));
    }
    return text;
}

/* OpenAI's messages as the library's conversation: the texts are the caller's to free with
 * free_conversation. */
struct conversation {
    hr_chat_message *list;
    char **texts;
    int count;
};

static void free_conversation(struct conversation *conversation)
{
    for (int j = 0; j < conversation->count; j++) free(conversation->texts[j]);
    free(conversation->texts);
    free(conversation->list);
}

/* Reads the messages and checks them against the model's chat template, so that a template error
 * is a reply and not a broken stream; false after replying on bad input. */
static bool chat_conversation(field_check *c, hr_model *model, const cJSON *messages, struct conversation *out)
{
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        c->reply = reply_error(c->r, 400, "messages", "'messages' must be a non-empty array");
        c->failed = true;
        return false;
    }
    int count = cJSON_GetArraySize(messages);
    out->list = calloc((size_t)count, sizeof *out->list);
    out->texts = calloc((size_t)count, sizeof *out->texts);
    out->count = count;
    if (!out->list || !out->texts) return false;   /* the caller answers 500, out of memory */
    int i = 0;
    const cJSON *message;
    cJSON_ArrayForEach(message, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
        if (!cJSON_IsString(role)) {
            c->reply = reply_error(c->r, 400, "messages", "messages[%d].role must be a string", i);
            c->failed = true;
            return false;
        }
        out->texts[i] = message_text(c, cJSON_GetObjectItemCaseSensitive(message, "content"), i);
        if (!out->texts[i]) return false;
        out->list[i].role = role->valuestring;
        out->list[i].content = out->texts[i];
        i++;
    }
    char *prompt = NULL;
    int rc = hr_model_apply_chat_template(model, out->list, (size_t)count, true, &prompt);
    hr_free(prompt);
    if (rc != HR_OK) {
        c->reply = reply_library_error(c->r, rc);
        c->failed = true;
        return false;
    }
    return true;
}

/* Chat: logprobs true/false and top_logprobs 0..20 (which needs logprobs); completions: logprobs
 * the number of alternatives (0..20; OpenAI allows 5, llama-server more). */
static void read_logprobs(field_check *c, const cJSON *body, bool chat, hr_generate_params *params)
{
    if (c->failed) return;
    const cJSON *logprobs = cJSON_GetObjectItemCaseSensitive(body, "logprobs");
    if (!logprobs || cJSON_IsNull(logprobs)) {
        if (chat) {
            const cJSON *top = cJSON_GetObjectItemCaseSensitive(body, "top_logprobs");
            if (top && !cJSON_IsNull(top)) {
                c->reply = reply_error(c->r, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
                c->failed = true;
            }
        }
        return;
    }
    if (chat) {
        bool on = false;
        if (!field_bool(c, body, "logprobs", &on)) return;
        int32_t top = 0;
        if (!field_int(c, body, "top_logprobs", 0, HR_MAX_TOP_LOGPROBS, &top)) return;
        if (!on && cJSON_GetObjectItemCaseSensitive(body, "top_logprobs") &&
            !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "top_logprobs"))) {
            c->reply = reply_error(c->r, 400, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            c->failed = true;
            return;
        }
        params->logprobs = on;
        params->top_logprobs = top;
    } else {
        if (cJSON_IsBool(logprobs)) {   /* some clients send false for "off" */
            params->logprobs = cJSON_IsTrue(logprobs);
            return;
        }
        int32_t top = 0;
        if (!field_int(c, body, "logprobs", 0, HR_MAX_TOP_LOGPROBS, &top)) return;
        params->logprobs = true;
        params->top_logprobs = top;
    }
}

/* response_format (OpenAI: text, json_object, json_schema) and llama-server's own grammar and
 * json_schema fields: the grammar the answer must follow, malloc'd into *grammar, or NULL. */
static void read_structured_output(field_check *c, const cJSON *body, char **grammar)
{
    *grammar = NULL;
    if (c->failed) return;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(body, "response_format");
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(body, "json_schema");
    const cJSON *gbnf = cJSON_GetObjectItemCaseSensitive(body, "grammar");
    int given = (format && !cJSON_IsNull(format)) + (schema && !cJSON_IsNull(schema)) +
                (gbnf && !cJSON_IsNull(gbnf) && !(cJSON_IsString(gbnf) && !gbnf->valuestring[0]));
    if (given > 1) {
        c->reply = reply_error(c->r, 400, "response_format", "give one of 'response_format', 'json_schema' and 'grammar'");
        c->failed = true;
        return;
    }
    if (gbnf && cJSON_IsString(gbnf) && gbnf->valuestring[0]) {
        *grammar = strdup(gbnf->valuestring);   /* checked when the sampler is made: a 400 */
        return;
    }
    if (gbnf && !cJSON_IsNull(gbnf) && !cJSON_IsString(gbnf)) {
        c->reply = reply_error(c->r, 400, "grammar", "'grammar' must be a string (GBNF)");
        c->failed = true;
        return;
    }
    if (schema && !cJSON_IsNull(schema)) {
        field_schema_grammar(c, "json_schema", schema, grammar);
        return;
    }
    if (!format || cJSON_IsNull(format)) return;
    const cJSON *type = cJSON_IsObject(format) ? cJSON_GetObjectItemCaseSensitive(format, "type") : NULL;
    if (!cJSON_IsString(type)) {
        c->reply = reply_error(c->r, 400, "response_format",
                               "'response_format' must be an object with a 'type': text, json_object or json_schema");
        c->failed = true;
    } else if (strcmp(type->valuestring, "text") == 0) {
        return;
    } else if (strcmp(type->valuestring, "json_object") == 0) {
        field_schema_grammar(c, "response_format", NULL, grammar);
    } else if (strcmp(type->valuestring, "json_schema") == 0) {
        const cJSON *wrapper = cJSON_GetObjectItemCaseSensitive(format, "json_schema");
        const cJSON *inner = cJSON_IsObject(wrapper) ? cJSON_GetObjectItemCaseSensitive(wrapper, "schema") : NULL;
        if (!inner) {
            c->reply = reply_error(c->r, 400, "response_format",
                                   "'response_format' of type json_schema needs json_schema.schema, the schema itself");
            c->failed = true;
            return;
        }
        field_schema_grammar(c, "response_format", inner, grammar);
    } else {
        c->reply = reply_error(c->r, 400, "response_format",
                               "'response_format' type '%s' is unknown: use text, json_object or json_schema",
                               type->valuestring);
        c->failed = true;
    }
}

static enum MHD_Result generate(request *r, bool chat)
{
    enum MHD_Result refused;
    if (refuse_under_pressure(r, &refused)) return refused;
    field_check c = { .r = r };
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body is required");
    const char *model_name = NULL, *prompt_text = NULL;
    hr_session_params params = hr_session_default_params();
    params.generate.max_tokens = chat ? 512 : 16;   /* OpenAI's completion default is 16 */
    params.queue_capacity = r->srv->config.queue_capacity;
    params.reader_timeout = r->srv->config.reader_timeout;
    params.client = chat ? "openai-chat" : "openai";
    bool stream = false, include_usage = false;
    int32_t n = 1;

    field_string(&c, r->json, "model", true, &model_name);
    if (!chat) field_string(&c, r->json, "prompt", true, &prompt_text);
    field_int(&c, r->json, "max_tokens", 1, r->srv->config.max_tokens_limit, &params.generate.max_tokens);
    if (chat)
        field_int(&c, r->json, "max_completion_tokens", 1, r->srv->config.max_tokens_limit, &params.generate.max_tokens);
    field_number(&c, r->json, "temperature", 0, 2, &params.generate.temperature);
    field_number(&c, r->json, "top_p", 1e-6, 1, &params.generate.top_p);
    field_u64(&c, r->json, "seed", &params.generate.seed);
    /* llama.cpp server's extensions, which clients written for it send */
    field_int(&c, r->json, "top_k", 0, 1 << 20, &params.generate.top_k);
    field_number(&c, r->json, "min_p", 0, 0.999, &params.generate.min_p);
    field_number(&c, r->json, "typical_p", 1e-6, 1, &params.generate.typical_p);
    field_number(&c, r->json, "repeat_penalty", 0.01, 100, &params.generate.repeat_penalty);
    field_int(&c, r->json, "repeat_last_n", 0, 1 << 20, &params.generate.repeat_last_n);
    field_number(&c, r->json, "presence_penalty", -2, 2, &params.generate.presence_penalty);
    field_number(&c, r->json, "frequency_penalty", -2, 2, &params.generate.frequency_penalty);
    hr_logit_bias biases[MAX_LOGIT_BIAS];
    field_logit_bias(&c, r->json, "logit_bias", biases, &params.generate.logit_bias_count);
    params.generate.logit_bias = biases;
    /* fields that would change the answer and are not implemented: refused, never dropped */
    read_logprobs(&c, r->json, chat, &params.generate);
    if (!chat) {
        field_refused(&c, r->json, "tools", "tool calls are for /v1/chat/completions");
        field_refused(&c, r->json, "tool_choice", "tool calls are for /v1/chat/completions");
    }
    /* the legacy forms of tools, which OpenAI replaced by tools and tool_choice */
    field_refused(&c, r->json, "functions", "function calls are not implemented");
    field_refused(&c, r->json, "function_call", "function calls are not implemented");
    if (!chat) {
        field_refused(&c, r->json, "echo", "echoing the prompt is not implemented");
        field_refused(&c, r->json, "suffix", "insertion (suffix) is not implemented");
        int32_t best_of = 1;
        field_int(&c, r->json, "best_of", 1, 1, &best_of);
    }
    field_bool(&c, r->json, "stream", &stream);
    field_int(&c, r->json, "n", 1, 1, &n);
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(r->json, "stream_options");
    if (cJSON_IsObject(options)) field_bool(&c, options, "include_usage", &include_usage);
    const char *stops[MAX_STOP_SEQUENCES];
    field_stop(&c, r->json, "stop", stops, &params.generate.stop_count);
    params.generate.stop = stops;
    char *grammar = NULL;
    read_structured_output(&c, r->json, &grammar);
    params.generate.grammar = grammar;
    tool_request tools = { 0 };
    if (chat && !c.failed && tools_read(&c, r->json, &tools) && tools.wanted && grammar) {
        c.reply = reply_error(r, 400, "response_format", "response_format and tools cannot go together: tool calls "
                              "have a grammar of their own");
        c.failed = true;
    }
    if (c.failed) {
        hr_free(grammar);
        tools_free(&tools);
        return c.reply;
    }

    server_model *entry = server_find_model(r->srv, model_name);
    if (!entry) {
        hr_free(grammar);
        tools_free(&tools);
        return reply_error(r, 404, "model", "model '%s' not found; GET /v1/models lists the models this server has",
                           model_name);
    }
    enum MHD_Result reply = MHD_NO;
    hr_model *model = server_use_model(r, entry, &reply);
    if (!model) {
        hr_free(grammar);
        tools_free(&tools);
        return reply;
    }

    /* with tools (or tool turns in the history), the model's own Jinja template renders the
     * conversation and the answer is read back into tool calls (api_tools.c) */
    hr_chat *tool_chat = NULL;
    if (tools.wanted) {
        bool made = tools_make_chat(&c, model, cJSON_GetObjectItemCaseSensitive(r->json, "messages"), &tools, &tool_chat);
        tools_free(&tools);
        if (!made) {
            server_release_model(r->srv, model, NAN);
            return c.reply;
        }
        params.generate.chat = tool_chat;
    }

    /* a conversation goes to the library as messages, so the template's control tokens are
     * parsed and the messages' text is not; a completion's prompt is read with control tokens,
     * as llama-server reads it (docs/api.md, special tokens) */
    struct conversation conversation = { 0 };
    if (chat && !tool_chat &&
        !chat_conversation(&c, model, cJSON_GetObjectItemCaseSensitive(r->json, "messages"), &conversation)) {
        free_conversation(&conversation);
        hr_free(grammar);
        server_release_model(r->srv, model, NAN);
        return c.failed ? c.reply : reply_error(r, 500, NULL, "out of memory");
    }
    params.generate.messages = conversation.list;
    params.generate.message_count = chat && !tool_chat ? (size_t)conversation.count : 0;
    params.generate.prompt_special = !chat;
    hr_session *session = NULL;
    int rc = hr_session_start(model, chat ? NULL : prompt_text, &params, &session);
    free_conversation(&conversation);
    hr_free(grammar);   /* the session has its copy */
    if (rc != HR_OK) {
        hr_chat_free(tool_chat);
        server_release_model(r->srv, model, NAN);
        return reply_library_error(r, rc);
    }

    struct openai_stream *state = calloc(1, sizeof *state);
    if (!state) {
        hr_session_free(session);
        hr_chat_free(tool_chat);
        server_release_model(r->srv, model, NAN);
        return reply_error(r, 500, NULL, "out of memory starting the reply");
    }
    snprintf(state->id, sizeof state->id, "%s-%lx", chat ? "chatcmpl" : "cmpl", atomic_fetch_add(&next_id, 1));
    state->created = (long)time(NULL);
    snprintf(state->model, sizeof state->model, "%s", entry->name);
    state->chat = chat;
    state->include_usage = include_usage;
    state->logprobs = params.generate.logprobs;
    state->top_logprobs = params.generate.top_logprobs;
    state->session = session;
    state->tool_chat = tool_chat;
    /* tool_choice none: the answer is content, passed on as it comes */
    state->parse_tools = tool_chat && hr_chat_has_tools(tool_chat);

    if (stream) {
        /* the model stays marked in use until the stream ends */
        return reply_stream(r, session, &sse_format, state, model, NAN);
    }

    char *text = NULL;
    hr_generation_stats stats;
    rc = read_whole_session(r, session, &text, &stats);
    state->session = session;
    cJSON *logprobs = rc == HR_OK && state->logprobs ? logprobs_json(state) : NULL;
    hr_session_free(session);
    server_release_model(r->srv, model, NAN);
    if (rc != HR_OK) {
        free(text);
        free_stream(state);
        cJSON_Delete(logprobs);
        return reply_library_error(r, rc);
    }
    cJSON *body = chunk_head(state);
    cJSON_ReplaceItemInObject(body, "object", cJSON_CreateString(chat ? "chat.completion" : "text_completion"));
    cJSON *choices = cJSON_AddArrayToObject(body, "choices");
    cJSON *choice = cJSON_CreateObject();
    cJSON_AddNumberToObject(choice, "index", 0);
    const char *reason = finish_reason(stats.stop_reason);
    if (chat) {
        cJSON *message = cJSON_AddObjectToObject(choice, "message");
        cJSON_AddStringToObject(message, "role", "assistant");
        if (state->parse_tools) {
            cJSON *parsed = tools_parse_answer(state->tool_chat, text, text ? strlen(text) : 0);
            const cJSON *calls = cJSON_GetObjectItem(parsed, "tool_calls");
            const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content"));
            /* OpenAI's answer with calls has content null where the model wrote none */
            if (content && (content[0] || cJSON_GetArraySize(calls) == 0))
                cJSON_AddStringToObject(message, "content", content);
            else cJSON_AddNullToObject(message, "content");
            if (cJSON_GetArraySize(calls) > 0) cJSON_AddItemToObject(message, "tool_calls", openai_tool_calls(calls, false));
            reason = tools_finish_reason(parsed, stats.stop_reason);
            cJSON_Delete(parsed);
        } else {
            cJSON_AddStringToObject(message, "content", text ? text : "");
        }
    } else {
        cJSON_AddStringToObject(choice, "text", text ? text : "");
    }
    if (logprobs) cJSON_AddItemToObject(choice, "logprobs", logprobs);
    else cJSON_AddNullToObject(choice, "logprobs");
    cJSON_AddStringToObject(choice, "finish_reason", reason);
    cJSON_AddItemToArray(choices, choice);
    cJSON_AddItemToObject(body, "usage", usage_json(&stats));
    free(text);
    free_stream(state);
    return reply_json(r, 200, body);
}

/* POST /v1/embeddings: input a string or an array of strings, encoding_format float or base64;
 * the vectors are normalized to length 1, as OpenAI's are. */
static enum MHD_Result embeddings(request *r)
{
    enum MHD_Result refused;
    if (refuse_under_pressure(r, &refused)) return refused;
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body is required");
    field_check c = { .r = r };
    const char *model_name = NULL, *encoding = "float";
    int count = 0;
    int32_t dimensions = 0;
    field_string(&c, r->json, "model", true, &model_name);
    embed_check_input(&c, r->json, "input", true, &count);
    field_string(&c, r->json, "encoding_format", false, &encoding);
    field_int(&c, r->json, "dimensions", 1, 1 << 20, &dimensions);
    if (!c.failed && !encoding) encoding = "float";
    if (!c.failed && strcmp(encoding, "float") != 0 && strcmp(encoding, "base64") != 0)
        return reply_error(r, 400, "encoding_format", "'encoding_format' must be \"float\" or \"base64\"");
    if (c.failed) return c.reply;
    server_model *entry = server_find_model(r->srv, model_name);
    if (!entry)
        return reply_error(r, 404, "model", "model '%s' not found; GET /v1/models lists the models this server has",
                           model_name);
    enum MHD_Result reply = MHD_NO;
    hr_model *model = server_use_model(r, entry, &reply);
    if (!model) return reply;
    hr_model_info info;
    hr_model_get_info(model, &info);
    if (dimensions != 0 && dimensions != info.n_embd) {
        server_release_model(r->srv, model, NAN);
        return reply_error(r, 400, "dimensions", "'dimensions' %d is not this model's: its embeddings have %d "
                           "(shortening them is not supported); leave it out", dimensions, info.n_embd);
    }
    embed_batch batch;
    int rc = embed_inputs(model, r->json, "input", true, false, &batch);
    server_release_model(r->srv, model, NAN);
    if (rc != HR_OK) {
        embed_batch_free(&batch);
        return reply_library_error(r, rc);
    }
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(body, "data");
    for (int i = 0; i < batch.count; i++) {
        cJSON *item = cJSON_CreateObject();
        cJSON_AddStringToObject(item, "object", "embedding");
        cJSON_AddNumberToObject(item, "index", i);
        const float *vector = batch.vectors + (size_t)i * (size_t)batch.dimensions;
        if (strcmp(encoding, "base64") == 0) {
            char *text = embed_vector_base64(vector, batch.dimensions);
            cJSON_AddStringToObject(item, "embedding", text ? text : "");
            free(text);
        } else {
            cJSON_AddItemToObject(item, "embedding", embed_vector_json(vector, batch.dimensions));
        }
        cJSON_AddItemToArray(data, item);
    }
    cJSON_AddStringToObject(body, "model", entry->name);
    cJSON *usage = cJSON_AddObjectToObject(body, "usage");
    cJSON_AddNumberToObject(usage, "prompt_tokens", batch.tokens);
    cJSON_AddNumberToObject(usage, "total_tokens", batch.tokens);
    embed_batch_free(&batch);
    return reply_json(r, 200, body);
}

static enum MHD_Result list_models(request *r)
{
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "object", "list");
    cJSON *data = cJSON_AddArrayToObject(body, "data");
    for (int i = 0; i < r->srv->n_models; i++) {
        cJSON *model = cJSON_CreateObject();
        cJSON_AddStringToObject(model, "id", r->srv->models[i].name);
        cJSON_AddStringToObject(model, "object", "model");
        cJSON_AddNumberToObject(model, "created", (double)(long)r->srv->started_at);
        cJSON_AddStringToObject(model, "owned_by", "headroom");
        cJSON_AddItemToArray(data, model);
    }
    return reply_json(r, 200, body);
}

/* GET /v1/models/{id}: one model of the catalogue, in the list's shape. */
static enum MHD_Result get_model(request *r, const char *id)
{
    server_model *entry = server_find_model(r->srv, id);
    if (!entry)
        return reply_error(r, 404, "model", "model '%s' not found; GET /v1/models lists the models this server has", id);
    cJSON *model = cJSON_CreateObject();
    cJSON_AddStringToObject(model, "id", entry->name);
    cJSON_AddStringToObject(model, "object", "model");
    cJSON_AddNumberToObject(model, "created", (double)(long)r->srv->started_at);
    cJSON_AddStringToObject(model, "owned_by", "headroom");
    return reply_json(r, 200, model);
}

bool api_openai(request *r, enum MHD_Result *reply)
{
    if (strncmp(r->path, "/v1/", 4) != 0) return false;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    const char *model_id = strncmp(r->path, "/v1/models/", 11) == 0 && r->path[11] ? r->path + 11 : NULL;
    if (model_id && get) *reply = get_model(r, model_id);
    else if (model_id) *reply = reply_method_not_allowed(r, "GET");
    else if (strcmp(r->path, "/v1/models") == 0 && get) *reply = list_models(r);
    else if (strcmp(r->path, "/v1/completions") == 0 && post) *reply = generate(r, false);
    else if (strcmp(r->path, "/v1/chat/completions") == 0 && post) *reply = generate(r, true);
    else if (strcmp(r->path, "/v1/embeddings") == 0 && post) *reply = embeddings(r);
    else if (strcmp(r->path, "/v1/models") == 0) *reply = reply_method_not_allowed(r, "GET");
    else if (strcmp(r->path, "/v1/completions") == 0 || strcmp(r->path, "/v1/chat/completions") == 0 ||
             strcmp(r->path, "/v1/embeddings") == 0)
        *reply = reply_method_not_allowed(r, "POST");
    else return false;
    return true;
}
