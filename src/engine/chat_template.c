/*
 * chat_template.c: llama_chat_apply_template with headroom's messages and a buffer that grows to
 * fit (chat_template.h). Needs llama.h but no model, so it lives among the engines.
 */
#include "engine/chat_template.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <llama.h>

#include "core/error.h"

int hr_engine_format_chat(const char *template_text, const hr_chat_message *messages, size_t count,
                          bool add_assistant, char **out)
{
    *out = NULL;
    struct llama_chat_message *chat = calloc(count ? count : 1, sizeof *chat);
    if (!chat) return hr_fail(HR_ENOMEM, "out of memory formatting a conversation");
    size_t total = 0;
    for (size_t i = 0; i < count; i++) {
        chat[i].role = messages[i].role;
        chat[i].content = messages[i].content;
        total += strlen(messages[i].content) + strlen(messages[i].role);
    }
    /* llama.cpp's advice: twice the characters of the messages is a good first size */
    size_t size = total * 2 + 256;
    char *buffer = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (size > INT32_MAX) break;
        char *bigger = realloc(buffer, size);
        if (!bigger) break;
        buffer = bigger;
        int32_t n = llama_chat_apply_template(template_text, chat, count, add_assistant, buffer, (int32_t)size);
        if (n < 0) {
            free(buffer);
            free(chat);
            return hr_fail(HR_ENOTSUP, "llama.cpp does not recognise this model's chat template");
        }
        if ((size_t)n < size) {
            buffer[n] = '\0';
            free(chat);
            *out = buffer;
            return HR_OK;
        }
        size = (size_t)n + 1;
    }
    free(buffer);
    free(chat);
    return hr_fail(HR_ENOMEM, "out of memory formatting a conversation");
}
