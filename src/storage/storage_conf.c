/* storage_conf: the on-disk encoding of a snapshot's membership (raft_conf)
 * in raft.db: u8 version, u32 n_voters, n x u64, u32 n_learners, n x u64,
 * little endian.
 *
 * Must never accept more members than RAFT_MAX_MEMBERS, trailing bytes or a
 * truncated blob: the bytes come from disk and may be damaged.
 */
#include "storage/storage_int.h"

#include <string.h>

#define CONF_CODEC_VERSION 1

int storage_conf_encode(const raft_conf *conf, buf *out)
{
    if (conf->n_voters > RAFT_MAX_MEMBERS || conf->n_learners > RAFT_MAX_MEMBERS)
        return -1;
    if (buf_put_u8(out, CONF_CODEC_VERSION) < 0 ||
        buf_put_u64s(out, conf->voters, conf->n_voters) < 0 ||
        buf_put_u64s(out, conf->learners, conf->n_learners) < 0)
        return -1;
    return 0;
}

int storage_conf_decode(const uint8_t *p, size_t n, raft_conf *conf)
{
    memset(conf, 0, sizeof *conf);
    reader r;
    reader_init(&r, p, n);
    uint8_t version;
    if (rd_u8(&r, &version) < 0 || version != CONF_CODEC_VERSION ||
        rd_u64s(&r, conf->voters, &conf->n_voters, RAFT_MAX_MEMBERS) < 0 ||
        rd_u64s(&r, conf->learners, &conf->n_learners, RAFT_MAX_MEMBERS) < 0 ||
        rd_left(&r) != 0) {
        memset(conf, 0, sizeof *conf);
        return -1;
    }
    return 0;
}
