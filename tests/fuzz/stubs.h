/* stubs: libmicrohttpd and the node, replaced at link time for the
 * harnesses that run the api's real reply path without a socket
 * (fuzz_query, fuzz_body). A harness that lists stubs.c in its SOURCES
 * gets these definitions instead of the shared library's (libmicrohttpd)
 * and instead of src/server's (the node is never started). Owns the one
 * fake connection: the query string MHD would have split, and the answers
 * queued on it. (Not named fuzz_*.c: scripts/fuzz takes every such file
 * for a harness.)
 *
 * Must never: open a socket, start a node or a thread, or look into an
 * answer's body: it counts answers and keeps the last status, which
 * fuzz_check_answer holds to the api's reader contract; any other
 * property is its harness's. */
#ifndef RAFTKV_FUZZ_STUBS_H
#define RAFTKV_FUZZ_STUBS_H

#include "api/api_int.h"

#define FUZZ_MAX_PAIRS 64

/* One query-string parameter as MHD hands it over (values still
 * percent-encoded, as raftkv's keep_escaped unescaper leaves them). */
typedef struct {
    const char *key, *value; /* value NULL for a bare "?key" */
    size_t key_len, value_len;
} fuzz_pair;

/* The fake connection: what MHD_lookup_connection_value_n searches, and
 * what MHD_queue_response records. */
typedef struct {
    fuzz_pair pairs[FUZZ_MAX_PAIRS];
    size_t n;
    int queued;    /* responses queued since the last fuzz_conn_reset */
    unsigned code; /* status of the last one */
} fuzz_conn;

extern fuzz_conn fuzz_the_conn;

/* A zeroed request of api a on the fake connection; no answers counted. */
void fuzz_req_init(api_req *r, api *a);
/* Forgets the answers queued so far (r may answer again). */
void fuzz_conn_reset(api_req *r);
/* The api's reader contract: rc is 0 with no answer queued, or -1 with
 * exactly one, a 400 (500 only for out of memory). */
void fuzz_check_answer(int rc);

#endif
