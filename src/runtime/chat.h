/*
 * chat.h: the hr_chat struct (a conversation rendered by the model's Jinja template, with its
 * tools) and what generate.c takes from it: the prompt's tokens and the tool-call grammar.
 */
#ifndef HR_RUNTIME_CHAT_H
#define HR_RUNTIME_CHAT_H

#include "engine/engine.h"
#include "headroom.h"

struct hr_model;

/* Read-only once made, so any thread may use it. */
struct hr_chat {
    struct hr_model *model;        /* borrowed: the chat is freed before the model */
    const hr_engine_ops *engine;
    hr_engine_chat *rendered;
};

/* Whether a generation samples under a grammar: its own, or its chat's tool calls (the guard
 * judges such generations apart). */
bool hr_generate_constrained(const hr_generate_params *params);

/* The grammar of the chat's tool calls into `sampling` (nothing when it has none). */
void hr_chat_sampling(const hr_chat *chat, hr_engine_sampling *sampling);

#endif
