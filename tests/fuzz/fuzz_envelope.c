/* fuzz_envelope: what the node parses of a committed entry before applying
 * it (src/server/node.c apply_normal / apply_conf): the envelope
 * (envelope_open), then for a NORMAL entry kv's command (kv_cmd_decode),
 * for a CONF entry the conf change (raft_conf_change_decode) whose ctx is
 * an envelope around the peer URL. The first input byte picks the entry
 * type (even NORMAL, odd CONF). Entries come from peers, so: no crash, a
 * payload lies inside its entry, and each layer encodes back to its input. */
#include "fuzz.h"
#include "kv/kv_internal.h"
#include "raft/raft.h"
#include "util/util.h"

#include <string.h>

/* The node's entry envelope (src/server/envelope.c). Declared here rather
 * than included: its header moves with the split of src/server (node_int.h
 * today, envelope.h after it), and these match both. */
int envelope_wrap(buf *out, uint64_t origin, uint64_t seq, const void *payload, size_t len);
int envelope_open(const uint8_t *data, size_t len, uint64_t *origin, uint64_t *seq,
                  const uint8_t **payload, size_t *plen);

/* The envelope, checked against envelope_wrap; the payload on success. */
static int open_envelope(const uint8_t *data, size_t size, const uint8_t **payload, size_t *plen)
{
    uint64_t origin, seq;
    if (envelope_open(data, size, &origin, &seq, payload, plen) < 0)
        return -1;
    FUZZ_CHECK(*payload >= data && *payload + *plen == data + size);
    buf b;
    buf_init(&b);
    FUZZ_CHECK(envelope_wrap(&b, origin, seq, *payload, *plen) == 0);
    FUZZ_CHECK(b.len == size && memcmp(b.data, data, size) == 0);
    buf_free(&b);
    return 0;
}

static void normal_entry(const uint8_t *data, size_t size)
{
    const uint8_t *payload;
    size_t plen;
    if (open_envelope(data, size, &payload, &plen) < 0)
        return;
    kv_cmd c;
    if (kv_cmd_decode(payload, plen, &c) == KV_OK)
        kv_cmd_free(&c);
}

/* A decoded change applied to a 3-voter conf keeps the conf well formed. */
static void check_conf_apply(const raft_conf_change *cc)
{
    raft_conf conf = {.n_voters = 3, .voters = {1, 2, 3}};
    (void)raft_conf_apply(&conf, cc);
    FUZZ_CHECK(conf.n_voters <= RAFT_MAX_MEMBERS && conf.n_learners <= RAFT_MAX_MEMBERS);
    for (uint32_t i = 0; i < conf.n_voters; i++)
        for (uint32_t k = 0; k < conf.n_learners; k++)
            FUZZ_CHECK(conf.voters[i] != conf.learners[k]);
}

static void conf_entry(const uint8_t *data, size_t size)
{
    raft_conf_change cc;
    if (raft_conf_change_decode(data, size, &cc) < 0)
        return;
    FUZZ_CHECK(raft_conf_change_size(&cc) == size);
    uint8_t *again = malloc(size);
    FUZZ_CHECK(again);
    FUZZ_CHECK(raft_conf_change_encode(&cc, again, size) == size);
    FUZZ_CHECK(memcmp(again, data, size) == 0);
    free(again);
    check_conf_apply(&cc);
    const uint8_t *url;
    size_t url_len;
    (void)open_envelope(cc.ctx, cc.ctx_len, &url, &url_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    /* an exact-size copy, so ASan sees any read past the entry */
    uint8_t *e = malloc(size - 1 ? size - 1 : 1);
    FUZZ_CHECK(e);
    memcpy(e, data + 1, size - 1);
    if (data[0] & 1)
        conf_entry(e, size - 1);
    else
        normal_entry(e, size - 1);
    free(e);
    return 0;
}
