/*
 * schedule.h: the batched worker's choices, pure: which waiting session a free slot takes next,
 * which slot it takes (the longest cached prefix of its prompt), and how a step's tokens are
 * shared between running sequences and prompts being read. runtime/batch.c acts on them.
 */
#ifndef HR_POLICY_SCHEDULE_H
#define HR_POLICY_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A session waiting for a slot. */
typedef struct hr_schedule_waiting {
    int32_t priority;       /* higher first (the lifecycle cancels the lowest first) */
    uint64_t arrival;       /* lower first among equals: first come, first served */
} hr_schedule_waiting;

/* The index of the waiting session to admit next, or -1 when there is none. */
int hr_schedule_next_waiting(const hr_schedule_waiting *waiting, size_t count);

/* A slot as the admission sees it. */
typedef struct hr_schedule_slot {
    bool busy;              /* a session runs in it */
    const int32_t *tokens;  /* what its sequence holds (tokens as the engine numbers them) */
    int32_t count;
    uint64_t last_used;     /* when a session last left it */
} hr_schedule_slot;

/* The free slot for a prompt: the one whose tokens share the longest prefix with it; among
 * equals (no slot shares anything, say) the one left longest ago, so recent conversations stay
 * for their follow-ups. -1 when every slot is busy. *shared gets the prefix length. */
int hr_schedule_pick_slot(const hr_schedule_slot *slots, size_t count, const int32_t *prompt,
                          int32_t prompt_count, int32_t *shared);

/* How many tokens of a newcomer's prompt the next step reads, of `remaining`: a whole batch
 * while nothing generates; while `generating` sequences run, a quarter of the batch (at least
 * 16), so running streams wait for a chunk of a long prompt, never for all of it. */
int32_t hr_schedule_prompt_chunk(int32_t batch, int32_t generating, int32_t remaining);

#endif
