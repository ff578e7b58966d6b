/* kv_lists: the result containers of kv.h (kv lists, results, events,
 * members) — building them from SQLite rows (each verified against its
 * checksum first) and freeing them. Must never run a query itself:
 * callers hand in a row that is already stepped. */
#include "kv/kv_internal.h"

#include <stdlib.h>
#include <string.h>

/* Arrays grow only through here, doubling whenever n is 0 or a power of
 * two, so their capacity never needs storing. */
int kv_grow(void **arr, size_t n, size_t elem)
{
    if (n & (n - 1))
        return 0;
    size_t cap = n ? 2 * n : 1;
    if (cap > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*arr, cap * elem);
    if (!p)
        return -1;
    *arr = p;
    return 0;
}

int kv_collect_rows(sqlite3_stmt *st, void **arr, size_t *n, size_t elem,
                    void (*fill)(sqlite3_stmt *st, void *item))
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (kv_grow(arr, *n, elem) < 0)
            break;
        fill(st, (char *)*arr + *n * elem);
        (*n)++;
    }
    return rc == SQLITE_DONE ? KV_OK : KV_ERR_INTERNAL;
}

static uint8_t *column_dup(sqlite3_stmt *st, int col, uint32_t *len)
{
    const void *p = sqlite3_column_blob(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (n < 0 || (uint64_t)n > UINT32_MAX)
        return NULL;
    *len = (uint32_t)n;
    return xmemdup(p, (size_t)n);
}

int kv_kv_from_row(kv_db *d, sqlite3_stmt *st, kv_kv *out, bool with_value)
{
    memset(out, 0, sizeof *out);
    int rc = kv_row_check(d, st);
    if (rc != KV_OK)
        return rc;
    out->key = column_dup(st, KV_COL_KEY, &out->key_len);
    if (!out->key)
        return KV_ERR_INTERNAL;
    if (with_value) {
        out->value = column_dup(st, KV_COL_VALUE, &out->value_len);
        if (!out->value) {
            kv_kv_free(out);
            return KV_ERR_INTERNAL;
        }
    }
    out->create_revision = sqlite3_column_int64(st, KV_COL_CREATE);
    out->mod_revision = sqlite3_column_int64(st, KV_COL_MOD);
    out->version = sqlite3_column_int64(st, KV_COL_VERSION);
    out->lease = sqlite3_column_int64(st, KV_COL_LEASE);
    return 0;
}

void kv_kv_free(kv_kv *x)
{
    free(x->key);
    free(x->value);
    memset(x, 0, sizeof *x);
}

int kv_list_push_row(kv_db *d, kv_list *l, sqlite3_stmt *st, bool with_value)
{
    if (kv_grow((void **)&l->items, l->n, sizeof *l->items) < 0)
        return KV_ERR_INTERNAL;
    int rc = kv_kv_from_row(d, st, &l->items[l->n], with_value);
    if (rc == KV_OK)
        l->n++;
    return rc;
}

void kv_list_free(kv_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        kv_kv_free(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void kv_result_free(kv_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_ops; i++)
        kv_list_free(&r->ops[i].kvs);
    free(r->ops);
    r->ops = NULL;
    r->n_ops = 0;
    free(r->member_url);
    r->member_url = NULL;
}

void kv_event_list_free(kv_event_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        kv_kv_free(&l->items[i].kv);
        kv_kv_free(&l->items[i].prev_kv);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

void kv_members_free(kv_member *m, size_t n)
{
    if (!m)
        return;
    for (size_t i = 0; i < n; i++)
        free(m[i].peer_url);
    free(m);
}
