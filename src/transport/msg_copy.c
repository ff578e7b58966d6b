/* msg_copy: deep copies of Raft messages for the send queues and the
 * decoder's output, so the transport never links against the raft core.
 * Must never keep pointers into the caller's message. */
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

static void free_entries(raft_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(e[i].data);
    free(e);
}

int transport_msg_copy(const raft_msg *m, raft_msg *out)
{
    *out = *m;
    out->entries = NULL;
    out->n_entries = 0;
    if (m->n_entries == 0)
        return 0;
    raft_entry *e = calloc(m->n_entries, sizeof *e);
    if (!e)
        return -1;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        e[i] = m->entries[i];
        e[i].data = NULL;
        if (m->entries[i].len == 0)
            continue;
        e[i].data = xmemdup(m->entries[i].data, m->entries[i].len);
        if (!e[i].data) {
            free_entries(e, i);
            return -1;
        }
    }
    out->entries = e;
    out->n_entries = m->n_entries;
    return 0;
}

void transport_msg_clear(raft_msg *m)
{
    free_entries(m->entries, m->n_entries);
    m->entries = NULL;
    m->n_entries = 0;
}

void transport_free_msgs(raft_msg *msgs, size_t n)
{
    if (!msgs)
        return;
    for (size_t i = 0; i < n; i++)
        transport_msg_clear(&msgs[i]);
    free(msgs);
}
