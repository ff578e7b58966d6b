/* membership: turns a client's membership request into a Raft conf
 * change — refusing at once what could only apply as a no-op, choosing
 * the id of a new member, carrying its peer URL in the entry's envelope —
 * and hands it to requests.c to propose. Must never apply a change itself:
 * kv and the transport learn of a change only when it is applied
 * (apply.c), on every node alike. */
#include "server/membership.h"

#include "server/envelope.h"
#include "server/peers.h"
#include "server/requests.h"

#include <stdbool.h>
#include <string.h>

static uint8_t member_op_to_raft(int op)
{
    switch (op) {
    case KV_MEMBER_ADD: return RAFT_CONF_ADD_VOTER;
    case KV_MEMBER_ADD_LEARNER: return RAFT_CONF_ADD_LEARNER;
    case KV_MEMBER_REMOVE: return RAFT_CONF_REMOVE;
    case KV_MEMBER_PROMOTE: return RAFT_CONF_PROMOTE;
    default: return 0;
    }
}

static raft_id next_free_id(node *n, const raft_conf *conf)
{
    raft_id max = 0;
    for (size_t i = 0; i < n->n_removed; i++) /* node thread: the only writer */
        max = n->removed_ids[i] > max ? n->removed_ids[i] : max;
    for (uint32_t i = 0; i < conf->n_voters; i++)
        max = conf->voters[i] > max ? conf->voters[i] : max;
    for (uint32_t i = 0; i < conf->n_learners; i++)
        max = conf->learners[i] > max ? conf->learners[i] : max;
    return max + 1;
}

/* Refuses what cannot be applied, so the client gets 400/404 at once
 * rather than a change that applies as a no-op. The API asks only after a
 * read barrier (api_wait_member), so this node's view of the members has
 * every change committed before the request: a 404 here is the cluster's. */
static int check_member_change(node *n, uint8_t op, raft_id id)
{
    const raft_conf *conf = raft_conf_get(n->r);
    bool member = raft_conf_has(conf, id);
    switch (op) {
    case RAFT_CONF_ADD_VOTER:
    case RAFT_CONF_ADD_LEARNER:
        /* ids are never reused: the old removal is still in the log */
        return member || removed_has(n, id) ? NODE_ERR_INVALID : NODE_OK;
    case RAFT_CONF_REMOVE: return member ? NODE_OK : NODE_ERR_NOT_FOUND;
    case RAFT_CONF_PROMOTE:
        if (!member)
            return NODE_ERR_NOT_FOUND;
        return raft_is_learner(n->r, id) ? NODE_OK : NODE_ERR_INVALID;
    default: return NODE_ERR_INVALID;
    }
}

typedef struct {
    const char *url;
    bool found;
} url_search;

static bool same_url(void *ud, uint64_t id, const char *url)
{
    url_search *s = ud;
    (void)id;
    s->found = strcmp(url, s->url) == 0;
    return !s->found;
}

/* An add whose URL is some member's already is refused (etcd refuses it
 * too): two ids at one address would have the transport deliver the new
 * id's messages to the old member, which drops them as not its own, so
 * the new member could never join. Exact string match, as etcd compares. */
static int check_new_url(node *n, uint8_t op, const char *url)
{
    if ((op != RAFT_CONF_ADD_VOTER && op != RAFT_CONF_ADD_LEARNER) || !url)
        return NODE_OK;
    url_search s = {.url = url};
    if (node_each_member_url(n, same_url, &s) < 0)
        return NODE_ERR_BUSY;
    return s.found ? NODE_ERR_URL_EXISTS : NODE_OK;
}

/* The envelope's payload: the peer URL, then, after a NUL (a URL has
 * none), an Idempotency-Key's stamp. */
static int encode_member_change(node *n, pending *p, uint8_t op, raft_id id, const event *ev)
{
    buf ctx, payload;
    buf_init(&ctx);
    buf_init(&payload);
    const char *u = ev->url ? ev->url : "";
    int bad = buf_append(&payload, u, strlen(u)) < 0 ||
              (ev->len &&
               (buf_put_u8(&payload, 0) < 0 || buf_append(&payload, ev->data, ev->len) < 0)) ||
              envelope_wrap(&ctx, n->cfg->id, p->seq,
                            payload.data ? payload.data : (const uint8_t *)"", payload.len) < 0;
    buf_free(&payload);
    if (bad) {
        buf_free(&ctx);
        return -1;
    }
    raft_conf_change cc = {.op = op, .id = id, .ctx_len = (uint32_t)ctx.len, .ctx = ctx.data};
    size_t sz = raft_conf_change_size(&cc);
    int rc = -1;
    if (buf_reserve(&p->entry, sz) == 0 && raft_conf_change_encode(&cc, p->entry.data, sz) == sz) {
        p->entry.len = sz;
        rc = 0;
    }
    buf_free(&ctx);
    return rc;
}

void node_handle_member(node *n, event *ev)
{
    uint8_t op = member_op_to_raft(ev->op);
    raft_id id = ev->id;
    if (id == 0 && (op == RAFT_CONF_ADD_VOTER || op == RAFT_CONF_ADD_LEARNER))
        id = next_free_id(n, raft_conf_get(n->r));
    int st = check_member_change(n, op, id);
    if (st == NODE_OK)
        st = check_new_url(n, op, ev->url);
    if (st != NODE_OK) {
        event_fail(ev, st);
        return;
    }
    if (ev->chosen)
        *ev->chosen = id;
    pending *p = node_new_pending(n, ev);
    if (!p || encode_member_change(n, p, op, id, ev) < 0) {
        if (p)
            waiters_free_pending(p);
        event_fail(ev, NODE_ERR_INTERNAL);
        return;
    }
    p->is_conf = true;
    node_propose_pending(n, p);
}
