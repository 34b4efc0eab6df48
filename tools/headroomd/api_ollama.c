/*
 * api_ollama.c: the Ollama-compatible API: POST /api/generate and /api/chat (NDJSON streams by
 * default, as Ollama), GET /api/tags, GET /api/ps (size, size_vram, expires_at), GET
 * /api/version, and keep_alive on requests (a duration; 0 unloads after the request; negative
 * keeps the model loaded).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

/* RFC 3339 with nanoseconds, in UTC, as Ollama writes times. */
static void rfc3339(double seconds, char *out, size_t size)
{
    /* a time outside years 1970 to 9999 has no RFC 3339 form, and its cast would be undefined */
    if (!(seconds >= 0)) seconds = 0;
    if (seconds > 253402300799.0) seconds = 253402300799.0;
    time_t whole = (time_t)seconds;
    struct tm utc;
    gmtime_r(&whole, &utc);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &utc);
    snprintf(out, size, "%s.%09ldZ", date, (long)((seconds - (double)whole) * 1e9));
}

struct ollama_stream {
    char model[256];
    bool chat;
    double load_seconds;   /* acquiring the model: its load, or nearly nothing when it was loaded */
    /* a chat with tools (api_tools.c): content sent as the parse becomes sure of it, the calls
     * in one line at the end */
    hr_chat *tool_chat;    /* owned; freed after the session that used it */
    bool parse_tools;
    char *answer;
    size_t answer_length;
    size_t content_sent;
};

static void free_stream(void *state)
{
    struct ollama_stream *s = state;
    if (!s) return;
    hr_chat_free(s->tool_chat);
    free(s->answer);
    free(s);
}

/* Ollama's tool_calls: [{"function": {"name", "arguments": an object}}]. */
static cJSON *ollama_tool_calls(const cJSON *calls)
{
    cJSON *list = cJSON_CreateArray();
    const cJSON *call;
    cJSON_ArrayForEach(call, calls) {
        cJSON *item = cJSON_CreateObject();
        cJSON *function = cJSON_AddObjectToObject(item, "function");
        cJSON_AddStringToObject(function, "name", cJSON_GetStringValue(cJSON_GetObjectItem(call, "name")));
        cJSON *arguments = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItem(call, "arguments")));
        cJSON_AddItemToObject(function, "arguments", arguments ? arguments : cJSON_CreateObject());
        cJSON_AddItemToArray(list, item);
    }
    return list;
}

static cJSON *line_head(const struct ollama_stream *s)
{
    cJSON *line = cJSON_CreateObject();
    char now[64];
    rfc3339(wall_seconds(), now, sizeof now);
    cJSON_AddStringToObject(line, "model", s->model);
    cJSON_AddStringToObject(line, "created_at", now);
    return line;
}

static void add_text(const struct ollama_stream *s, cJSON *line, const char *text, size_t length)
{
    char *copy = strndup(text, length);
    if (s->chat) {
        cJSON *message = cJSON_AddObjectToObject(line, "message");
        cJSON_AddStringToObject(message, "role", "assistant");
        cJSON_AddStringToObject(message, "content", copy ? copy : "");
    } else {
        cJSON_AddStringToObject(line, "response", copy ? copy : "");
    }
    free(copy);
}

static void add_stats(cJSON *line, const hr_generation_stats *stats, double load_seconds)
{
    cJSON_AddStringToObject(line, "done_reason", stats->stop_reason == HR_STOP_END_OF_TEXT || stats->stop_reason == HR_STOP_SEQUENCE ? "stop" : "length");
    /* as Ollama's: the whole request, the load included */
    cJSON_AddNumberToObject(line, "total_duration", (double)llround((stats->total_seconds + load_seconds) * 1e9));
    cJSON_AddNumberToObject(line, "load_duration", (double)llround(load_seconds * 1e9));
    cJSON_AddNumberToObject(line, "prompt_eval_count", stats->prompt_tokens);
    cJSON_AddNumberToObject(line, "prompt_eval_duration", (double)llround(stats->prompt_seconds * 1e9));
    cJSON_AddNumberToObject(line, "eval_count", stats->generated_tokens);
    cJSON_AddNumberToObject(line, "eval_duration", (double)llround(stats->decode_seconds * 1e9));
}

static void content_line(const struct ollama_stream *s, const char *text, size_t length, char **out, size_t *out_length)
{
    cJSON *line = line_head(s);
    add_text(s, line, text, length);
    cJSON_AddBoolToObject(line, "done", false);
    append_json_line(out, out_length, "", line, "\n");
}

/* What the parse of the text so far is sure of, beyond what was sent; at the end (`final`) the
 * rest, then the calls in one line. */
static void tools_lines(struct ollama_stream *s, bool final, char **out, size_t *out_length)
{
    cJSON *parsed = final ? tools_parse_answer(s->tool_chat, s->answer, s->answer_length)
                          : tools_parse(s->tool_chat, s->answer, s->answer_length, true);
    const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content"));
    size_t content_length = content ? strlen(content) : 0;
    if (content && content_length > s->content_sent) {
        content_line(s, content + s->content_sent, content_length - s->content_sent, out, out_length);
        s->content_sent = content_length;
    }
    const cJSON *calls = cJSON_GetObjectItem(parsed, "tool_calls");
    if (final && cJSON_GetArraySize(calls) > 0) {
        cJSON *line = line_head(s);
        add_text(s, line, "", 0);
        cJSON_AddItemToObject(cJSON_GetObjectItem(line, "message"), "tool_calls", ollama_tool_calls(calls));
        cJSON_AddBoolToObject(line, "done", false);
        append_json_line(out, out_length, "", line, "\n");
    }
    cJSON_Delete(parsed);
}

static void ndjson_piece(void *state, const char *piece, size_t length, cJSON_bool first, char **out, size_t *out_length)
{
    (void)first;
    struct ollama_stream *s = state;
    if (s->parse_tools) {
        append(&s->answer, &s->answer_length, piece, length);
        tools_lines(s, false, out, out_length);
        return;
    }
    cJSON *line = line_head(s);
    add_text(s, line, piece, length);
    cJSON_AddBoolToObject(line, "done", false);
    append_json_line(out, out_length, "", line, "\n");
}

static void ndjson_finish(void *state, int result, const char *message, const hr_generation_stats *stats,
                          char **out, size_t *out_length)
{
    struct ollama_stream *s = state;
    cJSON *line;
    if (result == HR_OK) {
        if (s->parse_tools) tools_lines(s, true, out, out_length);
        line = line_head(s);
        add_text(s, line, "", 0);
        cJSON_AddBoolToObject(line, "done", true);
        add_stats(line, stats, s->load_seconds);
    } else {
        line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "error", message && message[0] ? message : hr_strerror(result));
    }
    append_json_line(out, out_length, "", line, "\n");
}

static const stream_format ndjson_format = {
    .content_type = "application/x-ndjson",
    .piece = ndjson_piece,
    .finish = ndjson_finish,
    .keep_alive = NULL,   /* NDJSON has no comments: hang-ups are noticed on the socket instead */
    .free_state = free_stream,
};

/* options{} and the top-level fields Ollama clients send. */
static void read_options(field_check *c, const cJSON *json, hr_session_params *params, const char **stops)
{
    const cJSON *options = cJSON_GetObjectItemCaseSensitive(json, "options");
    if (options && !cJSON_IsNull(options) && !cJSON_IsObject(options)) {
        c->reply = reply_error(c->r, 400, "options", "'options' must be an object");
        c->failed = true;
        return;
    }
    if (!options) return;
    field_int(c, options, "num_predict", -2, c->r->srv->config.max_tokens_limit, &params->generate.max_tokens);
    /* Ollama: -1 is "until the context is full", -2 "fill the context"; both mean the limit here */
    if (params->generate.max_tokens < 0) params->generate.max_tokens = c->r->srv->config.max_tokens_limit;
    if (params->generate.max_tokens == 0) params->generate.max_tokens = 128;
    field_number(c, options, "temperature", 0, 100, &params->generate.temperature);
    field_number(c, options, "top_p", 1e-6, 1, &params->generate.top_p);
    field_number(c, options, "min_p", 0, 0.999, &params->generate.min_p);
    field_int(c, options, "top_k", 0, 1 << 20, &params->generate.top_k);
    field_u64(c, options, "seed", &params->generate.seed);
    field_stop(c, options, "stop", stops, &params->generate.stop_count);
    field_number(c, options, "typical_p", 1e-6, 1, &params->generate.typical_p);
    field_number(c, options, "repeat_penalty", 0.01, 100, &params->generate.repeat_penalty);
    field_int(c, options, "repeat_last_n", -1, 1 << 20, &params->generate.repeat_last_n);
    /* Ollama: -1 looks back over the whole context; the penalties see the generated tokens */
    if (params->generate.repeat_last_n < 0) params->generate.repeat_last_n = params->generate.max_tokens;
    field_number(c, options, "presence_penalty", -2, 2, &params->generate.presence_penalty);
    field_number(c, options, "frequency_penalty", -2, 2, &params->generate.frequency_penalty);
    field_int(c, options, "mirostat", 0, 2, &params->generate.mirostat);
    field_number(c, options, "mirostat_tau", 0, 100, &params->generate.mirostat_tau);
    field_number(c, options, "mirostat_eta", 0, 10, &params->generate.mirostat_eta);
    params->generate.stop = stops;
}

static bool read_keep_alive(field_check *c, const cJSON *json, double *keep_alive)
{
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(json, "keep_alive");
    if (!value || cJSON_IsNull(value)) return true;
    if (!parse_duration(value, keep_alive)) {
        c->reply = reply_error(c->r, 400, "keep_alive", "'keep_alive' must be a duration such as \"5m\", \"1h\", 0 or -1 (never), at most 100 years");
        c->failed = true;
        return false;
    }
    return true;
}

/* Ollama's messages in OpenAI's shape for hr_chat: a call's type, a tool result's tool_name as
 * name; arguments may stay objects. A copy the caller deletes; NULL after replying 400. */
static cJSON *openai_messages(field_check *c, const cJSON *messages)
{
    cJSON *copy = cJSON_Duplicate(messages, true);
    int i = 0;
    cJSON *message;
    cJSON_ArrayForEach(message, copy) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
        cJSON *calls = cJSON_GetObjectItemCaseSensitive(message, "tool_calls");
        if (!cJSON_IsString(role) || (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) ||
            (!content && cJSON_GetArraySize(calls) == 0) || (calls && !cJSON_IsArray(calls))) {
            cJSON_Delete(copy);
            c->reply = reply_error(c->r, 400, "messages", "messages[%d] needs a string role and a string content "
                                   "(or tool_calls, an array)", i);
            c->failed = true;
            return NULL;
        }
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(message, "images")) > 0) {
            cJSON_Delete(copy);
            c->reply = reply_error(c->r, 400, "messages", "messages[%d]: images are not supported", i);
            c->failed = true;
            return NULL;
        }
        cJSON *call;
        cJSON_ArrayForEach(call, calls)
            if (cJSON_IsObject(call) && !cJSON_GetObjectItemCaseSensitive(call, "type"))
                cJSON_AddStringToObject(call, "type", "function");
        const cJSON *tool_name = cJSON_GetObjectItemCaseSensitive(message, "tool_name");
        if (cJSON_IsString(tool_name) && !cJSON_GetObjectItemCaseSensitive(message, "name"))
            cJSON_AddStringToObject(message, "name", tool_name->valuestring);
        i++;
    }
    return copy;
}

/* The conversation of Ollama's messages (the strings borrowed from the request), checked against
 * the model's chat template so that a template error is a reply, not a broken stream; NULL after
 * replying on bad input. */
static hr_chat_message *chat_messages(field_check *c, hr_model *model, const cJSON *messages, size_t *count_out)
{
    if (!cJSON_IsArray(messages)) {
        c->reply = reply_error(c->r, 400, "messages", "'messages' must be an array");
        c->failed = true;
        return NULL;
    }
    int count = cJSON_GetArraySize(messages);
    hr_chat_message *list = calloc((size_t)(count ? count : 1), sizeof *list);
    if (!list) return NULL;   /* the caller answers 500, out of memory */
    int i = 0;
    const cJSON *message;
    cJSON_ArrayForEach(message, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
            free(list);
            c->reply = reply_error(c->r, 400, "messages", "messages[%d] needs a string role and a string content", i);
            c->failed = true;
            return NULL;
        }
        const cJSON *images = cJSON_GetObjectItemCaseSensitive(message, "images");
        const cJSON *tool_calls = cJSON_GetObjectItemCaseSensitive(message, "tool_calls");
        if ((images && cJSON_GetArraySize(images) > 0) || (tool_calls && cJSON_GetArraySize(tool_calls) > 0)) {
            free(list);
            c->reply = reply_error(c->r, 400, "messages", "messages[%d]: %s not supported", i,
                                   images && cJSON_GetArraySize(images) > 0 ? "images are" : "tool calls are");
            c->failed = true;
            return NULL;
        }
        list[i].role = role->valuestring;
        list[i].content = content->valuestring;
        i++;
    }
    char *prompt = NULL;
    int rc = hr_model_apply_chat_template(model, list, (size_t)count, true, &prompt);
    hr_free(prompt);
    if (rc != HR_OK) {
        free(list);
        c->reply = reply_library_error(c->r, rc);
        c->failed = true;
        return NULL;
    }
    *count_out = (size_t)count;
    return list;
}

static enum MHD_Result generate(request *r, bool chat)
{
    enum MHD_Result refused;
    if (refuse_under_pressure(r, &refused)) return refused;
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body is required");
    field_check c = { .r = r };
    const char *model_name = NULL, *prompt_text = NULL, *system = NULL;
    bool stream = true, raw = false;
    double keep_alive = NAN;
    hr_session_params params = hr_session_default_params();
    params.queue_capacity = r->srv->config.queue_capacity;
    params.reader_timeout = r->srv->config.reader_timeout;
    params.client = chat ? "ollama-chat" : "ollama";
    field_string(&c, r->json, "model", true, &model_name);
    if (!chat) field_string(&c, r->json, "prompt", false, &prompt_text);
    field_string(&c, r->json, "system", false, &system);
    field_bool(&c, r->json, "stream", &stream);
    field_bool(&c, r->json, "raw", &raw);
    const char *stops[MAX_STOP_SEQUENCES];
    read_options(&c, r->json, &params, stops);
    read_keep_alive(&c, r->json, &keep_alive);
    /* fields that would change the answer and are not implemented: refused, never dropped */
    tool_request tools = { 0 };
    if (!chat) field_refused(&c, r->json, "tools", "tool calls are for /api/chat");
    else if (!c.failed) tools_read(&c, r->json, &tools);
    field_refused(&c, r->json, "images", "images are not supported");
    field_refused(&c, r->json, "suffix", "insertion (suffix) is not implemented");
    /* format: "json" (any JSON object) or a JSON schema; "" or null: free text */
    char *grammar = NULL;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(r->json, "format");
    bool free_text = !format || cJSON_IsNull(format) || (cJSON_IsString(format) && !format->valuestring[0]);
    if (c.failed || free_text) {
        /* nothing to constrain */
    } else if (cJSON_IsString(format) && strcmp(format->valuestring, "json") == 0) {
        field_schema_grammar(&c, "format", NULL, &grammar);
    } else if (cJSON_IsObject(format)) {
        field_schema_grammar(&c, "format", format, &grammar);
    } else {
        c.reply = reply_error(r, 400, "format", "'format' must be \"json\" or a JSON schema (an object)");
        c.failed = true;
    }
    params.generate.grammar = grammar;
    if (!c.failed && tools.wanted && grammar) {
        c.reply = reply_error(r, 400, "format", "'format' and tools cannot go together: tool calls have a grammar "
                              "of their own");
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
        return reply_error(r, 404, "model", "model '%s' not found; GET /api/tags lists the models", model_name);
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(r->json, "messages");
    if (chat && messages && !cJSON_IsNull(messages) && !cJSON_IsArray(messages)) {
        hr_free(grammar);
        tools_free(&tools);
        return reply_error(r, 400, "messages", "'messages' must be an array");
    }
    bool nothing_to_do = chat ? (!messages || cJSON_GetArraySize(messages) == 0) : (!prompt_text || !prompt_text[0]);
    if (nothing_to_do) tools_free(&tools);   /* a load or an unload: no conversation to render */
    if (nothing_to_do && !isnan(keep_alive) && keep_alive == 0) {
        /* Ollama's unload: never load a model only to unload it. In use, it goes when its last
         * request ends (the release with keep_alive 0 below). */
        int unloaded = hr_registry_unload(r->srv->ctx, entry->name, false);
        if (unloaded != HR_EBUSY) hr_free(grammar);   /* an empty request: nothing to constrain */
        if (unloaded == HR_OK) {
            struct ollama_stream head = { .chat = chat };
            snprintf(head.model, sizeof head.model, "%s", entry->name);
            cJSON *line = line_head(&head);
            add_text(&head, line, "", 0);
            cJSON_AddBoolToObject(line, "done", true);
            cJSON_AddStringToObject(line, "done_reason", "unload");
            return reply_json(r, 200, line);
        }
        if (unloaded != HR_EBUSY) return reply_library_error(r, unloaded == HR_ENOENT ? HR_EIO : unloaded);
    }
    enum MHD_Result reply = MHD_NO;
    double acquiring = wall_seconds();
    hr_model *model = server_use_model(r, entry, &reply);
    if (!model) {
        hr_free(grammar);
        tools_free(&tools);
        return reply;
    }
    double load_seconds = wall_seconds() - acquiring;

    if (nothing_to_do) {
        /* Ollama's way to load (or, with keep_alive 0, unload) a model: an empty request */
        struct ollama_stream head = { .chat = chat };
        snprintf(head.model, sizeof head.model, "%s", entry->name);
        cJSON *line = line_head(&head);
        add_text(&head, line, "", 0);
        cJSON_AddBoolToObject(line, "done", true);
        bool unload = !isnan(keep_alive) && keep_alive == 0;
        cJSON_AddStringToObject(line, "done_reason", unload ? "unload" : "load");
        hr_free(grammar);
        server_release_model(r->srv, model, keep_alive);
        return reply_json(r, 200, line);
    }

    /* a conversation goes to the library as messages, so the template's control tokens are
     * parsed and the messages' text is not (docs/api.md, special tokens) */
    hr_chat_message system_turn[2] = { { "system", system }, { "user", prompt_text } };
    hr_chat_message *list = NULL;
    size_t count = 0;
    hr_chat *tool_chat = NULL;
    if (chat && tools.wanted) {
        /* with tools (or tool turns), the model's own Jinja template renders it (api_tools.c) */
        cJSON *converted = openai_messages(&c, messages);
        if (converted) tools_make_chat(&c, model, converted, &tools, &tool_chat);
        cJSON_Delete(converted);
        params.generate.chat = tool_chat;
    } else if (chat) {
        list = chat_messages(&c, model, messages, &count);
    } else if (!raw && system) {
        count = 2;
        char *checked = NULL;
        int rc = hr_model_apply_chat_template(model, system_turn, 2, true, &checked);
        hr_free(checked);
        if (rc != HR_OK) {
            c.reply = reply_library_error(r, rc);
            c.failed = true;
        }
    }
    tools_free(&tools);
    if (c.failed || (chat && !list && !tool_chat)) {
        hr_free(grammar);
        hr_chat_free(tool_chat);
        server_release_model(r->srv, model, keep_alive);
        return c.failed ? c.reply : reply_error(r, 500, NULL, "out of memory");
    }
    params.generate.messages = chat ? list : count ? system_turn : NULL;
    params.generate.message_count = count;
    params.generate.prompt_special = raw;   /* a raw prompt carries the template's tokens itself */
    hr_session *session = NULL;
    int rc = hr_session_start(model, count || tool_chat ? NULL : prompt_text, &params, &session);
    free(list);
    hr_free(grammar);   /* the session has its copy */
    if (rc != HR_OK) {
        hr_chat_free(tool_chat);
        server_release_model(r->srv, model, keep_alive);
        return reply_library_error(r, rc);
    }
    struct ollama_stream *state = calloc(1, sizeof *state);
    if (!state) {
        hr_session_free(session);
        hr_chat_free(tool_chat);
        server_release_model(r->srv, model, keep_alive);
        return reply_error(r, 500, NULL, "out of memory starting the reply");
    }
    snprintf(state->model, sizeof state->model, "%s", entry->name);
    state->chat = chat;
    state->load_seconds = load_seconds;
    state->tool_chat = tool_chat;
    state->parse_tools = tool_chat && hr_chat_has_tools(tool_chat);
    if (stream) return reply_stream(r, session, &ndjson_format, state, model, keep_alive);

    char *text = NULL;
    hr_generation_stats stats;
    rc = read_whole_session(r, session, &text, &stats);
    hr_session_free(session);
    server_release_model(r->srv, model, keep_alive);
    if (rc != HR_OK) {
        free(text);
        free_stream(state);
        return reply_library_error(r, rc);
    }
    cJSON *body = line_head(state);
    if (state->parse_tools) {
        cJSON *parsed = tools_parse_answer(state->tool_chat, text, text ? strlen(text) : 0);
        const char *content = cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content"));
        add_text(state, body, content ? content : "", content ? strlen(content) : 0);
        const cJSON *calls = cJSON_GetObjectItem(parsed, "tool_calls");
        if (cJSON_GetArraySize(calls) > 0)
            cJSON_AddItemToObject(cJSON_GetObjectItem(body, "message"), "tool_calls", ollama_tool_calls(calls));
        cJSON_Delete(parsed);
    } else {
        add_text(state, body, text ? text : "", text ? strlen(text) : 0);
    }
    cJSON_AddBoolToObject(body, "done", true);
    add_stats(body, &stats, state->load_seconds);
    free(text);
    free_stream(state);
    return reply_json(r, 200, body);
}

/* Ollama's details, from the file's GGUF header (read when the catalogue was made). */
static cJSON *details(const server_model *m)
{
    cJSON *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "parent_model", "");
    cJSON_AddStringToObject(d, "format", "gguf");
    cJSON_AddStringToObject(d, "family", m->family);
    cJSON *families = cJSON_AddArrayToObject(d, "families");
    cJSON_AddItemToArray(families, cJSON_CreateString(m->family));
    cJSON_AddStringToObject(d, "parameter_size", m->parameter_size);
    cJSON_AddStringToObject(d, "quantization_level", m->quantization_level);
    return d;
}

/* Ollama's parameters text: the sampling this server applies when a request sets none. */
static void append_parameters(char *out, size_t size, int32_t n_ctx)
{
    hr_generate_params defaults = hr_generate_default_params();
    snprintf(out, size,
             "num_ctx %d\nnum_predict %d\ntemperature %g\ntop_k %d\ntop_p %g\nmin_p %g\nseed %llu\n"
             "repeat_penalty %g\nrepeat_last_n %d",
             n_ctx, defaults.max_tokens, defaults.temperature,
             defaults.top_k, defaults.top_p, defaults.min_p, (unsigned long long)defaults.seed,
             defaults.repeat_penalty, defaults.repeat_last_n);
}

/* POST /api/show: what editors and web UIs read to learn a model: its template, parameters,
 * details and the GGUF header's facts (model_info), without loading it. */
static enum MHD_Result show(request *r)
{
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body is required");
    field_check c = { .r = r };
    const char *model_name = NULL, *alias = NULL;
    bool verbose = false;
    field_string(&c, r->json, "model", false, &model_name);
    field_string(&c, r->json, "name", false, &alias);   /* Ollama's older field */
    field_bool(&c, r->json, "verbose", &verbose);
    if (c.failed) return c.reply;
    if (!model_name) model_name = alias;
    if (!model_name) return reply_error(r, 400, "model", "'model' is required");
    server_model *entry = server_find_model(r->srv, model_name);
    if (!entry) return reply_error(r, 404, "model", "model '%s' not found; GET /api/tags lists the models", model_name);
    char *text = NULL;
    int rc = hr_model_file_metadata(entry->path, &text);
    if (rc != HR_OK) return reply_library_error(r, rc);
    cJSON *info = cJSON_Parse(text);
    hr_free(text);
    if (!info) return reply_library_error(r, HR_ENOMEM);
    const cJSON *template = cJSON_GetObjectItemCaseSensitive(info, "tokenizer.chat_template");
    const char *template_text = cJSON_IsString(template) ? template->valuestring : "";

    cJSON *body = cJSON_CreateObject();
    /* the window a load gets: --ctx, else the trained length up to 4096 (the library's rule) */
    int32_t n_ctx = r->srv->config.ctx_size;
    const cJSON *architecture = cJSON_GetObjectItemCaseSensitive(info, "general.architecture");
    if (n_ctx <= 0 && cJSON_IsString(architecture)) {
        char key[160];
        snprintf(key, sizeof key, "%.120s.context_length", architecture->valuestring);
        const cJSON *trained = cJSON_GetObjectItemCaseSensitive(info, key);
        n_ctx = cJSON_IsNumber(trained) && trained->valuedouble > 0 && trained->valuedouble < 4096
                    ? (int32_t)trained->valuedouble : 4096;
    }
    char parameters[512];
    append_parameters(parameters, sizeof parameters, n_ctx);
    size_t modelfile_size = strlen(entry->path) + strlen(template_text) + strlen(parameters) * 2 + 256;
    char *modelfile = malloc(modelfile_size);
    if (modelfile) {
        size_t used = (size_t)snprintf(modelfile, modelfile_size, "# Modelfile generated by headroomd\nFROM %s\n", entry->path);
        if (template_text[0])
            used += (size_t)snprintf(modelfile + used, modelfile_size - used, "TEMPLATE \"\"\"%s\"\"\"\n", template_text);
        for (const char *line = parameters; *line && used < modelfile_size;) {
            size_t length = strcspn(line, "\n");
            used += (size_t)snprintf(modelfile + used, modelfile_size - used, "PARAMETER %.*s\n", (int)length, line);
            line += length + (line[length] == '\n');
        }
    }
    cJSON_AddStringToObject(body, "modelfile", modelfile ? modelfile : "");
    free(modelfile);
    cJSON_AddStringToObject(body, "parameters", parameters);
    cJSON_AddStringToObject(body, "template", template_text);
    cJSON_AddItemToObject(body, "details", details(entry));
    /* the GGUF keys, headroom's own taken out; arrays are null as in Ollama's non-verbose reply */
    cJSON_DeleteItemFromObjectCaseSensitive(info, "headroom.quantization_level");
    (void)verbose;
    cJSON_AddItemToObject(body, "model_info", info);
    cJSON *capabilities = cJSON_AddArrayToObject(body, "capabilities");
    cJSON_AddItemToArray(capabilities, cJSON_CreateString("completion"));
    cJSON_AddItemToArray(capabilities, cJSON_CreateString("embedding"));
    char modified[64];
    rfc3339(r->srv->started_at, modified, sizeof modified);
    cJSON_AddStringToObject(body, "modified_at", modified);
    return reply_json(r, 200, body);
}

static enum MHD_Result tags(request *r)
{
    cJSON *body = cJSON_CreateObject();
    cJSON *models = cJSON_AddArrayToObject(body, "models");
    for (int i = 0; i < r->srv->n_models; i++) {
        const server_model *m = &r->srv->models[i];
        cJSON *model = cJSON_CreateObject();
        char modified[64];
        rfc3339(r->srv->started_at, modified, sizeof modified);
        cJSON_AddStringToObject(model, "name", m->name);
        cJSON_AddStringToObject(model, "model", m->name);
        cJSON_AddStringToObject(model, "modified_at", modified);
        cJSON_AddNumberToObject(model, "size", (double)m->file_bytes);
        cJSON_AddStringToObject(model, "digest", "");
        cJSON_AddItemToObject(model, "details", details(m));
        cJSON_AddItemToArray(models, model);
    }
    return reply_json(r, 200, body);
}

/* POST /api/embed (input a string or an array; normalized vectors in `embeddings`) and the older
 * POST /api/embeddings (prompt a string; the vector as the model gives it, in `embedding`). */
static enum MHD_Result embed(request *r, bool legacy)
{
    enum MHD_Result refused;
    if (refuse_under_pressure(r, &refused)) return refused;
    if (!r->json) return reply_error(r, 400, NULL, "a JSON body is required");
    field_check c = { .r = r };
    const char *model_name = NULL;
    double keep_alive = NAN;
    int count = 0;
    bool truncate = true;
    field_string(&c, r->json, "model", true, &model_name);
    if (legacy) {
        const char *prompt = NULL;
        field_string(&c, r->json, "prompt", true, &prompt);
    } else {
        embed_check_input(&c, r->json, "input", true, &count);
        field_bool(&c, r->json, "truncate", &truncate);
    }
    read_keep_alive(&c, r->json, &keep_alive);
    if (c.failed) return c.reply;
    server_model *entry = server_find_model(r->srv, model_name);
    if (!entry) return reply_error(r, 404, "model", "model '%s' not found; GET /api/tags lists the models", model_name);
    double started = wall_seconds();
    enum MHD_Result reply = MHD_NO;
    hr_model *model = server_use_model(r, entry, &reply);
    if (!model) return reply;
    double loaded = wall_seconds();
    embed_batch batch;
    int rc = embed_inputs(model, r->json, legacy ? "prompt" : "input", !legacy, truncate, &batch);
    server_release_model(r->srv, model, keep_alive);
    if (rc != HR_OK) {
        embed_batch_free(&batch);
        return reply_library_error(r, rc);
    }
    cJSON *body = cJSON_CreateObject();
    if (legacy) {
        cJSON_AddItemToObject(body, "embedding", embed_vector_json(batch.vectors, batch.dimensions));
    } else {
        cJSON_AddStringToObject(body, "model", entry->name);
        cJSON *list = cJSON_AddArrayToObject(body, "embeddings");
        for (int i = 0; i < batch.count; i++)
            cJSON_AddItemToArray(list, embed_vector_json(batch.vectors + (size_t)i * (size_t)batch.dimensions,
                                                         batch.dimensions));
        cJSON_AddNumberToObject(body, "total_duration", (double)(int64_t)((wall_seconds() - started) * 1e9));
        cJSON_AddNumberToObject(body, "load_duration", (double)(int64_t)((loaded - started) * 1e9));
        cJSON_AddNumberToObject(body, "prompt_eval_count", batch.tokens);
    }
    embed_batch_free(&batch);
    return reply_json(r, 200, body);
}

static enum MHD_Result running(request *r)
{
    hr_registry_entry *list = NULL;
    size_t n = 0;
    if (hr_registry_list(r->srv->ctx, &list, &n) != HR_OK) return reply_library_error(r, HR_ENOMEM);
    cJSON *body = cJSON_CreateObject();
    cJSON *models = cJSON_AddArrayToObject(body, "models");
    for (size_t i = n; i-- > 0;) {   /* most recently used first, as Ollama lists them */
        const hr_registry_entry *e = &list[i];
        if (e->state != HR_MODEL_READY && e->state != HR_MODEL_BUSY) continue;
        cJSON *model = cJSON_CreateObject();
        cJSON_AddStringToObject(model, "name", e->name);
        cJSON_AddStringToObject(model, "model", e->name);
        cJSON_AddNumberToObject(model, "size", (double)e->weight_bytes);
        cJSON_AddNumberToObject(model, "size_vram", 0);   /* CPU engine: no blocks on a GPU */
        char expires[64];
        /* never expiring, or in use: Ollama reports a far-future time */
        rfc3339(e->expires_at > 0 ? e->expires_at : 253402300799.0, expires, sizeof expires);
        cJSON_AddStringToObject(model, "expires_at", expires);
        cJSON_AddStringToObject(model, "digest", "");
        const server_model *m = server_find_model(r->srv, e->name);
        server_model unknown = { .family = "", .parameter_size = "", .quantization_level = "" };
        cJSON_AddItemToObject(model, "details", details(m ? m : &unknown));
        cJSON_AddItemToArray(models, model);
    }
    hr_free(list);
    return reply_json(r, 200, body);
}

/* Ollama's model management (pull, push, create, copy, delete, blobs): headroomd serves the files
 * it was given and changes none, so these say how models get here instead of answering 404. */
static bool model_management(request *r, enum MHD_Result *reply)
{
    static const char *const paths[] = { "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete" };
    bool known = strncmp(r->path, "/api/blobs/", 11) == 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0] && !known; i++) known = strcmp(r->path, paths[i]) == 0;
    if (!known) return false;
    *reply = reply_error(r, 501, NULL,
                         "%s is not available: headroomd downloads, creates, copies and deletes no models; it "
                         "serves the GGUF files given with --model and found in --models-dir (add the file there "
                         "and restart; GET /api/tags lists what it serves)", r->path);
    return true;
}

bool api_ollama(request *r, enum MHD_Result *reply)
{
    if (model_management(r, reply)) return true;
    bool get = strcmp(r->method, "GET") == 0, post = strcmp(r->method, "POST") == 0;
    if (strcmp(r->path, "/api/generate") == 0 && post) *reply = generate(r, false);
    else if (strcmp(r->path, "/api/chat") == 0 && post) *reply = generate(r, true);
    else if (strcmp(r->path, "/api/tags") == 0 && get) *reply = tags(r);
    else if (strcmp(r->path, "/api/show") == 0 && post) *reply = show(r);
    else if (strcmp(r->path, "/api/embed") == 0 && post) *reply = embed(r, false);
    else if (strcmp(r->path, "/api/embeddings") == 0 && post) *reply = embed(r, true);
    else if (strcmp(r->path, "/api/ps") == 0 && get) *reply = running(r);
    else if (strcmp(r->path, "/api/version") == 0 && get) {
        cJSON *body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "version", hr_version());
        *reply = reply_json(r, 200, body);
    } else if (strcmp(r->path, "/api/generate") == 0 || strcmp(r->path, "/api/chat") == 0 ||
               strcmp(r->path, "/api/embed") == 0 || strcmp(r->path, "/api/embeddings") == 0 ||
               strcmp(r->path, "/api/show") == 0)
        *reply = reply_method_not_allowed(r, "POST");
    else if (strcmp(r->path, "/api/tags") == 0 || strcmp(r->path, "/api/ps") == 0 ||
             strcmp(r->path, "/api/version") == 0)
        *reply = reply_method_not_allowed(r, "GET");
    else return false;
    return true;
}
