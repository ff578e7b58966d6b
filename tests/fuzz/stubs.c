/* stubs: the libmicrohttpd functions the api's reply and query paths
 * call, and the node's functions an answer's header reads, for harnesses
 * run without a socket or a node (see stubs.h). The program's own
 * definitions win over the shared library's, so the api's real code runs
 * against these. Owns the fake connection; nothing else.
 *
 * Must never: keep a response alive past MHD_destroy_response (the leak
 * checker is on), look into an answer's body, or stub what no harness
 * needs: each definition here hides the real one from every program that
 * links this file. */
#include "stubs.h"
#include "fuzz.h"
#include "server/node.h"

#include <stdlib.h>
#include <string.h>

fuzz_conn fuzz_the_conn;

void fuzz_req_init(api_req *r, api *a)
{
    memset(r, 0, sizeof *r);
    r->a = a;
    r->conn = (struct MHD_Connection *)&fuzz_the_conn;
    fuzz_the_conn.queued = 0;
}

void fuzz_conn_reset(api_req *r)
{
    r->replied = false;
    fuzz_the_conn.queued = 0;
}

void fuzz_check_answer(int rc)
{
    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(fuzz_the_conn.queued == (rc < 0 ? 1 : 0));
    FUZZ_CHECK(rc == 0 || fuzz_the_conn.code == 400 || fuzz_the_conn.code == 500);
}

/* ---- libmicrohttpd ---- */

/* Only what MHD_destroy_response needs: a body handed over with a free
 * callback is freed there, as MHD does. */
struct MHD_Response {
    void *data;
    MHD_ContentReaderFreeCallback crfc;
};

int MHD_get_connection_values_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                MHD_KeyValueIteratorN it, void *cls)
{
    int n = 0;
    for (size_t i = 0; i < fuzz_the_conn.n; i++, n++) {
        const fuzz_pair *p = &fuzz_the_conn.pairs[i];
        if (it && it(cls, kind, p->key, p->key_len, p->value, p->value_len) != MHD_YES)
            return n + 1;
    }
    return n;
}

enum MHD_Result MHD_lookup_connection_value_n(struct MHD_Connection *c, enum MHD_ValueKind kind,
                                              const char *key, size_t key_size,
                                              const char **value, size_t *value_size)
{
    for (size_t i = 0; i < fuzz_the_conn.n; i++) {
        const fuzz_pair *p = &fuzz_the_conn.pairs[i];
        if (p->key_len == key_size && memcmp(p->key, key, key_size) == 0) {
            *value = p->value;
            *value_size = p->value_len;
            return MHD_YES;
        }
    }
    return MHD_NO;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer,
                                                     enum MHD_ResponseMemoryMode mode)
{
    (void)size, (void)buffer, (void)mode; /* the api only uses MUST_COPY */
    return calloc(1, sizeof(struct MHD_Response));
}

struct MHD_Response *MHD_create_response_from_buffer_with_free_callback(
    size_t size, void *buffer, MHD_ContentReaderFreeCallback crfc)
{
    struct MHD_Response *r = calloc(1, sizeof *r);
    if (r) {
        r->data = buffer;
        r->crfc = crfc;
    }
    return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *h, const char *v)
{
    return MHD_YES;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int code,
                                   struct MHD_Response *r)
{
    fuzz_the_conn.queued++;
    fuzz_the_conn.code = code;
    return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
    if (r && r->crfc)
        r->crfc(r->data);
    free(r);
}

/* ---- the node: an answer's header asks it for ids and revision ---- */

void node_get_info(node *n, node_info *out) { memset(out, 0, sizeof *out); }
bool node_disk_full(node *n) { return n == NULL; }
