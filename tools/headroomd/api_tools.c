/*
 * api_tools.c: tool calls for both APIs: the checks of tools, tool_choice and
 * parallel_tool_calls (a 400 that names the field), the conversation rendered by the library's
 * hr_chat (the model's Jinja template), and the answer read back into content and tool calls.
 * Shapes differ per API only in api_openai.c and api_ollama.c; nothing here writes a reply body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

static atomic_ulong next_call = 1;

static bool refused(field_check *c, enum MHD_Result reply)
{
    c->reply = reply;
    c->failed = true;
    return false;
}

/* tools: [{"type": "function", "function": {"name", "description"?, "parameters"?: object}}] */
static bool check_tools(field_check *c, const cJSON *tools)
{
    if (!cJSON_IsArray(tools)) return refused(c, reply_error(c->r, 400, "tools", "'tools' must be an array of functions"));
    int i = 0;
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(tool, "type");
        const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
        if (!cJSON_IsObject(tool) || (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "function") != 0)))
            return refused(c, reply_error(c->r, 400, "tools", "tools[%d] must be an object of type 'function'", i));
        if (!cJSON_IsObject(function))
            return refused(c, reply_error(c->r, 400, "tools", "tools[%d].function must be an object with the function's name", i));
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
        if (!cJSON_IsString(name) || !name->valuestring[0])
            return refused(c, reply_error(c->r, 400, "tools", "tools[%d].function.name must be a non-empty string", i));
        const cJSON *parameters = cJSON_GetObjectItemCaseSensitive(function, "parameters");
        if (parameters && !cJSON_IsNull(parameters) && !cJSON_IsObject(parameters))
            return refused(c, reply_error(c->r, 400, "tools", "tools[%d].function.parameters must be a JSON schema (an object)", i));
        const cJSON *description = cJSON_GetObjectItemCaseSensitive(function, "description");
        if (description && !cJSON_IsNull(description) && !cJSON_IsString(description))
            return refused(c, reply_error(c->r, 400, "tools", "tools[%d].function.description must be a string", i));
        i++;
    }
    return true;
}

static bool tool_named(const cJSON *tools, const char *name)
{
    const cJSON *tool;
    cJSON_ArrayForEach(tool, tools) {
        const cJSON *function = cJSON_GetObjectItemCaseSensitive(tool, "function");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(function, "name");
        if (cJSON_IsString(value) && strcmp(value->valuestring, name) == 0) return true;
    }
    return false;
}

/* tool_choice: "auto", "none", "required", or {"type": "function", "function": {"name"}} */
static bool check_choice(field_check *c, const cJSON *choice, const cJSON *tools, tool_request *out)
{
    if (!choice || cJSON_IsNull(choice)) return true;
    if (cJSON_IsString(choice)) {
        const char *value = choice->valuestring;
        if (strcmp(value, "auto") == 0) out->params.tool_choice = HR_TOOL_CHOICE_AUTO;
        else if (strcmp(value, "none") == 0) out->params.tool_choice = HR_TOOL_CHOICE_NONE;
        else if (strcmp(value, "required") == 0) out->params.tool_choice = HR_TOOL_CHOICE_REQUIRED;
        else
            return refused(c, reply_error(c->r, 400, "tool_choice", "'tool_choice' '%s' is unknown: use auto, none, "
                                          "required or {\"type\": \"function\", \"function\": {\"name\": ...}}", value));
    } else {
        const cJSON *function = cJSON_GetObjectItemCaseSensitive(choice, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(function, "name");
        if (!cJSON_IsObject(choice) || !cJSON_IsString(name) || !name->valuestring[0])
            return refused(c, reply_error(c->r, 400, "tool_choice", "'tool_choice' must be auto, none, required or "
                                          "{\"type\": \"function\", \"function\": {\"name\": ...}}"));
        if (!tools || !tool_named(tools, name->valuestring))
            return refused(c, reply_error(c->r, 400, "tool_choice", "'tool_choice' names the function '%s', which "
                                          "is not among the tools", name->valuestring));
        out->params.tool_choice = HR_TOOL_CHOICE_FUNCTION;
        out->params.tool_name = name->valuestring;
    }
    if (out->params.tool_choice != HR_TOOL_CHOICE_AUTO && out->params.tool_choice != HR_TOOL_CHOICE_NONE &&
        (!tools || cJSON_GetArraySize(tools) == 0))
        return refused(c, reply_error(c->r, 400, "tool_choice", "'tool_choice' asks for a call but no tools are given"));
    return true;
}

/* Whether the conversation holds tool calls or results: then it needs the Jinja template too. */
static bool has_tool_turns(const cJSON *messages)
{
    const cJSON *message;
    cJSON_ArrayForEach(message, messages) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "tool") == 0) return true;
        if (cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(message, "tool_calls")) > 0) return true;
    }
    return false;
}

bool tools_read(field_check *c, const cJSON *body, tool_request *out)
{
    memset(out, 0, sizeof *out);
    out->params = hr_chat_default_params();
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(body, "tools");
    if (tools && !cJSON_IsNull(tools) && !check_tools(c, tools)) return false;
    if (tools && cJSON_IsNull(tools)) tools = NULL;
    if (!check_choice(c, cJSON_GetObjectItemCaseSensitive(body, "tool_choice"), tools, out)) return false;
    if (!field_bool(c, body, "parallel_tool_calls", &out->params.parallel_tool_calls)) return false;
    out->wanted = (tools && cJSON_GetArraySize(tools) > 0) ||
                  has_tool_turns(cJSON_GetObjectItemCaseSensitive(body, "messages"));
    if (tools && cJSON_GetArraySize(tools) > 0) out->tools_json = cJSON_PrintUnformatted(tools);
    return true;
}

bool tools_make_chat(field_check *c, hr_model *model, const cJSON *messages, tool_request *asked, hr_chat **out)
{
    *out = NULL;
    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        c->reply = reply_error(c->r, 400, "messages", "'messages' must be a non-empty array");
        c->failed = true;
        return false;
    }
    char *messages_json = cJSON_PrintUnformatted(messages);
    asked->params.messages_json = messages_json;
    asked->params.tools_json = asked->tools_json;
    int rc = messages_json ? hr_chat_create(model, &asked->params, out) : HR_ENOMEM;
    free(messages_json);
    asked->params.messages_json = NULL;
    if (rc != HR_OK) {
        c->reply = reply_library_error(c->r, rc);
        c->failed = true;
        return false;
    }
    return true;
}

void tools_free(tool_request *asked)
{
    free(asked->tools_json);
    asked->tools_json = NULL;
}

cJSON *tools_parse(const hr_chat *chat, const char *text, size_t length, bool partial)
{
    char *json = NULL;
    if (hr_chat_parse(chat, text ? text : "", length, partial, &json) != HR_OK) return NULL;
    cJSON *parsed = cJSON_Parse(json);
    hr_free(json);
    /* a call the model's format gives no id gets one, as OpenAI's have */
    const cJSON *call;
    cJSON_ArrayForEach(call, cJSON_GetObjectItemCaseSensitive(parsed, "tool_calls")) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(call, "id");
        if (cJSON_IsString(id) && id->valuestring[0]) continue;
        char made[40];
        snprintf(made, sizeof made, "call_%lx", atomic_fetch_add(&next_call, 1));
        cJSON_ReplaceItemInObjectCaseSensitive((cJSON *)call, "id", cJSON_CreateString(made));
    }
    return parsed;
}

/* An answer cut short (max_tokens) may end in a call with half its arguments: calls whose
 * arguments are not a whole JSON object are left out. */
static void drop_unfinished_calls(cJSON *parsed)
{
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(parsed, "tool_calls");
    cJSON *call = calls ? calls->child : NULL;
    while (call) {
        cJSON *next = call->next;
        cJSON *arguments = cJSON_Parse(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(call, "arguments")));
        if (!cJSON_IsObject(arguments)) cJSON_Delete(cJSON_DetachItemViaPointer(calls, call));
        cJSON_Delete(arguments);
        call = next;
    }
}

cJSON *tools_parse_answer(const hr_chat *chat, const char *text, size_t length)
{
    cJSON *parsed = tools_parse(chat, text, length, false);
    if (!parsed) parsed = tools_parse(chat, text, length, true);
    /* the parser is lenient: a whole parse of a cut answer may hold its last call unfinished */
    if (parsed) drop_unfinished_calls(parsed);
    if (!parsed) {
        char *copy = strndup(text ? text : "", length);
        parsed = cJSON_CreateObject();
        cJSON_AddStringToObject(parsed, "content", copy ? copy : "");
        cJSON_AddArrayToObject(parsed, "tool_calls");
        free(copy);
    }
    return parsed;
}
