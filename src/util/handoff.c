/* handoff: how often work crosses from one thread to another on the
 * request path — into the node loop (its inbox), from the loop to a
 * client's connection (a resume), to a peer's waiting request (an
 * answer), to the sender thread (when it is not loop-driven). Process-wide
 * relaxed counters, read by /metrics and scripts/bench, which divides them
 * by the writes of a load. Must never cost more than an atomic add. */
#include "util/util.h"

#include <stdatomic.h>

static atomic_uint_fast64_t counts[HANDOFF_KINDS];

void handoff_count(int kind)
{
    if (kind >= 0 && kind < HANDOFF_KINDS)
        atomic_fetch_add_explicit(&counts[kind], 1, memory_order_relaxed);
}

uint64_t handoff_total(int kind)
{
    return kind >= 0 && kind < HANDOFF_KINDS
               ? (uint64_t)atomic_load_explicit(&counts[kind], memory_order_relaxed)
               : 0;
}

const char *handoff_name(int kind)
{
    static const char *const names[HANDOFF_KINDS] = {"loop", "client", "peer_answer", "sender"};
    return kind >= 0 && kind < HANDOFF_KINDS ? names[kind] : "?";
}
