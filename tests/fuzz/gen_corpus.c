/* gen_corpus: writes the seed corpus of every harness into DIR/<name>/
 * (tests/fuzz/corpus is its output, committed): small valid inputs made by
 * the real encoders, plus a few near misses. Run by
 * `scripts/fuzz --seed-corpus`; deterministic, so a rerun changes nothing. */
#include "kv/kv_internal.h"
#include "raft/raft.h"
#include "raft/raft.h"
#include "util/util.h"
#include "transport/transport_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The node's entry envelope (src/server/envelope.c). Declared here rather
 * than included: its header moves with the split of src/server (node_int.h
 * today, envelope.h after it), and these match both. */
int envelope_wrap(buf *out, uint64_t origin, uint64_t seq, const void *payload, size_t len);
int envelope_open(const uint8_t *data, size_t len, uint64_t *origin, uint64_t *seq,
                  const uint8_t **payload, size_t *plen);

#define CLUSTER_ID 0x5eedULL /* fuzz_snap_header decodes with it */

static const char *top;

static void die(const char *what)
{
    fprintf(stderr, "gen_corpus: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Writes DIR/name/file: an optional prefix byte (-1: none), then p. */
static void seed(const char *name, const char *file, int prefix, const void *p, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", top, name);
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        die(path);
    snprintf(path, sizeof path, "%s/%s/%s", top, name, file);
    FILE *f = fopen(path, "wb");
    if (!f || (prefix >= 0 && fputc(prefix, f) == EOF) || (n && fwrite(p, 1, n, f) != n) ||
        fclose(f) != 0)
        die(path);
}

static void seed_text(const char *name, const char *file, const char *text)
{
    seed(name, file, -1, text, strlen(text));
}

/* ---- peer messages ---- */

static raft_entry entries[2] = {
    {.term = 2, .index = 6, .type = RAFT_ENTRY_NORMAL, .len = 3, .data = (uint8_t *)"abc",
     .crc = 0x364b3fb7 /* crc32c("abc") */},
    {.term = 2, .index = 7, .type = RAFT_ENTRY_NORMAL, .len = 0, .data = NULL},
};

static raft_msg snap_msg(void)
{
    raft_msg m = {.type = RAFT_MSG_SNAP, .from = 1, .to = 2, .term = 3};
    m.snapshot = (raft_snapshot_meta){.index = 40, .term = 3,
                                      .conf = {.n_voters = 3, .voters = {1, 2, 3},
                                               .n_learners = 1, .learners = {4}}};
    return m;
}

static void encoded(const char *file, const raft_msg *msgs, size_t n, buf *b)
{
    buf_reset(b);
    if (transport_encode(CLUSTER_ID, msgs, n, b) < 0)
        die("transport_encode");
    seed("codec", file, -1, b->data, b->len);
}

static void codec_seeds(void)
{
    raft_msg app = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 2, .log_term = 1,
                    .index = 5, .commit = 5, .n_entries = 2, .entries = entries};
    raft_msg vote = {.type = RAFT_MSG_VOTE, .flags = RAFT_FLAG_TRANSFER, .from = 3, .to = 1,
                     .term = 4, .log_term = 2, .index = 7};
    raft_msg resp = {.type = RAFT_MSG_APPEND_RESP, .reject = true, .from = 2, .to = 1,
                     .term = 2, .index = 5, .reject_hint = 3};
    raft_msg hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 3, .term = 2, .commit = 7,
                   .context = 99};
    raft_msg snap = snap_msg();
    raft_msg batch[] = {app, resp, hb};
    buf b;
    buf_init(&b);
    encoded("append", &app, 1, &b);
    encoded("vote", &vote, 1, &b);
    encoded("snap", &snap, 1, &b);
    encoded("batch3", batch, 3, &b);
    encoded("empty", NULL, 0, &b);
    /* the snapshot header: odd first byte = the header text */
    char *hex = transport_snap_header_encode(CLUSTER_ID, &snap);
    if (!hex)
        die("transport_snap_header_encode");
    seed("snap_header", "hex", 1, hex, strlen(hex));
    free(hex);
    /* even first byte = the batch without its CRC (the harness adds it) */
    buf_reset(&b);
    if (transport_encode(CLUSTER_ID, &snap, 1, &b) < 0)
        die("transport_encode");
    seed("snap_header", "raw", 0, b.data, b.len - 4);
    buf_free(&b);
}

/* ---- api text ---- */

static void text_seeds(void)
{
    seed_text("pct", "plain", "config/mode");
    seed_text("pct", "escaped", "a%20b%2Fc%e2%9c%93");
    seed_text("pct", "binary", "%FF%00k");
    seed_text("pct", "id", "0042");
    seed_text("pct", "truncated", "abc%4");
    seed_text("query", "range", "prefix=true&limit=10&keys_only");
    seed_text("query", "range_end", "range_end=%00&rev=-1");
    seed_text("query", "bare", "prefix&limit=9223372036854775807");
    seed_text("query", "bad", "limit=-5&prefx=1&range_end=%zz");
    seed_text("b64", "hello", "aGVsbG8=");
    seed_text("b64", "pad2", "/w==");
    seed_text("b64", "binary", "/wBr");
    seed_text("b64", "bad", "aGVsbG8");
    seed_text("txn", "cas",
              "{\"compare\":[{\"key\":\"config/mode\",\"target\":\"VALUE\",\"result\":\"EQUAL\","
              "\"value\":\"blue\"}],\"success\":[{\"request_put\":{\"key\":\"config/mode\","
              "\"value\":\"green\",\"prev_kv\":true}},{\"request_range\":{\"key\":\"config/\","
              "\"prefix\":true}}],\"failure\":[{\"request_range\":{\"key\":\"config/mode\"}}]}");
    seed_text("txn", "create",
              "{\"compare\":[{\"key\":\"leader\",\"target\":\"CREATE\",\"result\":\"EQUAL\","
              "\"create_revision\":0}],\"success\":[{\"request_put\":{\"key\":\"leader\","
              "\"value\":\"node-a\",\"lease\":7}}],\"failure\":[{\"request_range\":{\"key\":"
              "\"leader\",\"limit\":1,\"revision\":3,\"keys_only\":true,\"count_only\":false}}]}");
    seed_text("txn", "delete",
              "{\"compare\":[{\"key_base64\":\"/wBr\",\"target\":\"MOD\",\"result\":\"LESS\","
              "\"mod_revision\":9},{\"key\":\"v\",\"target\":\"VERSION\",\"result\":\"GREATER\","
              "\"version\":1},{\"key\":\"l\",\"target\":\"LEASE\",\"result\":\"NOT_EQUAL\","
              "\"lease\":0}],\"success\":[{\"request_delete_range\":{\"key\":\"a\",\"range_end\":"
              "\"b\",\"prev_kv\":true}},{\"request_put\":{\"key_base64\":\"AA==\","
              "\"value_base64\":\"/w==\"}}]}");
    seed_text("txn", "bad", "{\"compare\":[{\"key\":\"k\",\"target\":\"FOO\",\"result\":\"EQUAL\"}]}");
    /* auth: the first byte picks the route shape (fuzz_auth.c) */
    seed_text("auth", "authenticate", "\x00{\"name\":\"alice\",\"password\":\"s3cret\"}");
    seed_text("auth", "user_add", "\x01{\"name\":\"bob\",\"password\":\"pw\"}");
    seed_text("auth", "grant_role", "\x04{\"role\":\"app\"}");
    seed_text("auth", "perm_prefix", "\x08{\"key\":\"app/\",\"prefix\":true,\"perm\":\"readwrite\"}");
    seed_text("auth", "perm_range", "\x08{\"key_base64\":\"/w==\",\"range_end\":\"z\",\"perm\":\"read\"}");
    seed_text("auth", "revoke_perm", "\x09{\"key\":\"app/\",\"prefix\":true}");
    seed_text("auth", "enable", "\x0a{}");
}

/* ---- request bodies (fuzz_body: a JSON body as sent, to the gateway or the native API) ---- */

static void body_seeds(void)
{
    seed_text("body", "range",
              "{\"key\":\"Zm9v\",\"range_end\":\"Zm9w\",\"limit\":\"10\",\"revision\":5,"
              "\"keys_only\":true,\"sort_order\":\"DESCEND\",\"sort_target\":\"MOD\"}");
    seed_text("body", "range_all",
              "{\"key\":\"AA==\",\"range_end\":\"AA==\",\"count_only\":true,"
              "\"serializable\":false,\"min_mod_revision\":\"-1\",\"max_create_revision\":null}");
    seed_text("body", "put",
              "{\"key\":\"Y29uZmlnL21vZGU=\",\"value\":\"Ymx1ZQ==\","
              "\"lease\":\"7694567190318519312\",\"prev_kv\":true}");
    seed_text("body", "enum_numbers", "{\"key\":\"/w==\",\"sort_order\":2,\"sort_target\":4}");
    /* fuzz_body's enums of one name and of none */
    seed_text("body", "enum_edges", "{\"key\":\"a2V5\",\"only\":\"ONLY\",\"never\":0}");
    seed_text("body", "role_grant",
              "{\"name\":\"app\",\"perm\":{\"permType\":\"READWRITE\",\"key\":\"YXBwLw==\","
              "\"range_end\":\"YXBwMA==\"}}");
    seed_text("body", "lease_grant", "{\"TTL\":\"60\",\"ID\":0}");
    seed_text("body", "compaction", "{\"revision\":\"-9223372036854775808\",\"physical\":true}");
    seed_text("body", "empty", "");
    seed_text("body", "bad", "{\"key\":\"Zm9\",\"limit\":\"1e3\",\"keys_only\":\"true\","
                           "\"sort_order\":\"DOWN\",\"revision\":1.5}");
    seed_text("body", "not_object", "[{\"key\":\"Zm9v\"}]");
    seed_text("body", "duplicate", "{\"key\":\"YQ==\",\"key\":\"Yg==\"}");
    /* the native API's bodies */
    seed_text("body", "native_lease", "{\"ttl\":60,\"id\":7}");
    seed_text("body", "native_move_leader", "{\"to\":2}");
    seed_text("body", "native_proclaim", "{\"lease\":5,\"rev\":12,\"value\":\"x\"}");
}

/* ---- committed entries ---- */

static void kv_seed(const char *file, int rc, buf *cmd, buf *env)
{
    if (rc != KV_OK)
        die("kv_encode");
    seed("kv_cmd", file, -1, cmd->data, cmd->len);
    if (envelope_wrap(env, 2, 17, cmd->data, cmd->len) < 0)
        die("envelope_wrap");
    seed("envelope", file, 0, env->data, env->len);
    buf_reset(cmd);
}

static void txn_seed(buf *cmd, buf *env)
{
    kv_compare cmp = {.key = (const uint8_t *)"k", .key_len = 1, .target = KV_CMP_VALUE,
                      .result = KV_CMP_EQUAL, .value = (const uint8_t *)"v", .value_len = 1};
    kv_op ok[2] = {{.type = KV_OP_PUT, .span = {.key = (const uint8_t *)"k", .key_len = 1},
                    .value = (const uint8_t *)"w", .value_len = 1, .lease = 3, .prev_kv = true},
                   {.type = KV_OP_RANGE,
                    .span = {.key = (const uint8_t *)"a", .key_len = 1, .has_end = true,
                             .end = (const uint8_t *)"z", .end_len = 1},
                    .limit = 10, .rev = 4, .keys_only = true}};
    kv_op no = {.type = KV_OP_DELETE,
                .span = {.key = (const uint8_t *)"k", .key_len = 1, .has_end = true,
                         .end = (const uint8_t *)"", .end_len = 1},
                .prev_kv = true};
    kv_txn t = {1, &cmp, 2, ok, 1, &no};
    kv_seed("txn", kv_encode_txn(&t, cmd), cmd, env);
}

static void conf_seed(buf *env)
{
    const char *url = "http://127.0.0.12:2380";
    if (envelope_wrap(env, 1, 5, url, strlen(url)) < 0)
        die("envelope_wrap");
    raft_conf_change cc = {.op = RAFT_CONF_ADD_VOTER, .id = 4, .ctx_len = (uint32_t)env->len,
                           .ctx = env->data};
    uint8_t out[256];
    size_t n = raft_conf_change_encode(&cc, out, sizeof out);
    if (n == 0)
        die("raft_conf_change_encode");
    seed("envelope", "conf", 1, out, n);
}

static void entry_seeds(void)
{
    buf cmd, env;
    buf_init(&cmd);
    buf_init(&env);
    txn_seed(&cmd, &env);
    kv_seed("compact", kv_encode_compact(12, &cmd), &cmd, &env);
    kv_seed("grant", kv_encode_lease_grant(7, 60, &cmd), &cmd, &env);
    kv_seed("revoke", kv_encode_lease_revoke(7, &cmd), &cmd, &env);
    kv_seed("keepalive", kv_encode_lease_keepalive(7, &cmd), &cmd, &env);
    kv_seed("auth_grant", kv_encode_auth(&(kv_auth_cmd){.op = KV_AUTH_ROLE_GRANT, .name = "app",
            .span = {(const uint8_t *)"a/", 2, true, (const uint8_t *)"a0", 2},
            .perm = KV_PERM_READWRITE}, &cmd), &cmd, &env);
    buf inner;
    buf_init(&inner);
    if (kv_encode_compact(3, &inner) != KV_OK)
        die("kv_encode_compact");
    kv_seed("as_compact", kv_encode_as("alice", 7, inner.data, inner.len, &cmd), &cmd, &env);
    buf_free(&inner);
    /* a membership change's Idempotency-Key stamp */
    kv_seed("idem_stamp", kv_encode_idem_stamp("add-1", 0x1234, 1700000000000ull, &cmd), &cmd,
            &env);
    conf_seed(&env);
    buf_free(&cmd);
    buf_free(&env);
}

/* ---- raft: op bytes (see fuzz_raft.c step()) ---- */

static void raft_seeds(void)
{
    uint8_t s[512];
    size_t n = 0;
    s[n++] = 3; /* pre_vote, check_quorum */
    for (int i = 0; i < 25; i++)
        s[n++] = 0x00; /* tick node 1 */
    for (int i = 0; i < 30; i++) {
        s[n++] = 0x03; /* deliver */
        s[n++] = 0;
    }
    for (int i = 0; i < 3; i++)
        s[n++] = 0x06; /* propose on node 1 */
    for (int i = 0; i < 40; i++) {
        s[n++] = i % 5 ? 0x03 : 0x00;
        s[n++] = (uint8_t)i;
    }
    seed("raft", "elect", -1, s, n);
    static const uint8_t inject[] = {0x09, 6, 0, 0, 1, 0x04, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1};
    memcpy(s + n, inject, sizeof inject);
    seed("raft", "elect_inject", -1, s, n + sizeof inject);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: gen_corpus DIR\n");
        return 2;
    }
    top = argv[1];
    if (mkdir(top, 0755) < 0 && errno != EEXIST)
        die(top);
    codec_seeds();
    text_seeds();
    body_seeds();
    entry_seeds();
    raft_seeds();
    return 0;
}
