/* gw_kv: the gateway's kv/{range,put,deleterange,txn,compaction} — etcd's
 * RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest and
 * CompactionRequest onto the same kv commands as /kv and /txn. Range's
 * sorting and min/max revision filters are applied here, after the read,
 * as etcd's server applies them after its store's. Must never propose a
 * request it refused, or render a response against the wrong op list. */
#include "api/v3/gw.h"

#include <stdlib.h>
#include <string.h>

/* etcd's enums, in their protobuf order */
static const char *const sort_orders[] = {"NONE", "ASCEND", "DESCEND", NULL};
static const char *const sort_targets[] = {"KEY", "VERSION", "CREATE", "MOD", "VALUE", NULL};
static const char *const cmp_results[] = {"EQUAL", "GREATER", "LESS", "NOT_EQUAL", NULL};
static const char *const cmp_targets[] = {"VERSION", "CREATE", "MOD", "VALUE", "LEASE", NULL};
enum { ORDER_NONE, ORDER_ASCEND, ORDER_DESCEND };
enum { TARGET_KEY, TARGET_VERSION, TARGET_CREATE, TARGET_MOD, TARGET_VALUE };

/* What a range asks beyond kv_op: done after the read. */
typedef struct {
    int order, target;
    int64_t limit;
    int64_t min_mod, max_mod, min_create, max_create;
    bool serializable;
} range_extra;

static void *arena_new(api_req *r, size_t size)
{
    void *p = calloc(1, size);
    if (!p || !api_arena_keep(&r->arena, p)) {
        gw_reply_error(r, GW_INTERNAL, "etcdserver: out of memory");
        return NULL;
    }
    return p;
}

/* ---- range ---- */

static int parse_range(api_req *r, json_t *o, kv_op *op, range_extra *x)
{
    memset(op, 0, sizeof *op);
    op->type = KV_OP_RANGE;
    if (gw_span(r, o, &op->span) < 0 || gw_i64(r, o, "limit", &x->limit) < 0 ||
        gw_i64(r, o, "revision", &op->rev) < 0 || gw_bool(r, o, "keys_only", &op->keys_only) < 0 ||
        gw_bool(r, o, "count_only", &op->count_only) < 0 ||
        gw_bool(r, o, "serializable", &x->serializable) < 0 ||
        gw_enum(r, o, "sort_order", sort_orders, &x->order) < 0 ||
        gw_enum(r, o, "sort_target", sort_targets, &x->target) < 0 ||
        gw_i64(r, o, "min_mod_revision", &x->min_mod) < 0 ||
        gw_i64(r, o, "max_mod_revision", &x->max_mod) < 0 ||
        gw_i64(r, o, "min_create_revision", &x->min_create) < 0 ||
        gw_i64(r, o, "max_create_revision", &x->max_create) < 0)
        return -1;
    if (x->limit < 0 || op->rev < 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid request");
        return -1;
    }
    /* as etcd: sorting by anything but the key ascends unless told */
    if (x->target != TARGET_KEY && x->order == ORDER_NONE)
        x->order = ORDER_ASCEND;
    bool after = x->order != ORDER_NONE || x->min_mod || x->max_mod || x->min_create ||
                 x->max_create;
    op->limit = after ? 0 : x->limit; /* sorted or filtered: the limit applies after */
    return 0;
}

static bool keep(const range_extra *x, const kv_kv *item)
{
    return (!x->min_mod || item->mod_revision >= x->min_mod) &&
           (!x->max_mod || item->mod_revision <= x->max_mod) &&
           (!x->min_create || item->create_revision >= x->min_create) &&
           (!x->max_create || item->create_revision <= x->max_create);
}

static int cmp_bytes(const uint8_t *a, uint32_t an, const uint8_t *b, uint32_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static int cmp_i64(int64_t a, int64_t b) { return (a > b) - (a < b); }

static int sort_target; /* qsort has no user pointer; set under sort_mu */
static pthread_mutex_t sort_mu = PTHREAD_MUTEX_INITIALIZER;

static int by_target(const void *pa, const void *pb)
{
    const kv_kv *a = *(const kv_kv *const *)pa, *b = *(const kv_kv *const *)pb;
    int c = 0;
    switch (sort_target) {
    case TARGET_VERSION: c = cmp_i64(a->version, b->version); break;
    case TARGET_CREATE: c = cmp_i64(a->create_revision, b->create_revision); break;
    case TARGET_MOD: c = cmp_i64(a->mod_revision, b->mod_revision); break;
    case TARGET_VALUE: c = cmp_bytes(a->value, a->value_len, b->value, b->value_len); break;
    default: break;
    }
    return c ? c : cmp_bytes(a->key, a->key_len, b->key, b->key_len);
}

/* The kvs etcd would return: filtered, sorted, limited. *more says the
 * limit cut something. NULL on allocation failure. */
static json_t *select_kvs(const range_extra *x, const kv_op_result *res, bool keys_only,
                          bool *more)
{
    const kv_kv **sel = malloc((res->kvs.n ? res->kvs.n : 1) * sizeof *sel);
    if (!sel)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < res->kvs.n; i++)
        if (keep(x, &res->kvs.items[i]))
            sel[n++] = &res->kvs.items[i];
    if (x->order != ORDER_NONE) {
        pthread_mutex_lock(&sort_mu);
        sort_target = x->target;
        qsort(sel, n, sizeof *sel, by_target);
        pthread_mutex_unlock(&sort_mu);
    }
    if (x->order == ORDER_DESCEND)
        for (size_t i = 0; i < n / 2; i++) {
            const kv_kv *t = sel[i];
            sel[i] = sel[n - 1 - i];
            sel[n - 1 - i] = t;
        }
    *more = res->more || (x->limit > 0 && n > (size_t)x->limit);
    if (x->limit > 0 && n > (size_t)x->limit)
        n = (size_t)x->limit;
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        if (json_array_append_new(a, gw_kv(sel[i], keys_only)) < 0) {
            json_decref(a);
            a = NULL;
        }
    }
    free(sel);
    return a;
}

/* A RangeResponse's fields (header aside) into o. */
static int range_fields(json_t *o, const range_extra *x, const kv_op_result *res,
                        const kv_op *op)
{
    bool more = false;
    json_t *kvs = op->count_only ? json_array() : select_kvs(x, res, op->keys_only, &more);
    if (gw_set_nonempty(o, "kvs", kvs) < 0 || (more && json_object_set_new(o, "more",
                                                                           json_true()) < 0))
        return -1;
    return gw_set_int(o, "count", res->count);
}

static void do_range(api_req *r)
{
    kv_conn *c = gw_reader(r);
    if (!api_may_read_op(r, c))
        return;
    kv_op_result res;
    memset(&res, 0, sizeof res);
    int64_t rev = 0;
    int err = kv_range(c, &r->op, &res, &rev);
    kv_reader_release(r->a->kv, c);
    if (err != KV_OK) {
        gw_reply_kv_error(r, err);
    } else {
        json_t *body = json_pack("{s:o}", "header", gw_header(r, rev));
        if (body && range_fields(body, r->ext, &res, &r->op) < 0) {
            json_decref(body);
            body = NULL;
        }
        gw_reply(r, body);
    }
    kv_list_free(&res.kvs);
}

void gw_range(api_req *r)
{
    json_t *o = gw_body(r);
    range_extra *x = o ? arena_new(r, sizeof *x) : NULL;
    if (!x || parse_range(r, o, &r->op, x) < 0)
        return;
    r->ext = x;
    if (x->serializable) {
        r->status = NODE_OK;
        do_range(r);
    } else {
        api_wait_barrier(r, do_range);
    }
}

/* ---- put and deleterange: one-op transactions ---- */

static int parse_put(api_req *r, json_t *o, kv_op *op)
{
    memset(op, 0, sizeof *op);
    op->type = KV_OP_PUT;
    bool ignore_value = false, ignore_lease = false;
    if (gw_bytes(r, o, "key", &op->span.key, &op->span.key_len) < 0 ||
        gw_bytes(r, o, "value", &op->value, &op->value_len) < 0 ||
        gw_i64(r, o, "lease", &op->lease) < 0 || gw_bool(r, o, "prev_kv", &op->prev_kv) < 0 ||
        gw_bool(r, o, "ignore_value", &ignore_value) < 0 ||
        gw_bool(r, o, "ignore_lease", &ignore_lease) < 0)
        return -1;
    if (op->span.key_len == 0) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: key is not provided");
        return -1;
    }
    if (ignore_value || ignore_lease) {
        gw_reply_error(r, GW_UNIMPLEMENTED,
                       "raftkv: ignore_value and ignore_lease are not supported");
        return -1;
    }
    return 0;
}

static int parse_delete(api_req *r, json_t *o, kv_op *op)
{
    memset(op, 0, sizeof *op);
    op->type = KV_OP_DELETE;
    return gw_span(r, o, &op->span) < 0 || gw_bool(r, o, "prev_kv", &op->prev_kv) < 0 ? -1 : 0;
}

/* The fields of a Put/DeleteRangeResponse (header aside) into o. */
static int write_fields(json_t *o, const kv_op_result *res, const kv_op *op)
{
    if (op->type == KV_OP_PUT)
        return op->prev_kv && res->kvs.n ? json_object_set_new(o, "prev_kv",
                                                               gw_kv(&res->kvs.items[0], false))
                                         : 0;
    if (gw_set_int(o, "deleted", res->deleted) < 0)
        return -1;
    return op->prev_kv ? gw_set_nonempty(o, "prev_kvs", gw_kvs(&res->kvs, false)) : 0;
}

static void finish_single(api_req *r)
{
    if (gw_write_failed(r))
        return;
    json_t *body = json_pack("{s:o}", "header", gw_header(r, r->res->revision));
    if (body && r->res->n_ops >= 1 && write_fields(body, &r->res->ops[0], &r->op) < 0) {
        json_decref(body);
        body = NULL;
    }
    gw_reply(r, body);
}

static void propose_txn(api_req *r, api_handler_fn then)
{
    buf cmd;
    buf_init(&cmd);
    int err = kv_encode_txn(&r->txn, &cmd);
    if (err == KV_ERR_INVALID)
        gw_reply_error(r, GW_INVALID_ARGUMENT, "etcdserver: invalid request");
    else if (err != KV_OK)
        gw_reply_error(r, GW_INTERNAL, "etcdserver: cannot encode the request");
    else
        api_propose_encoded(r, KV_OK, &cmd, then);
    buf_free(&cmd);
}

static void single_op(api_req *r, int (*parse)(api_req *, json_t *, kv_op *))
{
    json_t *o = gw_body(r);
    if (!o || parse(r, o, &r->op) < 0)
        return;
    r->txn = (kv_txn){.n_success = 1, .success = &r->op};
    propose_txn(r, finish_single);
}

void gw_put(api_req *r) { single_op(r, parse_put); }
void gw_deleterange(api_req *r) { single_op(r, parse_delete); }

/* ---- txn ---- */

static const int cmp_result_map[] = {KV_CMP_EQUAL, KV_CMP_GREATER, KV_CMP_LESS,
                                     KV_CMP_NOT_EQUAL};
static const int cmp_target_map[] = {KV_CMP_VERSION, KV_CMP_CREATE, KV_CMP_MOD, KV_CMP_VALUE,
                                     KV_CMP_LEASE};
static const char *const cmp_fields[] = {"version", "create_revision", "mod_revision", "value",
                                         "lease"};

static int parse_compare(api_req *r, json_t *o, kv_compare *c)
{
    int result = 0, target = 0;
    const uint8_t *end;
    uint32_t end_len;
    if (!json_is_object(o)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "invalid compare: expected an object");
        return -1;
    }
    if (gw_enum(r, o, "result", cmp_results, &result) < 0 ||
        gw_enum(r, o, "target", cmp_targets, &target) < 0 ||
        gw_bytes(r, o, "key", &c->key, &c->key_len) < 0 ||
        gw_bytes(r, o, "range_end", &end, &end_len) < 0)
        return -1;
    if (end_len) {
        gw_reply_error(r, GW_UNIMPLEMENTED, "raftkv: a compare over a range_end is not supported");
        return -1;
    }
    c->result = (uint8_t)cmp_result_map[result];
    c->target = (uint8_t)cmp_target_map[target];
    if (c->target == KV_CMP_VALUE)
        return gw_bytes(r, o, cmp_fields[target], &c->value, &c->value_len);
    return gw_i64(r, o, cmp_fields[target], &c->number);
}

/* One RequestOp: {"request_range"|"request_put"|"request_delete_range": {...}}. */
static int parse_request_op(api_req *r, json_t *o, kv_op *op)
{
    json_t *v;
    range_extra x = {0};
    if (!json_is_object(o)) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, "invalid request op: expected an object");
        return -1;
    }
    if ((v = json_object_get(o, "request_range"))) {
        if (parse_range(r, v, op, &x) < 0)
            return -1;
        if (x.order != ORDER_NONE || x.min_mod || x.max_mod || x.min_create || x.max_create) {
            gw_reply_error(r, GW_UNIMPLEMENTED,
                           "raftkv: sorting and revision filters inside a txn are not supported");
            return -1;
        }
        return 0;
    }
    if ((v = json_object_get(o, "request_put")))
        return parse_put(r, v, op);
    if ((v = json_object_get(o, "request_delete_range")))
        return parse_delete(r, v, op);
    if (json_object_get(o, "request_txn")) {
        gw_reply_error(r, GW_UNIMPLEMENTED, "raftkv: nested transactions are not supported");
        return -1;
    }
    gw_reply_error(r, GW_INVALID_ARGUMENT, "invalid request op: no request");
    return -1;
}

/* An array field of o parsed item by item into an arena array. */
static int parse_list(api_req *r, json_t *o, const char *name, size_t size, void **items,
                      size_t *n, int (*one)(api_req *, json_t *, void *))
{
    json_t *a = json_object_get(o, name);
    *items = NULL;
    *n = 0;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > KV_MAX_TXN_OPS) {
        gw_reply_error(r, GW_INVALID_ARGUMENT, json_is_array(a) ? "etcdserver: too many operations in txn request"
                                                                : "invalid txn: expected arrays");
        return -1;
    }
    if (json_array_size(a) == 0)
        return 0;
    char *arr = arena_new(r, json_array_size(a) * size);
    if (!arr)
        return -1;
    for (size_t i = 0; i < json_array_size(a); i++)
        if (one(r, json_array_get(a, i), arr + i * size) < 0)
            return -1;
    *items = arr;
    *n = json_array_size(a);
    return 0;
}

static int one_compare(api_req *r, json_t *o, void *out) { return parse_compare(r, o, out); }
static int one_op(api_req *r, json_t *o, void *out) { return parse_request_op(r, o, out); }

static json_t *op_response(const kv_op_result *res, const kv_op *op, int64_t rev)
{
    static const char *const names[] = {NULL, "response_range", "response_put",
                                        "response_delete_range"};
    range_extra x = {0};
    x.limit = op ? op->limit : 0;
    json_t *inner = json_pack("{s:{s:o}}", "header", "revision", gw_int(rev));
    int rc = !inner || !op ? -1
             : res->type == KV_OP_RANGE ? range_fields(inner, &x, res, op)
                                        : write_fields(inner, res, op);
    if (rc < 0 || res->type < KV_OP_RANGE || res->type > KV_OP_DELETE) {
        json_decref(inner);
        return NULL;
    }
    return json_pack("{s:o}", names[res->type], inner);
}

static bool op_changed(const kv_op_result *res)
{
    return res->type == KV_OP_PUT || (res->type == KV_OP_DELETE && res->deleted > 0);
}

/* Each op's header revision is the store's as that op saw it, as etcd
 * reports: the revision before the txn until its first change, the txn's
 * own revision from that op on. */
static int64_t op_revision(const kv_result *res, size_t i, bool *changed)
{
    bool any = false;
    for (size_t k = 0; k < res->n_ops; k++)
        any = any || op_changed(&res->ops[k]);
    *changed = *changed || op_changed(&res->ops[i]);
    return any && !*changed ? res->revision - 1 : res->revision;
}

static void finish_txn(api_req *r)
{
    if (gw_write_failed(r))
        return;
    const kv_result *res = r->res;
    const kv_op *ops = res->succeeded ? r->txn.success : r->txn.failure;
    size_t n_ops = res->succeeded ? r->txn.n_success : r->txn.n_failure;
    json_t *body = json_pack("{s:o}", "header", gw_header(r, res->revision));
    json_t *responses = json_array();
    bool changed = false;
    for (size_t i = 0; body && responses && i < res->n_ops; i++) {
        int64_t rev = op_revision(res, i, &changed);
        json_t *one = op_response(&res->ops[i], i < n_ops ? &ops[i] : NULL, rev);
        if (json_array_append_new(responses, one) < 0) {
            json_decref(responses);
            responses = NULL;
        }
    }
    if (body && res->succeeded && json_object_set_new(body, "succeeded", json_true()) < 0) {
        json_decref(body);
        body = NULL;
    }
    gw_reply_adding(r, body, "responses", responses);
}

void gw_txn(api_req *r)
{
    json_t *o = gw_body(r);
    void *cmp, *succ, *fail;
    if (!o || parse_list(r, o, "compare", sizeof(kv_compare), &cmp, &r->txn.n_compare,
                         one_compare) < 0 ||
        parse_list(r, o, "success", sizeof(kv_op), &succ, &r->txn.n_success, one_op) < 0 ||
        parse_list(r, o, "failure", sizeof(kv_op), &fail, &r->txn.n_failure, one_op) < 0)
        return;
    r->txn.compare = cmp;
    r->txn.success = succ;
    r->txn.failure = fail;
    propose_txn(r, finish_txn);
}

/* ---- compaction ---- */

static void finish_compaction(api_req *r)
{
    if (!gw_write_failed(r))
        gw_reply(r, json_pack("{s:o}", "header", gw_header(r, r->res->revision)));
}

void gw_compaction(api_req *r)
{
    json_t *o = gw_body(r);
    int64_t rev = 0;
    bool physical = false;
    if (!o || gw_i64(r, o, "revision", &rev) < 0 || gw_bool(r, o, "physical", &physical) < 0)
        return;
    buf cmd;
    buf_init(&cmd);
    int err = kv_encode_compact(rev, &cmd);
    if (err == KV_ERR_INVALID)
        gw_reply_error(r, GW_OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision");
    else
        api_propose_encoded(r, err, &cmd, finish_compaction);
    buf_free(&cmd);
}
