/*
 * chat.c: conversations with tools (include/headroom.h, hr_chat): the checks, the engine's
 * rendering through the model's Jinja template, and reading answers back into tool calls.
 * The rendering and parsing are the engine's (engine_llama_chat.cpp); nothing here knows a template.
 */
#include "runtime/chat.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "runtime/model.h"

HR_API hr_chat_params hr_chat_default_params(void)
{
    hr_chat_params params = { .tool_choice = HR_TOOL_CHOICE_AUTO, .parallel_tool_calls = true };
    return params;
}

HR_API int hr_chat_create(hr_model *model, const hr_chat_params *params, hr_chat **out)
{
    hr_clear_error();
    if (!out) return hr_fail(HR_EINVAL, "hr_chat_create: out is NULL");
    *out = NULL;
    if (!model || !params || !params->messages_json)
        return hr_fail(HR_EINVAL, "hr_chat_create: a model and messages_json are required");
    if (params->tool_choice < HR_TOOL_CHOICE_AUTO || params->tool_choice > HR_TOOL_CHOICE_FUNCTION)
        return hr_fail(HR_EINVAL, "tool_choice %d is not one of auto, none, required or a function",
                       (int)params->tool_choice);
    if (params->tool_choice == HR_TOOL_CHOICE_FUNCTION && (!params->tool_name || !params->tool_name[0]))
        return hr_fail(HR_EINVAL, "tool_choice names a function but tool_name is empty");
    const hr_engine_ops *engine = model->engine;
    if (!engine->chat_create) {
        if (engine->decode)
            return hr_fail(HR_ENOTSUP, "tools need Jinja chat templates, and this libheadroom was built without "
                           "llama.cpp's source tree (HEADROOM_ENGINE_SOURCE_DIR), which has them");
        return hr_fail(HR_ENOTSUP, "tools are not available on the %s engine", engine->name);
    }
    hr_chat *chat = calloc(1, sizeof *chat);
    if (!chat) return hr_fail(HR_ENOMEM, "out of memory rendering a conversation");
    int rc = engine->chat_create(model->engine_model, params, &chat->rendered);
    if (rc != HR_OK) {
        free(chat);
        return rc;
    }
    chat->model = model;
    chat->engine = engine;
    *out = chat;
    return HR_OK;
}

HR_API const char *hr_chat_prompt(const hr_chat *chat)
{
    return chat ? chat->rendered->prompt : NULL;
}

HR_API bool hr_chat_has_tools(const hr_chat *chat)
{
    return chat && chat->rendered->tools;
}

HR_API int hr_chat_parse(const hr_chat *chat, const char *text, size_t length, bool partial, char **json)
{
    hr_clear_error();
    if (!json) return hr_fail(HR_EINVAL, "hr_chat_parse: json is NULL");
    *json = NULL;
    if (!chat || (!text && length > 0)) return hr_fail(HR_EINVAL, "hr_chat_parse: a chat and text are required");
    return chat->engine->chat_parse(chat->rendered, text ? text : "", length, partial, json);
}

HR_API void hr_chat_free(hr_chat *chat)
{
    if (!chat) return;
    chat->engine->chat_free(chat->rendered);
    free(chat);
}

void hr_chat_sampling(const hr_chat *chat, hr_engine_sampling *sampling)
{
    const hr_engine_chat *rendered = chat->rendered;
    if (!rendered->grammar) return;
    sampling->grammar = rendered->grammar;
    sampling->grammar_lazy = rendered->grammar_lazy;
    sampling->grammar_triggers = (const char *const *)rendered->grammar_triggers;
    sampling->grammar_trigger_count = rendered->grammar_trigger_count;
    sampling->grammar_prefill = rendered->grammar_prefill;
}

bool hr_generate_constrained(const hr_generate_params *params)
{
    return params->grammar || (params->chat && params->chat->rendered->grammar);
}
