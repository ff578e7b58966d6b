/* input: the request-reading helpers handlers share — the JSON body and
 * its integer fields, the key span of a key route, and the kv reader
 * after a read barrier (see input.h).
 *
 * Must never write anything, call a handler, or fail without answering:
 * every error path queues one 400/500/503 before returning.
 */
#include "api/input.h"

#include <stdlib.h>

json_t *api_body_json(api_req *r)
{
    json_error_t jerr;
    bool oom;
    json_t *root = json_safe_parse(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr, &oom);
    if (oom) {
        api_reply_error(r, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    if (!root) {
        api_reply_error(r, 400, "invalid_json", NULL, "body: %s", jerr.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        api_reply_error(r, 400, "invalid_json", NULL, "body: expected a JSON object");
        return NULL;
    }
    return root;
}

int api_body_int(api_req *r, const char *name, int64_t min, int64_t max, bool required,
                 int64_t *out)
{
    json_t *v = json_object_get(r->doc, name);
    if (!v && !required)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        api_reply_error(r, 400, "invalid_argument", NULL,
                        "%s: expected an integer from %lld to %lld", name, (long long)min,
                        (long long)max);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

/* Fills r->op.span from the key and ?prefix / ?range_end. An empty key
 * is allowed only as the start of a range (it then means "from the first
 * key", spelled "\0" as etcd does). */
int api_parse_span(api_req *r)
{
    static const uint8_t zero[1] = {0};
    bool prefix = false;
    size_t end_len = 0;
    if (api_query_bool(r, "prefix", &prefix) < 0 ||
        api_query_bytes(r, "range_end", &r->end, &end_len) < 0)
        return -1;
    kv_span *sp = &r->op.span;
    if (prefix && r->end) {
        api_reply_error(r, 400, "invalid_argument", NULL, "prefix: cannot be combined with range_end");
        return -1;
    }
    if (prefix) {
        r->end = malloc(r->route.key_len + 1);
        if (!r->end) {
            api_reply_error(r, 500, "internal", NULL, "out of memory");
            return -1;
        }
        end_len = kv_prefix_end(r->route.key, (uint32_t)r->route.key_len, r->end);
    }
    sp->key = r->route.key;
    sp->key_len = (uint32_t)r->route.key_len;
    sp->has_end = r->end != NULL;
    sp->end = r->end;
    sp->end_len = (uint32_t)end_len;
    if (sp->key_len == 0 && sp->has_end) {
        sp->key = zero;
        sp->key_len = 1;
    }
    if (sp->key_len == 0) {
        api_reply_error(r, 400, "invalid_argument", NULL, "key: must not be empty");
        return -1;
    }
    return 0;
}

kv_conn *api_reader_after_barrier(api_req *r)
{
    if (r->status != NODE_OK) {
        api_reply_node_error(r, r->status);
        return NULL;
    }
    kv_conn *c = kv_reader_acquire(r->a->kv);
    if (!c)
        api_reply_error(r, 500, "internal", NULL, "no reader available");
    return c;
}
