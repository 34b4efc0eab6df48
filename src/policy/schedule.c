/*
 * schedule.c: the batched worker's choices (schedule.h). Pure: plain arrays in, indices out.
 */
#include <stdbool.h>

#include "policy/schedule.h"

int hr_schedule_next_waiting(const hr_schedule_waiting *waiting, size_t count)
{
    int best = -1;
    for (size_t i = 0; i < count; i++) {
        if (best < 0 || waiting[i].priority > waiting[best].priority ||
            (waiting[i].priority == waiting[best].priority && waiting[i].arrival < waiting[best].arrival))
            best = (int)i;
    }
    return best;
}

int hr_schedule_pick_slot(const hr_schedule_slot *slots, size_t count, const int32_t *prompt,
                          int32_t prompt_count, int32_t *shared)
{
    int best = -1;
    int32_t best_shared = 0;
    for (size_t i = 0; i < count; i++) {
        if (slots[i].busy) continue;
        int32_t n = 0;
        while (n < slots[i].count && n < prompt_count && slots[i].tokens[n] == prompt[n]) n++;
        if (best < 0 || n > best_shared || (n == best_shared && slots[i].last_used < slots[best].last_used)) {
            best = (int)i;
            best_shared = n;
        }
    }
    *shared = best < 0 ? 0 : best_shared;
    return best;
}

int32_t hr_schedule_prompt_chunk(int32_t batch, int32_t generating, int32_t remaining)
{
    int32_t take = batch;
    /* A step's time grows with its tokens, and every running stream waits for the whole step. */
    int32_t share = batch / 4 > 16 ? batch / 4 : 16;
    if (generating > 0 && take > share) take = share;
    if (take > remaining) take = remaining;
    return take > 0 ? take : 0;
}
