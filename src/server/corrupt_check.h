/* corrupt_check: the leader's comparison of the members' key-value hashes
 * (corrupt_check.c). */
#ifndef RAFTKV_CORRUPT_CHECK_H
#define RAFTKV_CORRUPT_CHECK_H

#include "server/node_int.h"

/* One member's answer in a round. */
typedef struct {
    uint64_t id;
    int status; /* enum transport_hash_status */
    transport_hash h;
} corrupt_answer;

/* Which members differ: those answering CORRUPT, and those whose hash at
 * the round's revision (same compact revision) differs from the value most
 * members have; a tie goes to the leader's own value (answers[0]). Others
 * (behind, compacted, unreachable) are not judged. Pure. Returns how many
 * ids it wrote to odd (at most n). */
size_t corrupt_odd_members(const corrupt_answer *answers, size_t n, uint64_t *odd);

/* The checker thread: at start (once this node leads and has applied
 * something) and every --corrupt-check-ms, while it leads. */
int corrupt_check_start(node *n);
void corrupt_check_stop(node *n);

#endif
