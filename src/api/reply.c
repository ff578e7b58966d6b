/* reply: turning answers into MHD responses — JSON bodies, error bodies
 * {"error","reason","header"}, raw bytes, and the status mapping of node
 * and kv errors. Counts every answer by class for /metrics.
 *
 * Must never: queue two answers for one request, leak a response (each is
 * destroyed right after queueing), or answer an error without a header.
 */
#include "api/api_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void api_count_answer(api *a, unsigned code)
{
    unsigned cls = code / 100;
    if (cls >= 1 && cls <= API_CODE_CLASSES)
        atomic_fetch_add(&a->answers[cls - 1], 1);
}

static void queue(api_req *r, unsigned code, struct MHD_Response *resp,
                  const char *const *headers)
{
    r->replied = true;
    for (size_t i = 0; resp && headers && headers[i]; i += 2) {
        if (MHD_add_response_header(resp, headers[i], headers[i + 1]) != MHD_YES) {
            MHD_destroy_response(resp);
            resp = NULL;
        }
    }
    if (resp && MHD_queue_response(r->conn, code, resp) == MHD_YES)
        api_count_answer(r->a, code);
    else
        r->queue_failed = true; /* MHD closes the connection instead */
    if (resp)
        MHD_destroy_response(resp);
}

static struct MHD_Response *with_ctype(struct MHD_Response *resp, const char *ctype)
{
    if (resp && ctype &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES) {
        MHD_destroy_response(resp);
        resp = NULL;
    }
    return resp;
}

void api_reply_raw(api_req *r, unsigned code, const char *ctype, const void *data,
                   size_t len, const char *const *headers)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
    queue(r, code, with_ctype(resp, ctype), headers);
}

/* The response takes data (malloc'd) and frees it when MHD is done, so a
 * body is never copied again. False if no response could be made: data is
 * then still the caller's. */
static bool queue_owned(api_req *r, unsigned code, const char *ctype, void *data, size_t len,
                        const char *const *headers)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback(len, data, free);
    queue(r, code, with_ctype(resp, ctype), headers);
    return resp != NULL;
}

void api_reply_buf(api_req *r, unsigned code, const char *ctype, buf *b)
{
    if (!b->data)
        api_reply_raw(r, code, ctype, "", 0, NULL);
    else if (queue_owned(r, code, ctype, b->data, b->len, NULL))
        buf_init(b); /* the bytes were the response's */
}

void api_reply_response(api_req *r, unsigned code, const char *ctype, struct MHD_Response *resp,
                        const char *const *headers)
{
    queue(r, code, with_ctype(resp, ctype), headers);
}

void api_reply_empty(api_req *r, unsigned code) { api_reply_raw(r, code, NULL, "", 0, NULL); }

/* The answer when memory ran out: static, so it needs none to build. */
static const char oom_body[] = "{\"error\":\"out of memory\",\"reason\":\"internal\"}\n";

enum MHD_Result api_reply_no_context(api *a, struct MHD_Connection *conn)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof oom_body - 1, (void *)oom_body, MHD_RESPMEM_PERSISTENT);
    resp = with_ctype(resp, "application/json");
    enum MHD_Result ok = resp ? MHD_queue_response(conn, 500, resp) : MHD_NO;
    if (ok == MHD_YES)
        api_count_answer(a, 500);
    if (resp)
        MHD_destroy_response(resp);
    return ok;
}

static void reply_json_h(api_req *r, unsigned code, json_t *body, const char *const *headers)
{
    char *text = json_safe_dump(body);
    json_decref(body);
    if (!text) {
        api_reply_raw(r, 500, "application/json", oom_body, sizeof oom_body - 1, NULL);
        return;
    }
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2); /* a trailing newline reads better in curl */
    if (withnl) {
        text = withnl;
        text[n++] = '\n';
        text[n] = 0;
    }
    if (!queue_owned(r, code, "application/json", text, n, headers))
        free(text);
}

void api_reply_json(api_req *r, unsigned code, json_t *body) { reply_json_h(r, code, body, NULL); }

static json_t *error_body(api_req *r, const char *reason, json_t *extra, const char *msg)
{
    json_t *o = extra ? extra : json_object();
    if (!o)
        return NULL;
    if (json_object_set_new(o, "error", json_string(msg)) < 0 ||
        json_object_set_new(o, "reason", json_string(reason)) < 0 ||
        (!json_object_get(o, "header") &&
         json_object_set_new(o, "header", api_json_header(r->a, -1)) < 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void reply_error_v(api_req *r, unsigned code, const char *reason, json_t *extra,
                          const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    reply_json_h(r, code, error_body(r, reason, extra, api_utf8_or(msg, reason)), NULL);
}

void api_reply_error(api_req *r, unsigned code, const char *reason, json_t *extra,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, code, reason, extra, fmt, ap);
    va_end(ap);
}

void api_reply_error_with(api_req *r, unsigned code, const char *reason, json_t *extra,
                               const char *fmt, ...)
{
    if (!extra) {
        reply_json_h(r, 500, NULL, NULL); /* the out-of-memory answer */
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, code, reason, extra, fmt, ap);
    va_end(ap);
}

void api_reply_405(api_req *r)
{
    const char *headers[] = {"Allow", r->route.allow, NULL};
    json_t *body = error_body(r, "method_not_allowed", NULL, "method not allowed");
    reply_json_h(r, 405, body, headers);
}

void api_reply_node_error(api_req *r, int status)
{
    unsigned code;
    switch (status) {
    case NODE_ERR_NO_LEADER:
    case NODE_ERR_TIMEOUT:
    case NODE_ERR_STOPPING:
    case NODE_ERR_BUSY: code = 503; break;
    case NODE_ERR_CONF_PENDING:
    case NODE_ERR_NOT_READY:
    case NODE_ERR_URL_EXISTS: code = 409; break;
    case NODE_ERR_INVALID: code = 400; break;
    case NODE_ERR_NOT_FOUND: code = 404; break;
    default: code = 500; break;
    }
    const char *reason = node_strerror(status);
    api_reply_error(r, code, reason, NULL, "node: %s", reason);
}

void api_reply_kv_error(api_req *r, int err, int64_t compact_revision)
{
    switch (err) {
    case KV_ERR_COMPACTED:
        api_reply_error_with(r, 410, "compacted",
                             json_pack("{s:I}", "compact_revision", (json_int_t)compact_revision),
                             "revision: compacted (compact_revision %lld)",
                             (long long)compact_revision);
        break;
    case KV_ERR_FUTURE_REV:
        api_reply_error(r, 400, "future_revision", NULL, "revision: is in the future");
        break;
    case KV_ERR_INVALID:
        api_reply_error(r, 400, "invalid_argument", NULL, "request: refused as invalid");
        break;
    case KV_ERR_NOT_FOUND: /* in a kv result: a PUT named an unknown lease */
        api_reply_error(r, 404, "lease_not_found", NULL, "lease: not found (expired or revoked)");
        break;
    case KV_ERR_CORRUPT: /* a stored row failed its checksum: never served */
        api_reply_error(r, 503, "corrupt", NULL, API_CORRUPT_MSG);
        break;
    case KV_ERR_PERMISSION: /* apply: the user may not touch every key of the command */
        api_reply_error(r, 403, "permission_denied", NULL, "user %s may not do this",
                        r->as_user ? r->user : "?");
        break;
    case KV_ERR_AUTH: /* apply: the user is gone or its token's generation moved on */
        api_reply_error(r, 401, "unauthenticated", NULL,
                        "the user is gone or its password or roles changed: log in again");
        break;
    case KV_ERR_IDEM_REUSED:
        api_reply_error(r, 422, "idempotency_key_reused", NULL,
                        "Idempotency-Key: already used for another request in the last 10 minutes");
        break;
    case KV_ERR_NO_SPACE: /* the NOSPACE alarm refused a write that adds data */
        api_reply_error(r, 507, "no_space", NULL,
                        "space: the NOSPACE alarm is active (compact, defrag, then disarm)");
        break;
    default:
        api_reply_error(r, 500, "internal", NULL, "storage error");
        break;
    }
}
