/* ready_test: the Ready a node could not write (its disk was full) —
 * raft_advance_held gives its messages and read states back as done, may
 * take its committed entries as applied, and the next Ready offers the
 * same hard state and entries to persist again.
 *
 * Must never: go through the simulator; it checks one core's Ready. */
#include "../test.h"
#include "raft/raft.h"

#include <string.h>

/* A single-voter cluster: node 1 leads alone, so a proposal commits as soon
 * as the core counts it (its own log). */
static raft *mk_with(uint32_t (*checksum)(const uint8_t *, size_t))
{
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.conf.n_voters = 1;
    init.conf.voters[0] = 1;
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1, .max_inflight = 8,
                       .max_msg_bytes = 1 << 20, .seed = 3, .checksum = checksum};
    raft *r = NULL;
    CHECK(raft_new(&cfg, &init, &r) == RAFT_OK);
    for (int i = 0; i < 40 && raft_role_get(r) != RAFT_LEADER; i++)
        raft_tick(r);
    raft_ready rd;
    while (raft_has_ready(r) && raft_ready_get(r, &rd) == 0)
        raft_advance(r, &rd);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    return r;
}

static raft *mk_single(void) { return mk_with(NULL); }

static void test_held_ready_is_offered_again(void)
{
    raft *r = mk_single();
    raft_index last = raft_last_index(r);
    static uint8_t data[] = "x";
    CHECK(raft_propose(r, data, 1) == RAFT_OK);
    raft_ready rd;
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.n_entries == 1 && rd.entries[0].index == last + 1);
    /* the write failed: hold, without applying */
    CHECK(raft_advance_held(r, false) == 0);
    CHECK(raft_applied_index(r) == last);
    CHECK(raft_has_ready(r));
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK_MSG(rd.n_entries == 1 && rd.entries[0].index == last + 1,
              "entries offered again: %zu", rd.n_entries);
    CHECK(rd.n_messages == 0); /* done with: not sent twice */
    /* now it is written */
    CHECK(raft_advance(r, &rd) == 0);
    raft_free(r);
}

/* A lone voter commits a proposal as soon as it is in its log: the first
 * Ready hands the entry out both to write and to apply. */
static void test_held_ready_may_apply_committed(void)
{
    raft *r = mk_single();
    static uint8_t data[] = "y";
    CHECK(raft_propose(r, data, 1) == RAFT_OK);
    raft_ready rd;
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.n_entries == 1);
    raft_index idx = rd.entries[0].index;
    CHECK_MSG(rd.n_committed == 1 && rd.committed[0].index == idx, "committed %zu",
              rd.n_committed);
    CHECK(raft_advance_held(r, true) == 0);
    CHECK(raft_applied_index(r) == idx);
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.n_entries == 1 && rd.entries[0].index == idx); /* still to write */
    CHECK(rd.n_committed == 0);                              /* never applied twice */
    raft_advance(r, &rd);
    CHECK(raft_applied_index(r) == idx);
    raft_free(r);
}

static int sum_calls;
static uint32_t count_sum(const uint8_t *data, size_t len)
{
    sum_calls++;
    uint32_t h = 7;
    for (size_t i = 0; i < len; i++)
        h = h * 31 + data[i];
    return h;
}

/* The checksum is made once, when an entry is proposed, and travels: in
 * the Ready's entries to write and in a follower's forwarded proposal. */
static void test_checksum_made_once_and_carried(void)
{
    raft *r = mk_with(count_sum);
    raft_ready rd;
    sum_calls = 0;
    static uint8_t data[] = "abc";
    CHECK(raft_propose(r, data, 3) == RAFT_OK);
    CHECK(sum_calls == 1);
    CHECK(raft_ready_get(r, &rd) == 0 && rd.n_entries == 1);
    CHECK(rd.entries[0].crc == count_sum(data, 3));
    raft_advance(r, &rd);
    raft_free(r);

    /* a follower forwards to its leader: the PROP carries it */
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.conf.n_voters = 3;
    for (raft_id v = 0; v < 3; v++)
        init.conf.voters[v] = v + 1;
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1, .seed = 3,
                       .checksum = count_sum};
    CHECK(raft_new(&cfg, &init, &r) == RAFT_OK);
    raft_msg hb;
    memset(&hb, 0, sizeof hb);
    hb.type = RAFT_MSG_HEARTBEAT;
    hb.from = 2;
    hb.to = 1;
    hb.term = 1;
    CHECK(raft_step(r, &hb) == RAFT_OK && raft_leader(r) == 2);
    while (raft_has_ready(r) && raft_ready_get(r, &rd) == 0)
        raft_advance(r, &rd);
    CHECK(raft_propose(r, data, 3) == RAFT_OK);
    CHECK(raft_ready_get(r, &rd) == 0);
    bool found = false;
    for (size_t i = 0; i < rd.n_messages; i++)
        if (rd.messages[i].type == RAFT_MSG_PROP && rd.messages[i].n_entries == 1)
            found = rd.messages[i].entries[0].crc == count_sum(data, 3);
    CHECK(found);
    raft_advance(r, &rd);
    raft_free(r);
}

int main(void)
{
    RUN(test_checksum_made_once_and_carried);
    RUN(test_held_ready_is_offered_again);
    RUN(test_held_ready_may_apply_committed);
    TEST_MAIN_END();
}
