/* waitline: the ordered line of keys that the server-side lock and
 * election stand in (etcd's v3lock / v3election recipe). A participant
 * owns the key {name}/{lease id in hex}, created with its lease by a
 * create-only txn; its place is that key's create revision. It is first
 * in line when no other key directly under {name}/ has a smaller create
 * revision; until then it waits — connection suspended — for the deletion
 * of its predecessor only (no thundering herd), and re-checks. A waiter
 * whose client hangs up leaves the line (its key is deleted) within about
 * a second (api_client_gone).
 *
 * Private to src/api/recipes/ (h_lock.c, h_election.c, h_observe.c).
 * Must never block a thread: every wait suspends the connection and a
 * watch hub callback resumes it.
 */
#ifndef RAFTKV_API_RECIPES_WAITLINE_H
#define RAFTKV_API_RECIPES_WAITLINE_H

#include "api/api_int.h"

enum wl_outcome {
    WL_FIRST = 0,   /* first in line: the lock is held / leadership won */
    WL_TIMEOUT = 1, /* ?timeout passed: the key was deleted again */
    WL_LOST = 2,    /* the key vanished while waiting (lease expired, deleted) */
};

typedef struct {
    uint8_t *prefix; /* {name}/ */
    uint32_t prefix_len;
    uint8_t *key;    /* {name}/{lease hex} */
    uint32_t key_len;
    int64_t lease;
    int64_t rev;       /* the key's create revision: the place in line */
    int64_t view_rev;  /* store revision of the last check */
    uint64_t deadline; /* monotonic ms; 0: none */
    watch_watcher *w;  /* on the predecessor (or, for observe, the leader) */
    uint8_t *watched;  /* the key or prefix w is on */
    uint32_t watched_len;
    bool watched_prefix;
    int64_t cursor;    /* observe: the client's start_revision */
    bool gone;         /* leaving because the client hung up */
    void (*done)(api_req *r, int outcome); /* answers; r->ext is the wl */
} wl;

/* Scans the direct children of s->prefix at the current revision. */
typedef struct {
    kv_list all;
    int64_t header_rev;
    const kv_kv *mine;   /* create_revision == s->rev */
    const kv_kv *pred;   /* greatest create_revision < s->rev */
    const kv_kv *lowest; /* smallest create_revision: the holder / leader */
} wl_view;

/* Creates r->ext for name and lease (400 and NULL on a bad name or when
 * out of memory). timeout_s < 0: wait forever. */
wl *api_wl_new(api_req *r, int64_t lease, int64_t timeout_s);
/* Joins the line (a create-only txn putting value with the lease; an
 * existing key of the same lease keeps its place), waits until first, and
 * calls s->done once. 404 lease_not_found for an unknown lease. */
void api_wl_join(api_req *r, const uint8_t *value, uint32_t value_len);
/* Reads the line at rev (0: current). KV_OK or a kv_err. */
int api_wl_read(api *a, const wl *s, int64_t rev, wl_view *v);
void api_wl_view_free(wl_view *v);
/* Parks r until an event at or after s->view_rev + 1 touches key (or the
 * prefix), the deadline, or the next client probe (about a second); then
 * runs then, which must check api_client_gone(). filters: enum watch_filter. */
void api_wl_wait(api_req *r, const uint8_t *key, uint32_t len, bool prefix, unsigned filters,
             api_handler_fn then);
/* Proposes ops guarded by "key's create revision == rev" (rev 0: the key
 * exists) and runs then (r->res: the result; succeeded false when the
 * guard failed). */
void api_wl_guarded(api_req *r, const uint8_t *key, uint32_t key_len, int64_t rev, const kv_op *ops,
                size_t n_ops, api_handler_fn then);
/* ?timeout= in seconds (0 to a day; dflt when absent): 0, or -1 after a
 * 400. */
int api_wl_query_timeout(api_req *r, int64_t dflt, int64_t *timeout);

/* The line's head (the election's leader) as an answer: {header (at
 * rev), kv (absent: nobody), next_revision (rev + 1, if next)}. */
json_t *api_wl_leader_json(api *a, const kv_kv *leader, int64_t rev, bool next);

#endif
