/*
 * chat_template.h: a conversation formatted with a chat template's text, by llama.cpp's
 * llama_chat_apply_template (which recognises the common templates by their text). Shared by the
 * llama.cpp engine (the template of the loaded model) and the remote engine (the template read
 * from the local file's GGUF header, without loading its weights).
 */
#ifndef HR_ENGINE_CHAT_TEMPLATE_H
#define HR_ENGINE_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "headroom.h"

/* Formats `messages` with `template_text` into a malloc'd string (*out). HR_ENOTSUP when
 * llama.cpp does not recognise the template, HR_ENOMEM when out of memory. */
int hr_engine_format_chat(const char *template_text, const hr_chat_message *messages, size_t count,
                          bool add_assistant, char **out);

#endif
