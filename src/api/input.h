/* input: reading a request — its query-string parameters (params.c) and
 * its body, key span and post-barrier reader (input.c). Private to
 * src/api/.
 *
 * Must never: write anything (these only read and validate), or return
 * an error without having answered it: each helper that fails has
 * already queued exactly one answer (400 naming the parameter or field,
 * or 500/503), so the handler just returns.
 */
#ifndef RAFTKV_API_INPUT_H
#define RAFTKV_API_INPUT_H

#include "api/api_int.h"

/* ---- query parameters (params.c; raw, percent-decoded there): each
 * returns 0, or -1 after replying 400 naming the parameter ---- */
int api_query_only(api_req *r, const char *const *allowed);
int api_query_bool(api_req *r, const char *name, bool *out);
int api_query_i64(api_req *r, const char *name, int64_t min, int64_t *out, bool *present);
/* Decoded bytes, malloc'd (NULL when absent). */
int api_query_bytes(api_req *r, const char *name, uint8_t **out, size_t *len);

/* ---- the body and the key span (input.c) ---- */
/* Parses r->body as a JSON object; replies 400 and returns NULL if it is
 * not. The caller owns the result (usually as r->doc). */
json_t *api_body_json(api_req *r);
/* An integer field of r->doc in [min, max]: 0 (left alone if absent and
 * not required), or -1 after a 400 naming the field. */
int api_body_int(api_req *r, const char *name, int64_t min, int64_t max, bool required,
                 int64_t *out);
/* The key span of a key route from the key and ?prefix / ?range_end into
 * r->op.span (GET/DELETE /kv and /watch share it): 0, or -1 after a 400. */
int api_parse_span(api_req *r);
/* For a read resumed after its barrier: a kv reader, or NULL once the
 * failed barrier or the lack of a reader has been answered. */
kv_conn *api_reader_after_barrier(api_req *r);

#endif
