/*
 * engine_llama_text.c: the engine's text: tokenizing plain and special text, pieces, end of
 * generation, and conversations through the model's chat template, where the template's control
 * tokens are parsed and the messages' own text stays plain, so that no message can forge a turn.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <llama.h>

#include "core/error.h"
#include "engine/chat_template.h"
#include "engine/engine_llama_internal.h"

/* ---- tokens --------------------------------------------------------------------------------- */

int32_t hr_llama_tokenize(hr_engine_model *model, const char *text, size_t length,
                          bool add_special, hr_token *tokens, int32_t capacity)
{
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to tokenize", length);
    /* parse_special=false: text from a user must not be able to forge control tokens. */
    return llama_tokenize(model->vocab, text, (int32_t)length, tokens, capacity, add_special, false);
}

int32_t hr_llama_piece(hr_engine_model *model, hr_token token, char *buffer, int32_t capacity)
{
    /* special=false: control tokens (end of text and the like) are not shown as text. */
    return llama_token_to_piece(model->vocab, token, buffer, capacity, 0, false);
}

bool hr_llama_is_eog(hr_engine_model *model, hr_token token)
{
    return llama_vocab_is_eog(model->vocab, token);
}

int hr_llama_apply_chat_template(const hr_engine_model *model, const hr_chat_message *messages,
                                 size_t count, bool add_assistant, char **out)
{
    *out = NULL;
    /* a model without a template gets ChatML, as llama-server gives it (docs/api.md) */
    const char *template = llama_model_chat_template(model->model, NULL);
    return hr_engine_format_chat(template ? template : "chatml", messages, count, add_assistant, out);
}

/* ---- prompts with control tokens ----------------------------------------------------------- */

/* Drops a start token that text beginning with the start token's own text added to the one
 * llama.cpp adds (templates that write "<s>" or "<|begin_of_text|>" themselves). */
static int32_t drop_double_bos(const struct llama_vocab *vocab, hr_token *tokens, int32_t count)
{
    llama_token bos = llama_vocab_bos(vocab);
    if (count >= 2 && bos != LLAMA_TOKEN_NULL && tokens[0] == bos && tokens[1] == bos) {
        memmove(tokens, tokens + 1, sizeof *tokens * (size_t)(count - 1));
        return count - 1;
    }
    return count;
}

int32_t hr_llama_tokenize_special(hr_engine_model *model, const char *text, size_t length,
                                  hr_token *tokens, int32_t capacity)
{
    if (length > INT32_MAX) return hr_fail(HR_EINVAL, "text of %zu bytes is too long to tokenize", length);
    int32_t count = llama_tokenize(model->vocab, text, (int32_t)length, tokens, capacity, true, true);
    if (count < 0) return count;   /* the caller grows its buffer; the doubled start token counts */
    return drop_double_bos(model->vocab, tokens, count);
}

/* A growing token list. */
struct token_list {
    hr_token *tokens;
    int32_t count, capacity;
};

/* Appends the tokens of text[0..length) (no start or end token added). */
static int append_tokens(struct token_list *list, const struct llama_vocab *vocab, const char *text,
                         size_t length, bool special)
{
    if (length == 0) return HR_OK;
    if (length > INT32_MAX / 2) return hr_fail(HR_EINVAL, "a conversation of %zu bytes is too long", length);
    for (;;) {
        int32_t room = list->capacity - list->count;
        hr_token *at = list->tokens ? list->tokens + list->count : NULL;   /* none yet: measure first */
        int32_t n = llama_tokenize(vocab, text, (int32_t)length, at, room, false, special);
        if (n >= 0) {
            list->count += n;
            return HR_OK;
        }
        if (n == INT32_MIN || -n > INT32_MAX - list->count - 16)
            return hr_fail(HR_ECONTEXT, "the conversation has too many tokens to count");
        int32_t capacity = list->count - n + 16;
        hr_token *bigger = realloc(list->tokens, sizeof *bigger * (size_t)capacity);
        if (!bigger) return hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
        list->tokens = bigger;
        list->capacity = capacity;
    }
}

/* Whether `text` holds the text of a control token: read with and without them it differs. */
static int holds_control_text(const struct llama_vocab *vocab, const char *text, bool *holds)
{
    struct token_list plain = { 0 }, special = { 0 };
    int rc = append_tokens(&plain, vocab, text, strlen(text), false);
    if (rc == HR_OK) rc = append_tokens(&special, vocab, text, strlen(text), true);
    /* no tokens (an empty message: an assistant turn of tool calls only) hold nothing */
    *holds = rc == HR_OK && (plain.count != special.count ||
                             (plain.count > 0 &&
                              memcmp(plain.tokens, special.tokens, sizeof *plain.tokens * (size_t)plain.count) != 0));
    free(plain.tokens);
    free(special.tokens);
    return rc;
}

/* Where content appears in the formatted text from `from` on: as it is, or trimmed of the
 * white space some templates strip. NULL when the template changed it beyond that. */
static const char *find_content(const char *from, const char *content, size_t *length)
{
    const char *at = strstr(from, content);
    if (at) {
        *length = strlen(content);
        return at;
    }
    const char *start = content;
    while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r') start++;
    size_t trimmed = strlen(start);
    while (trimmed > 0 && strchr(" \t\n\r", start[trimmed - 1])) trimmed--;
    if (trimmed == 0) return NULL;
    char *core = strndup(start, trimmed);
    if (!core) return NULL;
    at = strstr(from, core);
    free(core);
    if (at) *length = trimmed;
    return at;
}

/* The conversation's tokens. The template's text is read with control tokens; so is the whole
 * text where no message holds a control token's text (the same tokens llama-server gives). A
 * message that does is found in the formatted text and read as plain text, the template around
 * it with control tokens: a user who writes "<|im_end|>" gets those characters, not a turn's
 * end. llama-server reads the whole formatted text with control tokens, so there a message can
 * end its turn and write the next one itself. */
static int tokenize_formatted(hr_engine_model *model, const char *const *contents, size_t count, const char *text,
                              hr_token **tokens, int32_t *n_tokens)
{
    *tokens = NULL;
    *n_tokens = 0;
    int rc = HR_OK;
    bool *plain = calloc(count ? count : 1, sizeof *plain);
    if (!plain) return hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
    bool any_plain = false;
    for (size_t i = 0; i < count && rc == HR_OK; i++) {
        rc = holds_control_text(model->vocab, contents[i], &plain[i]);
        any_plain = any_plain || plain[i];
    }
    struct token_list list = { 0 };
    llama_token bos = llama_vocab_bos(model->vocab);
    if (rc == HR_OK && llama_vocab_get_add_bos(model->vocab) && bos != LLAMA_TOKEN_NULL) {
        list.tokens = malloc(sizeof *list.tokens * 16);
        if (!list.tokens) rc = hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
        else {
            list.capacity = 16;
            list.tokens[list.count++] = bos;
        }
    }
    const char *cursor = text;
    for (size_t i = 0; i < count && rc == HR_OK && any_plain; i++) {
        size_t length = 0;
        if (!contents[i][0]) continue;   /* an assistant turn with tool calls only */
        const char *at = find_content(cursor, contents[i], &length);
        if (!at) {
            if (plain[i])
                rc = hr_fail(HR_EINVAL, "message %zu holds the text of a control token, and this model's chat "
                             "template changes a message's text, so it cannot be kept apart as plain text; "
                             "remove the control token's text from the message", i);
            continue;
        }
        if (!plain[i]) continue;   /* read with the template's text around it */
        rc = append_tokens(&list, model->vocab, cursor, (size_t)(at - cursor), true);
        if (rc == HR_OK) rc = append_tokens(&list, model->vocab, at, length, false);
        cursor = at + length;
    }
    if (rc == HR_OK) rc = append_tokens(&list, model->vocab, cursor, strlen(cursor), true);
    free(plain);
    if (rc != HR_OK) {
        free(list.tokens);
        return rc;
    }
    list.count = drop_double_bos(model->vocab, list.tokens, list.count);
    *tokens = list.tokens;
    *n_tokens = list.count;
    return HR_OK;
}

int hr_llama_tokenize_chat(hr_engine_model *model, const hr_chat_message *messages, size_t count,
                           hr_token **tokens, int32_t *n_tokens)
{
    *tokens = NULL;
    *n_tokens = 0;
    char *text = NULL;
    int rc = hr_llama_apply_chat_template(model, messages, count, true, &text);
    if (rc != HR_OK) return rc;
    const char **contents = calloc(count ? count : 1, sizeof *contents);
    if (!contents) rc = hr_fail(HR_ENOMEM, "out of memory tokenizing a conversation");
    for (size_t i = 0; contents && i < count; i++) contents[i] = messages[i].content;
    if (rc == HR_OK) rc = tokenize_formatted(model, contents, count, text, tokens, n_tokens);
    free(contents);
    free(text);
    return rc;
}

/* The same for a conversation the Jinja template rendered (engine_llama_chat.cpp): tool
 * results and the messages' text stay plain; the tool calls of earlier assistant turns, which
 * the template writes in its own syntax, are read with the template's text around them. */
int hr_llama_chat_tokenize(hr_engine_model *model, const hr_engine_chat *chat, hr_token **tokens, int32_t *n_tokens)
{
    return tokenize_formatted(model, (const char *const *)chat->contents, chat->content_count, chat->prompt, tokens,
                              n_tokens);
}

#ifndef HEADROOM_HAVE_CHAT_TEMPLATES
/* Built without llama.cpp's source tree: no Jinja, so no tools (the runtime says so). */
bool hr_llama_have_chat(void)
{
    return false;
}

int hr_llama_grammar_prefill(const struct llama_vocab *vocab, struct llama_sampler *grammar, const char *text)
{
    (void)vocab, (void)grammar, (void)text;
    return hr_fail(HR_ENOTSUP, "grammar prefill needs llama.cpp's source tree");
}
#endif
