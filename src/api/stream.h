/* stream: chunked NDJSON answers fed by a watcher on the watch hub,
 * shared by GET /watch?stream=true (h_watch.c) and
 * GET /election/{name}/observe?stream=true (recipes/h_observe.c).
 * Private to src/api/.
 *
 * Must never: block an MHD thread, split a revision across lines of
 * different batches, move a cursor past an event it did not render, or
 * hold more than one chunk of events per stream.
 */
#ifndef RAFTKV_API_STREAM_H
#define RAFTKV_API_STREAM_H

#include "api/api_int.h"

#define API_PROGRESS_MS_DEFAULT 5000
#define API_PROGRESS_MS_MIN 100
#define API_PROGRESS_MS_MAX (3600 * 1000)

/* Appends the lines (JSON values) for one batch of events to `lines`
 * (none is fine). Returns KV_OK, or an error to have the batch fetched
 * again shortly (or the stream canceled if it was compacted meanwhile).
 * Runs on MHD threads, never concurrently with itself for one stream. */
typedef int (*api_stream_render_fn)(api *a, void *ud, const watch_batch *b, json_t *lines);

typedef struct {
    const kv_span *span;     /* what the watcher watches (it keeps a copy) */
    unsigned filters;        /* enum watch_filter */
    bool prev_kv;
    int64_t start;           /* the first revision to deliver */
    uint64_t progress_ms;    /* a progress line after this long idle; 0: never */
    json_t *first;           /* the first line (taken; NULL: none) */
    api_stream_render_fn render;
    /* Non-NULL when render's lines depend on the batch alone: streams
     * that fetched the same batch then share the text, under this tag. */
    const void *share_tag;
    void *ud;                /* render's; freed with ud_free when the stream ends */
    void (*ud_free)(void *ud);
    /* Other protocols' lines (etcd's gateway); NULL: the native ones. The
     * progress line at revision rev (everything before it delivered), and
     * the last line when history from the cursor is compacted (rc
     * KV_ERR_COMPACTED) or fails its checksum (KV_ERR_CORRUPT). */
    json_t *(*progress)(api *a, void *ud, int64_t rev);
    json_t *(*canceled)(api *a, void *ud, int rc, int64_t compact_rev);
    const char *content_type; /* NULL: application/x-ndjson */
} api_stream_spec;

/* Answers r with a chunked NDJSON stream: spec->first, then, for each
 * batch of events on the span from spec->start (whole revisions), the
 * lines render appends, and a progress line {header, events:[],
 * progress:true} every progress_ms while idle; a {canceled, reason:
 * "compacted"} line ends it when history is gone, a {canceled, reason:
 * "corrupt"} one when a stored record of it fails its checksum. Without
 * a watch hub it answers 503. Takes spec->first and spec->ud, also when it
 * cannot start. */
void api_stream_start(api_req *r, const api_stream_spec *spec);

#endif
