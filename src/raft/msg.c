/* msg.c: messages and entries as owned memory — the outbox a Ready hands
 * out, read states, entry copies, validation of untrusted messages, names.
 *
 * Must never: interpret a message (that is raft.c and the role files); it
 * only owns and checks bytes. A failed allocation drops the message, which
 * Raft tolerates like any lost packet.
 */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

int raft_entry_copy(raft_entry *dst, const raft_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len == 0)
        return 0;
    dst->data = malloc(src->len);
    if (!dst->data) {
        dst->len = 0;
        return RAFT_ERR_NOMEM;
    }
    memcpy(dst->data, src->data, src->len);
    return 0;
}

void raft_entry_free(raft_entry *e)
{
    free(e->data);
    e->data = NULL;
    e->len = 0;
}

void raft_msg_release(raft_msg *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n_entries && m->entries; i++)
        raft_entry_free(&m->entries[i]);
    free(m->entries);
    m->entries = NULL;
    m->n_entries = 0;
}

int raft_msg_set_entries(raft_msg *m, const raft_entry *src, uint32_t n)
{
    m->entries = NULL;
    m->n_entries = 0;
    if (n == 0 || !src)
        return 0;
    m->entries = calloc(n, sizeof *m->entries);
    if (!m->entries)
        return RAFT_ERR_NOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (raft_entry_copy(&m->entries[i], &src[i]) != 0) {
            m->n_entries = i;
            raft_msg_release(m);
            return RAFT_ERR_NOMEM;
        }
    }
    m->n_entries = n;
    return 0;
}

void raft_msg_init(raft *r, raft_msg *m, uint8_t type, raft_id to)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
}

int raft_grow(void **arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return RAFT_ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

int raft_send(raft *r, raft_msg *m)
{
    if (m->to == 0 || m->to == r->id ||
        raft_grow((void **)&r->out, &r->cap_out, r->n_out, sizeof *r->out) != 0) {
        raft_msg_release(m);
        return RAFT_ERR_NOMEM;
    }
    r->out[r->n_out++] = *m;
    return 0;
}

int raft_push_read(raft *r, raft_index index, uint64_t ctx)
{
    if (raft_grow((void **)&r->reads, &r->cap_reads, r->n_reads, sizeof *r->reads) != 0)
        return RAFT_ERR_NOMEM;
    r->reads[r->n_reads].index = index;
    r->reads[r->n_reads].context = ctx;
    r->n_reads++;
    return 0;
}

/* Forgets the first n messages and read states (handed out and done). */
void raft_outbox_drop(raft *r, size_t n_msgs, size_t n_reads)
{
    if (n_msgs > r->n_out)
        n_msgs = r->n_out;
    if (n_reads > r->n_reads)
        n_reads = r->n_reads;
    for (size_t i = 0; i < n_msgs; i++)
        raft_msg_release(&r->out[i]);
    if (n_msgs) {
        memmove(r->out, r->out + n_msgs, (r->n_out - n_msgs) * sizeof *r->out);
        r->n_out -= n_msgs;
    }
    if (n_reads) {
        memmove(r->reads, r->reads + n_reads, (r->n_reads - n_reads) * sizeof *r->reads);
        r->n_reads -= n_reads;
    }
}

void raft_refusals_drop(raft *r, size_t n)
{
    if (n > r->n_refused)
        n = r->n_refused;
    memmove(r->refused, r->refused + n, (r->n_refused - n) * sizeof *r->refused);
    r->n_refused -= n;
}

static bool entries_valid(const raft_msg *m)
{
    if (m->n_entries == 0)
        return true;
    if (!m->entries)
        return false;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const raft_entry *e = &m->entries[i];
        if ((e->len > 0 && !e->data) || e->type > RAFT_ENTRY_CONF ||
            e->term >= RAFT_MAX_NUMBER || e->index >= RAFT_MAX_NUMBER)
            return false;
    }
    return true;
}

/* Every term and index a message carries is below RAFT_MAX_NUMBER. */
static bool numbers_valid(const raft_msg *m)
{
    const uint64_t v[] = {m->from, m->to, m->term, m->log_term, m->index, m->commit,
                          m->reject_hint, m->snapshot.index, m->snapshot.term};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (v[i] >= RAFT_MAX_NUMBER)
            return false;
    return true;
}

/* Structural checks only: enough that no handler reads out of bounds and no
 * term or index arithmetic can wrap. */
bool raft_msg_valid(const raft_msg *m)
{
    if (!m || m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TRANSFER)
        return false;
    if (m->from == 0 || !numbers_valid(m) || !entries_valid(m))
        return false;
    if (m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROP && m->n_entries)
        return false;
    if (m->type == RAFT_MSG_APPEND) {
        /* Entries must follow the previous index contiguously and never go
         * back in term; anything else is corrupt or forged. */
        raft_term prev = m->log_term;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            const raft_entry *e = &m->entries[i];
            if (m->index + 1 + i < m->index || e->index != m->index + 1 + i ||
                e->term < prev || e->term > m->term)
                return false;
            prev = e->term;
        }
    }
    return true;
}

const char *raft_msg_type_name(int type)
{
    static const char *const names[] = {
        "?", "APPEND", "APPEND_RESP", "VOTE", "VOTE_RESP", "PREVOTE",
        "PREVOTE_RESP", "HEARTBEAT", "HEARTBEAT_RESP", "SNAP", "PROP",
        "READINDEX", "READINDEX_RESP", "TIMEOUT_NOW", "TRANSFER",
    };
    if (type < 0 || type >= (int)(sizeof names / sizeof names[0]))
        return "?";
    return names[type];
}

const char *raft_strerror(int code)
{
    switch (code) {
    case RAFT_OK: return "ok";
    case RAFT_ERR_NOMEM: return "out_of_memory";
    case RAFT_ERR_NO_LEADER: return "no_leader";
    case RAFT_ERR_NOT_LEADER: return "not_leader";
    case RAFT_ERR_TRANSFERRING: return "leader_transfer_in_progress";
    case RAFT_ERR_CONF_PENDING: return "membership_change_in_progress";
    case RAFT_ERR_INVALID: return "invalid";
    case RAFT_ERR_TOO_MANY: return "too_many_members";
    case RAFT_ERR_COMPACTED: return "compacted";
    case RAFT_ERR_LOG_LOST: return "log_lost";
    case RAFT_ERR_NOT_READY: return "learner_not_ready";
    default: return "unknown";
    }
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER: return "follower";
    case RAFT_PRE_CANDIDATE: return "pre-candidate";
    case RAFT_CANDIDATE: return "candidate";
    case RAFT_LEADER: return "leader";
    }
    return "?";
}
