/* removed: the ids removed from the cluster, ever. Loaded from kv at start
 * and extended as removals are applied. Two uses: a removed id is never
 * given out again (a node that replayed its own old removal would stop),
 * and the peer listener answers a removed node's messages with 410 Gone so
 * it stops itself even if it never saw its removal committed. Shared with
 * transport threads, so every access takes the lock. Must never forget an
 * id except by reloading kv's own list (after a snapshot install). */
#include "server/node_int.h"
#include "util/failpoint.h"

#include <stdlib.h>

int removed_load(node *n)
{
    if (failpoint_hit("removed.load"))
        return -1;
    kv_conn *c = kv_reader_acquire(n->kv);
    uint64_t *ids = NULL;
    size_t cnt = 0;
    int rc = c && kv_removed_members(c, &ids, &cnt) == KV_OK ? 0 : -1;
    if (c)
        kv_reader_release(n->kv, c);
    if (rc < 0)
        return -1;
    pthread_mutex_lock(&n->removed_mu);
    free(n->removed_ids);
    n->removed_ids = ids;
    n->n_removed = cnt;
    pthread_mutex_unlock(&n->removed_mu);
    return 0;
}

int removed_add(node *n, uint64_t id)
{
    if (removed_has(n, id))
        return 0;
    pthread_mutex_lock(&n->removed_mu);
    uint64_t *ids = realloc(n->removed_ids, (n->n_removed + 1) * sizeof *ids);
    if (ids) {
        ids[n->n_removed++] = id;
        n->removed_ids = ids;
    }
    pthread_mutex_unlock(&n->removed_mu);
    return ids ? 0 : -1;
}

bool removed_has(node *n, uint64_t id)
{
    bool found = false;
    pthread_mutex_lock(&n->removed_mu);
    for (size_t i = 0; i < n->n_removed && !found; i++)
        found = n->removed_ids[i] == id;
    pthread_mutex_unlock(&n->removed_mu);
    return found;
}

void removed_free(node *n)
{
    free(n->removed_ids);
    n->removed_ids = NULL;
    n->n_removed = 0;
}
