/* envelope: who proposed an entry, so its waiter can be found when it is
 * applied (envelope.c). Entries come from peers: must never trust a
 * length it did not check. */
#ifndef RAFTKV_ENVELOPE_H
#define RAFTKV_ENVELOPE_H

#include "util/util.h"

#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_HEADER 17
/* Replaces out's contents with the header and payload; 0 or -1. */
int envelope_wrap(buf *out, uint64_t origin, uint64_t seq, const void *payload, size_t len);
/* Parses untrusted entry bytes; payload points into data. 0 or -1. */
int envelope_open(const uint8_t *data, size_t len, uint64_t *origin, uint64_t *seq,
                  const uint8_t **payload, size_t *plen);

#endif
