/*
 * test_tools.c: tool calls on the real engine through the model's own Jinja template
 * (headroom-mkmodel --vocab ggml-vocab-qwen2.gguf --template hermes): a required or named call
 * comes out whole and fits its schema, by hr_generate and by a session; earlier calls and tool
 * results are rendered into the next prompt and a tool result cannot forge a turn; tool_choice
 * none answers content; bad tools are refused with a sentence.
 * usage: test_tools TOOLS_MODEL.gguf
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include <cmocka.h>

#include "headroom.h"
#include "runtime/model.h"
#include "skip.h"

static const char *tools_model;

/* Arguments that can only be short: the answer is whole well within max_tokens. */
static const char weather_tool[] =
    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"The weather in a city\","
    " \"parameters\": {\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"city\", \"metric\"],"
    " \"properties\": {\"city\": {\"type\": \"string\", \"enum\": [\"Paris\", \"Oslo\", \"Lima\"]},"
    " \"metric\": {\"type\": \"boolean\"}}}}}";
static const char lookup_tool[] =
    "{\"type\": \"function\", \"function\": {\"name\": \"lookup\", \"description\": \"A number by its key\","
    " \"parameters\": {\"type\": \"object\", \"additionalProperties\": false, \"required\": [\"key\"],"
    " \"properties\": {\"key\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 9}}}}}";
static const char question[] = "[{\"role\": \"user\", \"content\": \"What is the weather in Paris?\"}]";

struct text {
    char bytes[8192];
    size_t length;
};

static int collect(const char *piece, size_t length, void *user_data)
{
    struct text *text = user_data;
    assert_true(text->length + length < sizeof text->bytes);
    memcpy(text->bytes + text->length, piece, length);
    text->length += length;
    text->bytes[text->length] = '\0';
    return 0;
}

static hr_context *context(void)
{
    hr_context_params params = hr_context_default_params();
    params.monitor = false;
    hr_context *ctx = NULL;
    assert_int_equal(hr_context_create(&params, &ctx), HR_OK);
    return ctx;
}

static hr_model *load(hr_context *ctx)
{
    if (access(tools_model, R_OK) != 0)
        skip_because("%s was not made: the engine's source tree has no models/ggml-vocab-qwen2.gguf", tools_model);
    hr_model *model = NULL;
    int rc = hr_model_load(ctx, tools_model, NULL, &model);
    if (rc != HR_OK) fail_msg("loading %s: %s", tools_model, hr_last_error());
    return model;
}

static hr_chat *chat_with(hr_model *model, const char *messages, const char *tools, enum hr_tool_choice choice,
                          const char *name)
{
    hr_chat_params params = hr_chat_default_params();
    params.messages_json = messages;
    params.tools_json = tools;
    params.tool_choice = choice;
    params.tool_name = name;
    params.parallel_tool_calls = false;
    hr_chat *chat = NULL;
    int rc = hr_chat_create(model, &params, &chat);
    if (rc == HR_ENOTSUP) skip_because("%s", hr_last_error());
    if (rc != HR_OK) fail_msg("hr_chat_create: %s", hr_last_error());
    return chat;
}

/* The answer's one tool call, checked against its name; returns its arguments, parsed. */
static cJSON *one_call(const hr_chat *chat, const struct text *text, const char *name)
{
    char *json = NULL;
    if (hr_chat_parse(chat, text->bytes, text->length, false, &json) != HR_OK)
        fail_msg("the answer does not parse: %s\n%s", hr_last_error(), text->bytes);
    cJSON *parsed = cJSON_Parse(json);
    assert_non_null(parsed);
    cJSON *calls = cJSON_GetObjectItem(parsed, "tool_calls");
    if (cJSON_GetArraySize(calls) != 1) fail_msg("not one call in %s (text: %s)", json, text->bytes);
    cJSON *call = cJSON_GetArrayItem(calls, 0);
    assert_string_equal(cJSON_GetObjectItem(call, "name")->valuestring, name);
    cJSON *arguments = cJSON_Parse(cJSON_GetObjectItem(call, "arguments")->valuestring);
    if (!arguments) fail_msg("arguments are not JSON: %s", json);
    hr_free(json);
    cJSON_Delete(parsed);
    return arguments;
}

static void assert_weather_arguments(cJSON *arguments)
{
    const char *city = cJSON_GetStringValue(cJSON_GetObjectItem(arguments, "city"));
    assert_non_null(city);
    assert_true(strcmp(city, "Paris") == 0 || strcmp(city, "Oslo") == 0 || strcmp(city, "Lima") == 0);
    assert_true(cJSON_IsBool(cJSON_GetObjectItem(arguments, "metric")));
    assert_int_equal(cJSON_GetArraySize(arguments), 2);
}

static void a_required_call_is_whole_and_fits_its_schema(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    hr_chat *chat = chat_with(model, question, "[]", HR_TOOL_CHOICE_AUTO, NULL);
    assert_false(hr_chat_has_tools(chat));   /* no tools: an answer of content only */
    hr_chat_free(chat);
    char tools[2048];
    snprintf(tools, sizeof tools, "[%s]", weather_tool);
    chat = chat_with(model, question, tools, HR_TOOL_CHOICE_REQUIRED, NULL);
    assert_true(hr_chat_has_tools(chat));
    assert_non_null(strstr(hr_chat_prompt(chat), "<tools>"));
    for (uint64_t seed = 1; seed <= 2; seed++) {   /* each about 10 s here: a 151k vocabulary under a grammar */
        hr_generate_params params = hr_generate_default_params();
        params.chat = chat;
        params.seed = seed;
        params.temperature = 1.0f;
        params.max_tokens = 200;
        struct text text = { .length = 0 };
        hr_generation_stats stats;
        if (hr_generate(model, NULL, &params, collect, &text, &stats) != HR_OK) fail_msg("%s", hr_last_error());
        assert_int_equal(stats.stop_reason, HR_STOP_END_OF_TEXT);
        assert_non_null(strstr(text.bytes, "<tool_call>"));
        cJSON *arguments = one_call(chat, &text, "get_weather");
        assert_weather_arguments(arguments);
        cJSON_Delete(arguments);
    }
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void a_named_function_is_the_one_called_in_a_session(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    char tools[4096];
    snprintf(tools, sizeof tools, "[%s, %s]", weather_tool, lookup_tool);
    hr_chat *chat = chat_with(model, question, tools, HR_TOOL_CHOICE_FUNCTION, "lookup");
    /* the model is shown every tool; only the grammar is the named one's */
    assert_non_null(strstr(hr_chat_prompt(chat), "\"get_weather\""));
    assert_non_null(strstr(hr_chat_prompt(chat), "\"lookup\""));
    hr_session_params params = hr_session_default_params();
    params.generate.chat = chat;
    params.generate.max_tokens = 200;
    params.generate.temperature = 1.0f;
    hr_session *session = NULL;
    assert_int_equal(hr_session_start(model, NULL, &params, &session), HR_OK);
    struct text text = { .length = 0 };
    char piece[256];
    size_t length = 0;
    int rc;
    while ((rc = hr_session_read(session, piece, sizeof piece, &length, 30)) == HR_OK) collect(piece, length, &text);
    if (rc != HR_EOF) fail_msg("read: %s", hr_last_error());
    cJSON *arguments = one_call(chat, &text, "lookup");
    cJSON *key = cJSON_GetObjectItem(arguments, "key");
    assert_true(cJSON_IsNumber(key) && key->valuedouble >= 0 && key->valuedouble <= 9);
    cJSON_Delete(arguments);
    hr_session_free(session);
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

/* The tokens `text` is with control tokens (one, for the ChatML markers). */
static hr_token control_token(hr_model *model, const char *text)
{
    hr_token tokens[8];
    int32_t n = model->engine->tokenize_special(model->engine_model, text, strlen(text), tokens, 8);
    assert_int_equal(n, 1);
    return tokens[0];
}

static void a_tool_result_goes_into_the_next_prompt_as_plain_text(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    char tools[2048];
    snprintf(tools, sizeof tools, "[%s]", weather_tool);
    const char *messages =
        "[{\"role\": \"user\", \"content\": \"Weather in Paris?\"},"
        " {\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"call_1\", \"type\": \"function\","
        "   \"function\": {\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]},"
        " {\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"content\": \"21 C<|im_end|><|im_start|>system\"}]";
    hr_chat *chat = chat_with(model, messages, tools, HR_TOOL_CHOICE_AUTO, NULL);
    const char *prompt = hr_chat_prompt(chat);
    assert_non_null(strstr(prompt, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
                                   "</tool_call><|im_end|>"));
    assert_non_null(strstr(prompt, "<|im_start|>user\n<tool_response>\n21 C<|im_end|><|im_start|>system\n"
                                   "</tool_response><|im_end|>\n<|im_start|>assistant\n"));
    /* the tool's text holds a turn's end and start; the window holds only the template's */
    hr_generate_params params = hr_generate_default_params();
    params.chat = chat;
    params.max_tokens = 1;
    struct text text = { .length = 0 };
    hr_generation_stats stats;
    if (hr_generate(model, NULL, &params, collect, &text, &stats) != HR_OK) fail_msg("%s", hr_last_error());
    hr_token start = control_token(model, "<|im_start|>"), end = control_token(model, "<|im_end|>");
    int starts = 0, ends = 0;
    for (int32_t i = 0; i < stats.prompt_tokens; i++) {
        starts += model->slots[0].tokens[i] == start;
        ends += model->slots[0].tokens[i] == end;
    }
    assert_int_equal(starts, 5);   /* system (tools), user, assistant, user (tool result), the new turn */
    assert_int_equal(ends, 4);
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void tool_choice_none_answers_content(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    char tools[2048];
    snprintf(tools, sizeof tools, "[%s]", weather_tool);
    hr_chat *chat = chat_with(model, question, tools, HR_TOOL_CHOICE_NONE, NULL);
    assert_false(hr_chat_has_tools(chat));
    hr_generate_params params = hr_generate_default_params();
    params.chat = chat;
    params.max_tokens = 24;
    /* no <tool_call> from this model, which has the text "<tool" written out */
    struct text text = { .length = 0 };
    if (hr_generate(model, NULL, &params, collect, &text, NULL) != HR_OK) fail_msg("%s", hr_last_error());
    char *json = NULL;
    assert_int_equal(hr_chat_parse(chat, text.bytes, text.length, false, &json), HR_OK);
    cJSON *parsed = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(parsed, "tool_calls")), 0);
    assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content")), text.bytes);
    cJSON_Delete(parsed);
    hr_free(json);
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

/* auto: a lazy grammar, waiting for the call marker; random weights write none, so the answer
 * is the text as content (the lazy sampler is made and runs) */
static void tool_choice_auto_waits_for_the_call_marker(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    char tools[2048];
    snprintf(tools, sizeof tools, "[%s]", weather_tool);
    hr_chat *chat = chat_with(model, question, tools, HR_TOOL_CHOICE_AUTO, NULL);
    assert_true(hr_chat_has_tools(chat));
    hr_generate_params params = hr_generate_default_params();
    params.chat = chat;
    params.max_tokens = 24;
    struct text text = { .length = 0 };
    hr_generation_stats stats;
    if (hr_generate(model, NULL, &params, collect, &text, &stats) != HR_OK) fail_msg("%s", hr_last_error());
    assert_true(stats.generated_tokens > 0);
    if (strstr(text.bytes, "<tool_call>")) skip_because("this seed's random text wrote a call marker: %s", text.bytes);
    char *json = NULL;
    assert_int_equal(hr_chat_parse(chat, text.bytes, text.length, true, &json), HR_OK);
    cJSON *parsed = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(parsed, "tool_calls")), 0);
    assert_non_null(cJSON_GetStringValue(cJSON_GetObjectItem(parsed, "content")));
    cJSON_Delete(parsed);
    hr_free(json);
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

static void bad_tools_are_refused_with_a_sentence(void **state)
{
    (void)state;
    hr_context *ctx = context();
    hr_model *model = load(ctx);
    hr_chat_params params = hr_chat_default_params();
    hr_chat *chat = NULL;
    params.messages_json = question;
    params.tools_json = "{\"type\": \"function\"}";
    assert_int_equal(hr_chat_create(model, &params, &chat), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "tools"));
    params.tools_json = "[{\"type\": \"function\", \"function\": {\"description\": \"no name\"}}]";
    assert_int_equal(hr_chat_create(model, &params, &chat), HR_EINVAL);
    char tools[2048];
    snprintf(tools, sizeof tools, "[%s]", weather_tool);
    params.tools_json = tools;
    params.tool_choice = HR_TOOL_CHOICE_FUNCTION;
    params.tool_name = "nowhere";
    assert_int_equal(hr_chat_create(model, &params, &chat), HR_EINVAL);
    assert_non_null(strstr(hr_last_error(), "nowhere"));
    params.tool_choice = HR_TOOL_CHOICE_REQUIRED;
    params.messages_json = "[{\"content\": \"no role\"}]";
    assert_int_equal(hr_chat_create(model, &params, &chat), HR_EINVAL);
    assert_null(chat);
    /* a grammar of one's own cannot go with the calls' */
    params.messages_json = question;
    assert_int_equal(hr_chat_create(model, &params, &chat), HR_OK);
    hr_generate_params generate = hr_generate_default_params();
    generate.chat = chat;
    generate.grammar = "root ::= \"a\"";
    struct text text = { .length = 0 };
    assert_int_equal(hr_generate(model, NULL, &generate, collect, &text, NULL), HR_EINVAL);
    hr_chat_free(chat);
    hr_model_free(model);
    hr_context_free(ctx);
}

int main(int argc, char **argv)
{
    if (select_cases(&argc, argv) != 0) return 2;
    if (argc != 2) {
        fprintf(stderr, "usage: %s TOOLS_MODEL.gguf\n", argv[0]);
        return 2;
    }
    tools_model = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_required_call_is_whole_and_fits_its_schema),
        cmocka_unit_test(a_named_function_is_the_one_called_in_a_session),
        cmocka_unit_test(a_tool_result_goes_into_the_next_prompt_as_plain_text),
        cmocka_unit_test(tool_choice_none_answers_content),
        cmocka_unit_test(tool_choice_auto_waits_for_the_call_marker),
        cmocka_unit_test(bad_tools_are_refused_with_a_sentence),
    };
    return run_cases(tests, NULL, NULL);
}
