/*
 * engine_llama_chat.cpp: conversations with tools through the model's own Jinja chat template, by
 * llama.cpp's common chat library (common/chat.cpp, compiled from the engine's source tree by
 * src/CMakeLists.txt): the prompt, the grammar that makes a tool call valid (lazy: from its first
 * marker on, unless a call is required), and the parser that reads content and tool calls back out
 * of the generated text. Behind extern "C" functions; the library's exceptions end here as
 * sentences. Built only where the source tree was found.
 */
#include <cstdlib>
#include <cstring>
#include <exception>
#include <regex>
#include <string>
#include <vector>

#include "chat.h"

extern "C" {
#include "core/error.h"
#include "engine/engine_llama_internal.h"
}

namespace {

// What the C side does not see: the parser and the templates it came from.
struct chat_impl {
    common_chat_parser_params parser;
};

char *copy_string(const std::string &text)
{
    char *copy = static_cast<char *>(malloc(text.size() + 1));
    if (copy) memcpy(copy, text.c_str(), text.size() + 1);
    return copy;
}

common_chat_tool_choice choice_of(enum hr_tool_choice choice)
{
    switch (choice) {
    case HR_TOOL_CHOICE_NONE: return COMMON_CHAT_TOOL_CHOICE_NONE;
    case HR_TOOL_CHOICE_REQUIRED:
    case HR_TOOL_CHOICE_FUNCTION: return COMMON_CHAT_TOOL_CHOICE_REQUIRED;
    default: return COMMON_CHAT_TOOL_CHOICE_AUTO;
    }
}

// A required call starts the answer: llama.cpp's grammar lets content come first (a preamble a
// model may write before its call); OpenAI's "required" and a named function answer with calls
// only, and a model that never writes the call's marker would otherwise ramble to max_tokens.
// The root rule's optional content ("until-N?") is dropped; a grammar of another shape is kept.
std::string calls_first(const std::string &grammar)
{
    static const std::regex root_rule(R"((^|\n)(root ::= [^\n]*?) until-[0-9]+\? ([^\n]*))");
    return std::regex_replace(grammar, root_rule, "$1$2 $3", std::regex_constants::format_first_only);
}

// llama.cpp's JSON tool formats (Hermes' <tool_call> among them) allow one call or more whatever
// parallel_tool_calls says; without it the answer is one call, as OpenAI's.
std::string one_call(const std::string &grammar)
{
    static const std::regex calls_rule(R"((^|\n)tool-calls ::= \(tool-call\?? space\)\+(\n|$))");
    return std::regex_replace(grammar, calls_rule, "$1tool-calls ::= tool-call space$2",
                              std::regex_constants::format_first_only);
}

std::vector<char *> copy_all(const std::vector<std::string> &texts, bool *ok)
{
    std::vector<char *> copies;
    for (const auto &text : texts) {
        char *copy = copy_string(text);
        if (!copy) *ok = false;
        copies.push_back(copy);
    }
    return copies;
}

char **to_array(const std::vector<char *> &items)
{
    char **array = static_cast<char **>(calloc(items.size() ? items.size() : 1, sizeof(char *)));
    if (array) for (size_t i = 0; i < items.size(); i++) array[i] = items[i];
    return array;
}

// Renders with the request's tools; a named function renders the prompt with every tool (the
// model still sees them all, as OpenAI's do) and takes grammar and parser from that one alone.
int render(const common_chat_templates *templates, const hr_chat_params *params,
           std::vector<common_chat_msg> messages, std::vector<common_chat_tool> tools, common_chat_params *out,
           std::string *prompt)
{
    common_chat_templates_inputs inputs;
    inputs.messages = std::move(messages);
    inputs.tools = tools;
    inputs.tool_choice = choice_of(params->tool_choice);
    inputs.parallel_tool_calls = params->parallel_tool_calls;
    inputs.add_generation_prompt = true;
    inputs.use_jinja = true;
    *out = common_chat_templates_apply(templates, inputs);
    *prompt = out->prompt;
    if (params->tool_choice == HR_TOOL_CHOICE_FUNCTION) {
        std::vector<common_chat_tool> named;
        for (const auto &tool : tools)
            if (tool.name == params->tool_name) named.push_back(tool);
        if (named.empty())
            return hr_fail(HR_EINVAL, "tool_choice names the function \"%s\", which is not among the tools",
                           params->tool_name);
        inputs.tools = named;
        *out = common_chat_templates_apply(templates, inputs);
    }
    return HR_OK;
}

int fill(const common_chat_params &rendered, const std::string &prompt, const hr_chat_params *params,
         const std::vector<common_chat_msg> &messages, hr_engine_chat *chat)
{
    bool ok = true;
    chat->prompt = copy_string(prompt);
    ok = ok && chat->prompt;
    if (!rendered.grammar.empty()) {
        bool required = params->tool_choice == HR_TOOL_CHOICE_REQUIRED || params->tool_choice == HR_TOOL_CHOICE_FUNCTION;
        std::string grammar = required ? calls_first(rendered.grammar) : rendered.grammar;
        chat->grammar = copy_string(params->parallel_tool_calls ? grammar : one_call(grammar));
        ok = ok && chat->grammar;
        chat->grammar_lazy = rendered.grammar_lazy;
        std::vector<std::string> patterns;
        for (const auto &trigger : rendered.grammar_triggers) {
            if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_WORD)
                patterns.push_back(std::regex_replace(trigger.value, std::regex(R"([.^$|()*+?\[\]{}\\])"), R"(\$&)"));
            else if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN)
                patterns.push_back(trigger.value);
            else if (trigger.type == COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL)
                patterns.push_back("^" + trigger.value + "$");
        }
        std::vector<char *> copies = copy_all(patterns, &ok);
        chat->grammar_triggers = to_array(copies);
        ok = ok && chat->grammar_triggers;
        chat->grammar_trigger_count = copies.size();
        if (!chat->grammar_lazy && !rendered.generation_prompt.empty()) {
            chat->grammar_prefill = copy_string(rendered.generation_prompt);
            ok = ok && chat->grammar_prefill;
        }
    }
    std::vector<std::string> contents;
    for (const auto &message : messages) contents.push_back(message.content);
    std::vector<char *> copies = copy_all(contents, &ok);
    chat->contents = to_array(copies);
    ok = ok && chat->contents;
    chat->content_count = copies.size();
    chat->format_name = common_chat_format_name(rendered.format);
    return ok ? HR_OK : hr_fail(HR_ENOMEM, "out of memory rendering a conversation");
}

}  // namespace

extern "C" bool hr_llama_have_chat(void)
{
    return true;
}

extern "C" void hr_llama_chat_free(hr_engine_chat *chat)
{
    if (!chat) return;
    free(chat->prompt);
    free(chat->grammar);
    free(chat->grammar_prefill);
    for (size_t i = 0; chat->grammar_triggers && i < chat->grammar_trigger_count; i++) free(chat->grammar_triggers[i]);
    free(chat->grammar_triggers);
    for (size_t i = 0; chat->contents && i < chat->content_count; i++) free(chat->contents[i]);
    free(chat->contents);
    delete static_cast<chat_impl *>(chat->impl);
    free(chat);
}

extern "C" int hr_llama_chat_create(hr_engine_model *model, const hr_chat_params *params, hr_engine_chat **out)
{
    *out = nullptr;
    hr_engine_chat *chat = static_cast<hr_engine_chat *>(calloc(1, sizeof *chat));
    if (!chat) return hr_fail(HR_ENOMEM, "out of memory rendering a conversation");
    int rc = HR_OK;
    try {
        std::vector<common_chat_msg> messages = common_chat_msgs_parse_oaicompat(
            common_json::parse(std::string(params->messages_json)));
        std::vector<common_chat_tool> tools;
        if (params->tools_json && params->tools_json[0])
            tools = common_chat_tools_parse_oaicompat(common_json::parse(std::string(params->tools_json)));
        if (params->tool_choice == HR_TOOL_CHOICE_FUNCTION && (!params->tool_name || !params->tool_name[0]))
            rc = hr_fail(HR_EINVAL, "tool_choice names a function but gives no name");
        // a model without a template gets ChatML's, as in hr_model_apply_chat_template
        common_chat_templates_ptr templates = common_chat_templates_init(model->model, "");
        common_chat_params rendered;
        std::string prompt;
        if (rc == HR_OK) rc = render(templates.get(), params, messages, tools, &rendered, &prompt);
        if (rc == HR_OK) {
            auto *impl = new chat_impl();
            chat->impl = impl;
            impl->parser = common_chat_parser_params(rendered);
            if (!rendered.parser.empty()) impl->parser.parser.load(rendered.parser);
            impl->parser.parse_tool_calls = params->tool_choice != HR_TOOL_CHOICE_NONE;
            rc = fill(rendered, prompt, params, messages, chat);
            chat->tools = !tools.empty() && params->tool_choice != HR_TOOL_CHOICE_NONE;
        }
    } catch (const std::exception &e) {
        rc = hr_fail(HR_EINVAL, "the conversation cannot be rendered with this model's chat template: %s", e.what());
    } catch (...) {
        rc = hr_fail(HR_EINVAL, "the conversation cannot be rendered with this model's chat template");
    }
    if (rc != HR_OK) {
        hr_llama_chat_free(chat);
        return rc;
    }
    *out = chat;
    return HR_OK;
}

extern "C" int hr_llama_chat_parse(const hr_engine_chat *chat, const char *text, size_t length, bool partial,
                                   char **json)
{
    *json = nullptr;
    try {
        const auto *impl = static_cast<const chat_impl *>(chat->impl);
        common_chat_msg message = common_chat_parse(std::string(text, length), partial, impl->parser);
        common_json calls = common_json::array();
        for (const auto &call : message.tool_calls)
            calls.push_back({ { "id", call.id }, { "name", call.name }, { "arguments", call.arguments } });
        common_json result = { { "content", message.content }, { "tool_calls", calls } };
        if (!message.reasoning_content.empty()) result["reasoning_content"] = message.reasoning_content;
        *json = copy_string(result.dump());
    } catch (const std::exception &e) {
        return hr_fail(HR_EINVAL, "the answer cannot be read as this template's tool calls: %s", e.what());
    } catch (...) {
        return hr_fail(HR_EINVAL, "the answer cannot be read as this template's tool calls");
    }
    return *json ? HR_OK : hr_fail(HR_ENOMEM, "out of memory reading an answer");
}

// The grammar has seen the generation prompt the template already wrote (a required call's
// grammar starts with it), as llama.cpp's common sampler does; the prompt's first token is
// skipped where the tokenizer put a space before it that the text does not have.
extern "C" int hr_llama_grammar_prefill(const struct llama_vocab *vocab, struct llama_sampler *grammar,
                                        const char *text)
{
    try {
        std::string prefill(text);
        std::vector<llama_token> tokens = common_tokenize(vocab, prefill, false, true);
        for (size_t i = 0; i < tokens.size(); i++) {
            std::string piece = common_token_to_piece(vocab, tokens[i], true);
            if (i == 0 && !piece.empty() && isspace((unsigned char)piece[0]) && !isspace((unsigned char)prefill[0]))
                continue;
            llama_sampler_accept(grammar, tokens[i]);
        }
    } catch (const std::exception &e) {
        return hr_fail(HR_EINVAL, "the tool-call grammar does not accept the template's generation prompt: %s", e.what());
    }
    return HR_OK;
}
