/* features_test: one focused test per Raft core feature — elections,
 * randomized timeouts, PreVote, CheckQuorum, replication, the Figure 8
 * commit rule, ReadIndex, leader transfer, membership, snapshots and the
 * conf change codec.
 *
 * Drives the core through the deterministic fixture (tests/raft/fixture.h)
 * or, where a scenario needs exact control of messages, through raft.h
 * directly. Must never peek at core internals beyond raft.h.
 */
#include "raft/raft.h"
#include "../test.h"
#include "fixture.h"

#include <stdio.h>
#include <string.h>

static fx *mk(int n, bool pre_vote, bool check_quorum, uint64_t seed)
{
    fx_options o;
    memset(&o, 0, sizeof o);
    o.seed = seed;
    o.n_nodes = n;
    o.election_tick = 10;
    o.heartbeat_tick = 1;
    o.pre_vote = pre_vote;
    o.check_quorum = check_quorum;
    o.max_inflight = 16;
    return fx_new(&o);
}

/* Ticks everybody and delivers, `ticks` times. */
static void run(fx *f, int ticks)
{
    for (int i = 0; i < ticks; i++) {
        fx_tick_all(f);
        fx_deliver(f, 100);
    }
}

static raft_id elect(fx *f)
{
    fx_elect_any(f, 200);
    fx_deliver(f, 100);
    run(f, 2);
    return fx_leader(f);
}

static raft_id other_than(fx *f, raft_id a, raft_id b)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++)
        if (id != a && id != b && fx_raft(f, id))
            return id;
    return 0;
}

/* ---- nodes on the raw API ---- */

/* Zeroes init and makes 1..n its voters. */
static void init_voters(raft_init_state *init, int n)
{
    memset(init, 0, sizeof *init);
    for (raft_id v = 1; v <= (raft_id)n; v++)
        init->conf.voters[init->conf.n_voters++] = v;
}

/* A node with the tests' usual timing; NULL (a failed CHECK) if refused. */
static raft *raw_new(raft_id id, uint64_t seed, const raft_init_state *init)
{
    raft_config cfg = {.id = id, .election_tick = 10, .heartbeat_tick = 1,
                       .max_inflight = 8, .seed = seed};
    raft *r = NULL;
    CHECK(raft_new(&cfg, init, &r) == 0);
    return r;
}

/* Ticks until r campaigns; a node that never does fails the test instead
 * of hanging it (the timeout is below 2 * election_tick). */
static void tick_to_candidate(raft *r)
{
    for (int i = 0; i < 100 && raft_role_get(r) != RAFT_CANDIDATE; i++)
        raft_tick(r);
    CHECK(raft_role_get(r) == RAFT_CANDIDATE);
}

/* Steps a message into r (by value) and drains its Ready. */
static void step_and_drain(raft *r, raft_msg m, raft_ready *last)
{
    CHECK(raft_step(r, &m) == 0);
    while (raft_has_ready(r)) {
        raft_ready rd;
        raft_ready_get(r, &rd);
        if (last)
            *last = rd;
        raft_advance(r, &rd);
    }
}

/* Node `from` grants r its vote in `term`. */
static void grant_vote(raft *r, raft_id from, raft_term term)
{
    raft_msg v = {.type = RAFT_MSG_VOTE_RESP, .from = from, .to = raft_self(r), .term = term};
    step_and_drain(r, v, NULL);
}

/* ---- single node ---- */

static void test_single_node_direct(void)
{
    raft_init_state init;
    init_voters(&init, 1);
    raft *r = raw_new(1, 42, &init);
    if (!r)
        return;
    CHECK(raft_propose(r, (const uint8_t *)"x", 1) == RAFT_ERR_NO_LEADER);
    for (int i = 0; i < 30 && raft_role_get(r) != RAFT_LEADER; i++)
        raft_tick(r);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    CHECK(raft_term_get(r) == 1);
    CHECK(raft_propose(r, (const uint8_t *)"hello", 5) == 0);
    raft_ready rd;
    CHECK(raft_has_ready(r));
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.has_hard_state && rd.hs.term == 1 && rd.hs.vote == 1 && rd.hs.commit == 2);
    CHECK(rd.n_entries == 2 && rd.entries[1].len == 5);
    CHECK(rd.n_committed == 2 && memcmp(rd.committed[1].data, "hello", 5) == 0);
    CHECK(rd.n_messages == 0);
    CHECK(raft_advance(r, &rd) == 0);
    CHECK(raft_applied_index(r) == 2);
    CHECK(!raft_has_ready(r));
    /* A read in a single-voter cluster is confirmed at once. */
    CHECK(raft_read_index(r, 77) == 0);
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.n_reads == 1 && rd.reads[0].context == 77 && rd.reads[0].index == 2);
    raft_advance(r, &rd);
    raft_snapshot_meta meta;
    CHECK(raft_snapshot_taken_at(r, raft_applied_index(r), 2, &meta) == 0);
    CHECK(meta.index == 2 && meta.term == 1 && meta.conf.n_voters == 1);
    CHECK(raft_first_index(r) == 3);
    CHECK(raft_snapshot_taken_at(r, raft_applied_index(r), 5, &meta) == RAFT_ERR_INVALID);
    raft_free(r);
}

/* Drains a lone node's Readies, as the node loop would. */
static void drain(raft *r)
{
    raft_ready rd;
    while (raft_has_ready(r) && raft_ready_get(r, &rd) == 0)
        raft_advance(r, &rd);
}

/* A one-voter cluster's node, ticked until it leads (NULL if it could not
 * be made). */
static raft *lone_leader(void)
{
    raft_init_state init;
    init_voters(&init, 1);
    raft *r = raw_new(1, 42, &init);
    if (!r)
        return NULL;
    for (int i = 0; i < 30 && raft_role_get(r) != RAFT_LEADER; i++)
        raft_tick(r);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    return r;
}

/* The catch-up tail a snapshot keeps is bounded by entries and by bytes
 * (each entry its data plus 32): entries of 100 bytes, 132 each. */
static void test_tail_start(void)
{
    raft *r = lone_leader();
    if (!r)
        return;
    drain(r); /* index 1: the leader's empty entry */
    uint8_t data[100] = {0};
    for (int i = 0; i < 9; i++)
        CHECK(raft_propose(r, data, sizeof data) == 0);
    drain(r); /* indexes 2-10, 100 bytes each */
    CHECK(raft_last_index(r) == 10);
    CHECK(raft_tail_start(r, 10, 5, UINT64_MAX) == 5);   /* by entries */
    CHECK(raft_tail_start(r, 10, 100, 3 * 132) == 7);    /* by bytes: 8, 9, 10 */
    CHECK(raft_tail_start(r, 10, 100, 3 * 132 - 1) == 8);
    CHECK(raft_tail_start(r, 10, 100, 100) == 10);       /* not even one fits */
    CHECK(raft_tail_start(r, 10, 0, UINT64_MAX) == 10);
    CHECK(raft_tail_start(r, 10, 100, UINT64_MAX) == 0); /* the whole log */
    CHECK(raft_tail_start(r, 99, 2, UINT64_MAX) == 8);   /* past the end: from the last */
    raft_snapshot_meta meta;
    CHECK(raft_snapshot_taken_at(r, 10, 6, &meta) == 0);
    CHECK(raft_tail_start(r, 10, 100, UINT64_MAX) == 6); /* never below the log's start */
    raft_free(r);
}

/* A snapshot written in the background records the state at an index that
 * is already behind the applied one: it is accepted only while membership
 * has not changed since that index (its conf would be wrong) and never
 * behind the latest snapshot. */
static void test_snapshot_taken_at(void)
{
    raft *r = lone_leader();
    if (!r)
        return;
    CHECK(raft_propose(r, (const uint8_t *)"a", 1) == 0);
    drain(r);
    CHECK(raft_applied_index(r) == 2);
    raft_snapshot_meta meta;
    CHECK(raft_snapshot_taken_at(r, 3, 0, &meta) == RAFT_ERR_INVALID); /* beyond applied */
    raft_conf_change cc = {.op = RAFT_CONF_ADD_LEARNER, .id = 2};
    CHECK(raft_propose_conf(r, &cc) == 0);
    CHECK(raft_propose(r, (const uint8_t *)"b", 1) == 0);
    drain(r);
    CHECK(raft_applied_index(r) == 4);
    /* membership changed at 3: a snapshot of index 2 would carry the wrong conf */
    CHECK(raft_snapshot_taken_at(r, 2, 0, &meta) == RAFT_ERR_INVALID);
    CHECK(raft_snapshot_taken_at(r, 3, 4, &meta) == RAFT_ERR_INVALID); /* compact beyond it */
    CHECK(raft_snapshot_taken_at(r, 3, 2, &meta) == 0);
    CHECK(meta.index == 3 && meta.term == 1 && meta.conf.n_learners == 1);
    CHECK(raft_first_index(r) == 3);
    CHECK(raft_snapshot_taken_at(r, 4, 3, &meta) == 0 && meta.index == 4);
    CHECK(raft_snapshot_taken_at(r, 3, 0, &meta) == RAFT_ERR_INVALID); /* older than the latest */
    raft_free(r);
}

/* ---- elections ---- */

static void test_election(void)
{
    fx *f = mk(3, false, false, 1);
    raft_id l = elect(f);
    CHECK(l != 0);
    if (l) {
        raft_term t = raft_term_get(fx_raft(f, l));
        for (raft_id id = 1; id <= 3; id++) {
            CHECK(raft_term_get(fx_raft(f, id)) == t);
            CHECK(raft_leader(fx_raft(f, id)) == l);
            CHECK(id == l || raft_role_get(fx_raft(f, id)) == RAFT_FOLLOWER);
        }
        CHECK(fx_applied(f, l) >= 1); /* the leader's no-op committed */
    }
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* Identical nodes differ only in id: their first campaigns must fall in
 * [election_tick, 2*election_tick) and not all on the same tick. */
static void test_randomized_timeout(void)
{
    int first = -1;
    bool spread = false;
    for (raft_id id = 1; id <= 7; id++) {
        raft_init_state init;
        init_voters(&init, 7);
        raft *r = raw_new(id, 7, &init);
        if (!r)
            return;
        int ticks = 0;
        while (raft_role_get(r) == RAFT_FOLLOWER && ticks < 100) {
            raft_tick(r);
            ticks++;
        }
        CHECK_MSG(ticks >= 10 && ticks < 20, "node %d campaigned after %d ticks", (int)id, ticks);
        CHECK(raft_role_get(r) == RAFT_CANDIDATE);
        if (first >= 0 && ticks != first)
            spread = true;
        first = ticks;
        raft_free(r);
    }
    CHECK(spread);
}

/* A partitioned follower with PreVote cannot raise its term, so when it
 * comes back it does not depose the leader. */
static void test_prevote_rejoin(void)
{
    fx *f = mk(3, true, false, 3);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_id iso = other_than(f, l, 0);
    raft_term t = raft_term_get(fx_raft(f, l));
    fx_isolate(f, iso);
    /* The majority moves on, so the isolated log is behind. */
    CHECK(fx_propose(f, l, "a") == 0);
    run(f, 60);
    CHECK(raft_term_get(fx_raft(f, iso)) == t);
    CHECK(raft_role_get(fx_raft(f, iso)) == RAFT_PRE_CANDIDATE);
    fx_heal(f);
    run(f, 40);
    CHECK(fx_leader(f) == l);
    CHECK(raft_term_get(fx_raft(f, l)) == t);
    CHECK(raft_term_get(fx_raft(f, iso)) == t);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* Without PreVote the same scenario bumps the term: shows the test above
 * can fail. */
static void test_no_prevote_disrupts(void)
{
    fx *f = mk(3, false, false, 3);
    raft_id l = elect(f);
    raft_id iso = other_than(f, l, 0);
    raft_term t = raft_term_get(fx_raft(f, l));
    fx_isolate(f, iso);
    run(f, 60);
    CHECK(raft_term_get(fx_raft(f, iso)) > t);
    fx_free(f);
}

static void test_check_quorum_steps_down(void)
{
    fx *f = mk(3, true, true, 5);
    raft_id l = elect(f);
    CHECK(l != 0);
    fx_isolate(f, l);
    for (int i = 0; i < 25; i++) {
        fx_tick(f, l);
        fx_deliver(f, 10);
    }
    CHECK(raft_role_get(fx_raft(f, l)) != RAFT_LEADER);
    /* The rest elect a new leader once their lease ran out. */
    run(f, 60);
    raft_id nl = fx_leader(f);
    CHECK(nl != 0 && nl != l);
    fx_heal(f);
    run(f, 30);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* ---- replication ---- */

static void test_replication_and_commit(void)
{
    fx *f = mk(5, true, true, 9);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_id fol = other_than(f, l, 0);
    CHECK(fx_propose(f, l, "one") == 0);
    CHECK(fx_propose(f, fol, "two") == 0); /* forwarded */
    fx_deliver(f, 100);
    run(f, 3);
    raft_index n = fx_applied(f, l);
    CHECK(n >= 3);
    for (raft_id id = 1; id <= 5; id++) {
        CHECK(fx_applied(f, id) == n);
        bool one = false, two = false;
        for (raft_index i = 1; i <= n; i++) {
            const char *d = fx_applied_data(f, id, i);
            one |= d && strcmp(d, "one") == 0;
            two |= d && strcmp(d, "two") == 0;
        }
        CHECK(one && two);
    }
    /* Two nodes down: three of five still commit. */
    raft_id a = other_than(f, l, 0), b = other_than(f, l, a);
    fx_crash(f, a);
    fx_crash(f, b);
    CHECK(fx_propose(f, l, "three") == 0);
    run(f, 3);
    CHECK(fx_applied(f, l) == n + 1);
    fx_restart(f, a);
    fx_restart(f, b);
    run(f, 10);
    CHECK(fx_applied(f, a) == n + 1 && fx_applied(f, b) == n + 1);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* A three-voter leader (node 1) on the raw API, its term-1 no-op
 * acknowledged by node 2, so committed. */
static raft *raw_leader(bool defer)
{
    raft_init_state init;
    init_voters(&init, 3);
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1, .max_inflight = 8,
                       .seed = 5, .defer_commit_notice = defer};
    raft *r = NULL;
    CHECK(raft_new(&cfg, &init, &r) == 0);
    if (!r)
        return NULL;
    tick_to_candidate(r);
    grant_vote(r, 2, raft_term_get(r));
    CHECK(raft_role_get(r) == RAFT_LEADER);
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1,
                    .term = raft_term_get(r), .index = raft_last_index(r)};
    step_and_drain(r, ack, NULL);
    CHECK(raft_commit_index(r) == raft_last_index(r));
    return r;
}

/* Proposes one entry (from node 2, forwarded, if `forwarded`), node 2
 * acknowledges it; returns the APPENDs the leader sends in answer to that
 * acknowledgement, to node 2 or node 3. */
static size_t commit_one(raft *r, bool forwarded, raft_msg *out, size_t cap)
{
    raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = 1, .data = (uint8_t *)"f"};
    raft_msg prop = {.type = RAFT_MSG_PROP, .from = 2, .to = 1, .n_entries = 1, .entries = &e};
    if (forwarded)
        step_and_drain(r, prop, NULL);
    else
        CHECK(raft_propose(r, (const uint8_t *)"w", 1) == 0);
    drain(r);
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1,
                    .term = raft_term_get(r), .index = raft_last_index(r)};
    CHECK(raft_step(r, &ack) == 0);
    size_t n = 0;
    while (raft_has_ready(r)) {
        raft_ready rd;
        raft_ready_get(r, &rd);
        for (size_t i = 0; i < rd.n_messages && n < cap; i++)
            if (rd.messages[i].type == RAFT_MSG_APPEND)
                out[n++] = rd.messages[i]; /* shallow: only header fields are read */
        raft_advance(r, &rd);
    }
    CHECK(raft_commit_index(r) == raft_last_index(r));
    return n;
}

/* defer_commit_notice: a new commit sends no empty APPENDs; the follower
 * that could use it is untold until raft_send_commit (or the next APPEND)
 * tells it; one that has not the entries yet is not waited for. Without
 * the option the commit goes out at once. */
static void test_deferred_commit_notice(void)
{
    raft_msg m[8];
    raft *plain = raw_leader(false);
    if (plain) {
        size_t n = commit_one(plain, false, m, 8); /* node 3, probed, is paused */
        CHECK(n == 1 && m[0].to == 2 && m[0].n_entries == 0 &&
              m[0].commit == raft_commit_index(plain));
        CHECK(!raft_commit_untold(plain));
        raft_free(plain);
    }
    raft *r = raw_leader(true);
    if (!r)
        return;
    CHECK(commit_one(r, false, m, 8) == 0);
    CHECK(raft_commit_untold(r)); /* node 2 has the entry, not the commit */
    raft_send_commit(r);
    raft_ready rd;
    CHECK(raft_ready_get(r, &rd) == 0);
    CHECK(rd.n_messages == 1 && rd.messages[0].type == RAFT_MSG_APPEND &&
          rd.messages[0].to == 2 && rd.messages[0].n_entries == 0 &&
          rd.messages[0].commit == raft_commit_index(r));
    raft_advance(r, &rd);
    CHECK(!raft_commit_untold(r));
    /* node 2's own forwarded proposal: its clients wait, it is told at once */
    CHECK(commit_one(r, true, m, 8) == 1);
    CHECK(m[0].to == 2 && m[0].n_entries == 0 && m[0].commit == raft_commit_index(r));
    CHECK(!raft_commit_untold(r));
    /* the next write's APPEND carries the last commit: nothing untold */
    CHECK(commit_one(r, false, m, 8) == 0);
    CHECK(raft_propose(r, (const uint8_t *)"v", 1) == 0);
    CHECK(raft_ready_get(r, &rd) == 0);
    bool told = false;
    for (size_t i = 0; i < rd.n_messages; i++)
        told |= rd.messages[i].to == 2 && rd.messages[i].commit == raft_commit_index(r);
    CHECK(told);
    raft_advance(r, &rd);
    CHECK(!raft_commit_untold(r));
    raft_free(r);
}

/* Figure 8: a leader of term 3 holding an entry of term 2 replicated on a
 * majority must not commit it by counting; it commits only when its own
 * term-3 entry reaches a majority. */
static void test_no_commit_of_old_term_by_counting(void)
{
    raft_entry ents[2] = {{.term = 1, .index = 1}, {.term = 2, .index = 2}};
    raft_init_state init;
    init_voters(&init, 3);
    init.hs.term = 2;
    init.entries = ents;
    init.n_entries = 2;
    raft *r = raw_new(1, 1, &init);
    if (!r)
        return;
    tick_to_candidate(r);
    CHECK(raft_term_get(r) == 3);
    grant_vote(r, 2, 3);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    CHECK(raft_last_index(r) == 3); /* the no-op */
    /* Node 2 acknowledges the term-2 entry only: 2 of 3 hold index 2. */
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 3, .index = 2};
    step_and_drain(r, ack, NULL);
    CHECK(raft_match_index(r, 2) == 2);
    CHECK(raft_commit_index(r) == 0);
    ack.index = 3;
    step_and_drain(r, ack, NULL);
    CHECK(raft_commit_index(r) == 3);
    CHECK(raft_applied_index(r) == 3);
    raft_free(r);
}

/* A follower refuses to truncate committed entries, even when asked. */
static void test_follower_rejects_forged_append(void)
{
    raft_entry ents[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 2}};
    raft_init_state init;
    init_voters(&init, 2);
    init.hs.term = 1;
    init.hs.commit = 2;
    init.applied = 2;
    init.entries = ents;
    init.n_entries = 2;
    raft *r = raw_new(1, 0, &init);
    if (!r)
        return;
    raft_entry bad = {.term = 2, .index = 2};
    raft_msg m = {.type = RAFT_MSG_APPEND, .from = 2, .to = 1, .term = 2, .index = 1,
                  .log_term = 1, .commit = 2, .n_entries = 1, .entries = &bad};
    step_and_drain(r, m, NULL);
    CHECK(raft_last_index(r) == 2);
    CHECK(raft_term_get(r) == 2);
    /* Malformed messages are refused outright. */
    raft_entry gap = {.term = 2, .index = 9};
    m.entries = &gap;
    CHECK(raft_step(r, &m) == RAFT_ERR_INVALID);
    m.entries = NULL;
    CHECK(raft_step(r, &m) == RAFT_ERR_INVALID);
    m.n_entries = 0;
    m.type = 99;
    CHECK(raft_step(r, &m) == RAFT_ERR_INVALID);
    raft_free(r);
}

/* ---- ReadIndex ---- */

static void test_read_index(void)
{
    fx *f = mk(3, true, true, 11);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_id fol = other_than(f, l, 0);
    CHECK(fx_propose(f, l, "w") == 0);
    fx_deliver(f, 100);
    raft_index idx = 0;
    CHECK(fx_read_index(f, l, 100) == 0);
    fx_deliver(f, 100);
    CHECK(fx_read_done(f, l, 100, &idx));
    CHECK(idx >= 2);
    CHECK(fx_read_index(f, fol, 200) == 0);
    fx_deliver(f, 100);
    CHECK(fx_read_done(f, fol, 200, &idx));
    CHECK(idx >= 2);

    /* Leader alone in a minority: its read never completes. */
    fx_isolate(f, l);
    CHECK(fx_read_index(f, l, 300) == 0);
    for (int i = 0; i < 8; i++) {
        fx_tick(f, l);
        fx_deliver(f, 10);
    }
    CHECK(!fx_read_done(f, l, 300, NULL));
    /* A follower cut off from the leader cannot complete one either. */
    raft_id fol2 = other_than(f, l, fol);
    fx_heal(f);
    fx_isolate(f, fol2);
    CHECK(fx_read_index(f, fol2, 400) == 0); /* asked, so "never done" means something */
    fx_deliver(f, 100);
    CHECK(!fx_read_done(f, fol2, 400, NULL));
    fx_heal(f);
    run(f, 5);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* Issue 4, the stale read after a restart (docs/TESTING.md, Findings): the
 * leader's answer to a round a follower asked before it crashed reaches the
 * follower's next life, which numbers its rounds from 1 again (the node
 * loop's numbering before the fix) and, like the node loop and the fixture,
 * takes a read state for ctx C as confirming every read it asked at or
 * below C. The old answer (ctx 7, read index before the write "after") must
 * not confirm the new life's read ctx 1, asked after "after" was applied:
 * the fixture's stale-read check fails the test if it does. */
static void test_read_index_answer_from_previous_life(void)
{
    fx *f = mk(3, true, true, 12);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_id fol = other_than(f, l, 0);
    CHECK(fx_propose(f, l, "before") == 0);
    fx_deliver(f, 100);
    /* The leader's answer waits in its queue while the follower dies. */
    fx_hold(f, l, fol);
    CHECK(fx_read_index(f, fol, 7) == 0);
    fx_deliver(f, 100);
    fx_crash(f, fol);
    fx_restart(f, fol);
    CHECK(fx_propose(f, l, "after") == 0);
    fx_deliver(f, 100);
    raft_index written = raft_commit_index(fx_raft(f, l));
    const char *data = fx_applied_data(f, l, written);
    CHECK(data && strcmp(data, "after") == 0);
    /* The new life learns the leader from the oldest held message (the
     * heartbeat of the old round, sent before its answer) and asks. */
    for (int i = 0; i < 10 && raft_leader(fx_raft(f, fol)) != l; i++)
        CHECK(fx_deliver_held(f, l, fol));
    CHECK(raft_leader(fx_raft(f, fol)) == l);
    CHECK(fx_read_index(f, fol, 1) == 0);
    CHECK(fx_release(f, l, fol) > 0); /* the old answer is among these */
    fx_deliver(f, 100);
    if (fx_check(f))
        fprintf(stderr, "%s\n", fx_error(f));
    CHECK(fx_check(f) == 0);
    raft_index idx = 0;
    CHECK(fx_read_done(f, fol, 1, &idx));
    CHECK(idx >= written);
    fx_free(f);
}

/* Node 1 of voters {1, 2, 3}, elected in term 1 with node 2's vote, its
 * no-op not yet committed; NULL (a failed CHECK) if refused. */
static raft *leader_of_three(void)
{
    raft_init_state init;
    init_voters(&init, 3);
    raft *r = raw_new(1, 0, &init);
    if (!r)
        return NULL;
    tick_to_candidate(r);
    grant_vote(r, 2, 1);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    return r;
}

/* A new leader answers only after committing in its term; direct test. */
static void test_read_index_waits_for_term_commit(void)
{
    raft *r = leader_of_three();
    if (!r)
        return;
    CHECK(raft_read_index(r, 5) == 0);
    /* Heartbeat acks before the no-op commits must not release it. */
    raft_ready rd;
    memset(&rd, 0, sizeof rd);
    raft_msg hb = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = 2, .to = 1, .term = 1, .context = 0};
    step_and_drain(r, hb, &rd);
    CHECK(rd.n_reads == 0);
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    rd.n_reads = 0;
    step_and_drain(r, ack, &rd);
    CHECK(raft_commit_index(r) == 1);
    CHECK(rd.n_reads == 0); /* the round has started but is not confirmed */
    /* The round's heartbeat carries context 1 (the first round); a later
     * round's ack would confirm it too. */
    bool got = false;
    hb.context = 1;
    CHECK(raft_step(r, &hb) == 0);
    while (raft_has_ready(r)) {
        raft_ready_get(r, &rd);
        for (size_t i = 0; i < rd.n_reads; i++)
            got |= rd.reads[i].context == 5 && rd.reads[i].index == 1;
        raft_advance(r, &rd);
    }
    CHECK(got);
    raft_free(r);
}

/* Steps m (NULL: none) and drains r; returns the HEARTBEAT targets sent
 * meanwhile (up to 4) and whether a read state for ctx came out. */
static size_t heartbeats_after(raft *r, const raft_msg *m, raft_id *to, uint64_t ctx, bool *read)
{
    size_t n = 0;
    if (m)
        CHECK(raft_step(r, m) == 0);
    while (raft_has_ready(r)) {
        raft_ready rd;
        raft_ready_get(r, &rd);
        for (size_t i = 0; i < rd.n_messages; i++)
            if (rd.messages[i].type == RAFT_MSG_HEARTBEAT && n < 4)
                to[n++] = rd.messages[i].to;
        for (size_t i = 0; read && i < rd.n_reads; i++)
            *read |= rd.reads[i].context == ctx;
        raft_advance(r, &rd);
    }
    return n;
}

/* A read round asks one follower of two (a quorum with the leader): the one
 * that answered the last round first; and always a follower that forwarded
 * one of its reads. The others still get every tick's heartbeat, whose
 * answers confirm a round an asked follower leaves unanswered. */
static void test_read_round_asks_a_quorum(void)
{
    raft *r = leader_of_three();
    if (!r)
        return;
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    step_and_drain(r, ack, NULL);
    ack.from = 3;
    step_and_drain(r, ack, NULL);
    CHECK(raft_commit_index(r) == 1);

    raft_id to[4];
    bool read = false;
    CHECK(raft_read_index(r, 10) == 0);
    CHECK(heartbeats_after(r, NULL, to, 10, &read) == 1 && to[0] == 2);
    raft_tick(r); /* the tick's heartbeat goes to both, carrying round 1 */
    CHECK(heartbeats_after(r, NULL, to, 10, &read) == 2);
    raft_msg hb = {.type = RAFT_MSG_HEARTBEAT_RESP, .from = 3, .to = 1, .term = 1, .context = 1};
    heartbeats_after(r, &hb, to, 10, &read);
    CHECK(read); /* node 2 never answered: node 3's answer to the tick did */
    hb.from = 2;
    heartbeats_after(r, &hb, to, 10, NULL);

    CHECK(raft_read_index(r, 11) == 0); /* 3 answered round 1 first */
    CHECK(heartbeats_after(r, NULL, to, 11, NULL) == 1 && to[0] == 3);

    raft_msg fwd = {.type = RAFT_MSG_READINDEX, .from = 2, .to = 1, .context = 12};
    hb.context = 2; /* round 2 confirmed, so round 3 starts at once */
    hb.from = 3;
    heartbeats_after(r, &hb, to, 11, NULL);
    CHECK(heartbeats_after(r, &fwd, to, 12, NULL) == 1 && to[0] == 2);
    raft_free(r);
}

/* ---- leader transfer ---- */

static void test_leader_transfer(void)
{
    fx *f = mk(3, true, true, 13);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_id target = other_than(f, l, 0);
    raft_term t = raft_term_get(fx_raft(f, l));
    CHECK(raft_transfer_leader(fx_raft(f, l), target) == 0);
    fx_tick(f, l); /* flush the leader's Ready */
    fx_deliver(f, 100);
    CHECK(fx_leader(f) == target);
    CHECK(raft_term_get(fx_raft(f, target)) == t + 1);
    /* During a transfer to an unreachable node proposals are refused,
     * and the transfer is abandoned after an election timeout. */
    raft_id nl = fx_leader(f);
    raft_id dead = other_than(f, nl, 0);
    fx_isolate(f, dead);
    CHECK(fx_propose(f, nl, "p") == 0);
    run(f, 2);
    CHECK(raft_transfer_leader(fx_raft(f, nl), dead) == 0);
    CHECK(fx_propose(f, nl, "q") == RAFT_ERR_TRANSFERRING);
    run(f, 12);
    CHECK(fx_leader(f) == nl);
    CHECK(fx_propose(f, nl, "r") == 0);
    fx_heal(f);
    run(f, 5);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* ---- membership ---- */

static bool has_data(fx *f, raft_id id, const char *want)
{
    for (raft_index i = 1; i <= fx_applied(f, id); i++) {
        const char *d = fx_applied_data(f, id, i);
        if (d && strcmp(d, want) == 0)
            return true;
    }
    return false;
}

static void test_add_voter(void)
{
    fx *f = mk(3, true, true, 17);
    raft_id l = elect(f);
    CHECK(fx_add_node(f, 4) == 0);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_VOTER, 4) == 0);
    run(f, 10);
    CHECK(raft_is_voter(fx_raft(f, l), 4));
    CHECK(raft_is_voter(fx_raft(f, 4), 4));
    CHECK(fx_propose(f, l, "after") == 0);
    run(f, 3);
    CHECK(has_data(f, 4, "after"));
    /* 4 voters: a quorum is 3, so the leader plus one is not enough. */
    raft_id a = other_than(f, l, 4);
    fx_crash(f, a);
    fx_crash(f, 4);
    CHECK(fx_propose(f, l, "stuck") == 0);
    run(f, 3);
    CHECK(!has_data(f, l, "stuck"));
    fx_restart(f, 4);
    run(f, 5);
    CHECK(has_data(f, l, "stuck"));
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* A learner is promoted only once its log holds the change that made the
 * leader's conf and 90 % of the committed log (membership.c): a voter with
 * an empty log would refuse every member's campaign as a stranger's. A
 * refused promotion appends nothing. */
static void test_promote_waits_for_learner(void)
{
    fx *f = mk(3, true, true, 23);
    raft_id l = elect(f);
    CHECK(fx_add_node(f, 4) == 0);
    fx_isolate(f, 4);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_LEARNER, 4) == 0);
    run(f, 5);
    CHECK(raft_is_learner(fx_raft(f, l), 4));
    raft_index last = raft_last_index(fx_raft(f, l));
    CHECK(fx_propose_conf(f, l, RAFT_CONF_PROMOTE, 4) == RAFT_ERR_NOT_READY);
    CHECK(raft_last_index(fx_raft(f, l)) == last);
    fx_heal(f);
    run(f, 10);
    CHECK(raft_match_index(fx_raft(f, l), 4) == raft_last_index(fx_raft(f, l)));
    /* Caught up once, then left behind by more than a tenth of the log. */
    fx_isolate(f, 4);
    for (int i = 0; i < 20; i++)
        CHECK(fx_propose(f, l, "behind") == 0);
    run(f, 5);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_PROMOTE, 4) == RAFT_ERR_NOT_READY);
    fx_heal(f);
    run(f, 10);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_PROMOTE, 4) == 0);
    run(f, 10);
    CHECK(raft_is_voter(fx_raft(f, 4), 4));
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* Node 1 (r) wins `term` with node 2's vote, and node 2 takes the term's
 * no-op at index `noop`: committed and applied, so a conf change may be
 * proposed. Returns node 2's acknowledgement, for the caller to reuse. */
static raft_msg lead_past_noop(raft *r, raft_term term, raft_index noop)
{
    tick_to_candidate(r);
    grant_vote(r, 2, term);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    raft_msg ack = {.type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = term, .index = noop};
    step_and_drain(r, ack, NULL);
    CHECK(raft_applied_index(r) == noop);
    return ack;
}

/* The other half of the rule, alone: a learner within 90 % of the commit
 * whose log stops short of the index the leader's conf dates from (here a
 * restart's applied index, 50) is not ready; at or past it, it is. */
static void test_promote_waits_for_the_conf_change(void)
{
    raft_init_state init;
    init_voters(&init, 3);
    init.conf.learners[init.conf.n_learners++] = 4;
    init.snap = (raft_snapshot_meta){.index = 50, .term = 1, .conf = init.conf};
    init.hs = (raft_hard_state){.term = 1, .commit = 50};
    raft *r = raw_new(1, 0, &init);
    if (!r)
        return;
    raft_msg ack = lead_past_noop(r, 2, 51);
    raft_conf_change promote = {.op = RAFT_CONF_PROMOTE, .id = 4};
    ack.from = 4;
    ack.index = 47;
    step_and_drain(r, ack, NULL);
    CHECK(raft_match_index(r, 4) == 47); /* >= 46, 90 % of the commit 51 */
    CHECK(raft_propose_conf(r, &promote) == RAFT_ERR_NOT_READY);
    ack.index = 50;
    step_and_drain(r, ack, NULL);
    CHECK(raft_propose_conf(r, &promote) == RAFT_OK);
    raft_free(r);
}

/* The messages of r's Ready (drained), into out[0..cap); returns how many;
 * *refused gets the refusals of the last Ready that had any. */
static size_t drain_out(raft *r, raft_msg *out, size_t cap, raft_refusal *refused, size_t *n_ref)
{
    size_t n = 0;
    raft_ready rd;
    while (raft_has_ready(r) && raft_ready_get(r, &rd) == 0) {
        for (size_t i = 0; i < rd.n_messages && n < cap; i++) {
            out[n] = rd.messages[i];
            out[n].entries = NULL; /* not kept past the advance */
            out[n++].n_entries = 0;
        }
        for (size_t i = 0; refused && i < rd.n_refused && *n_ref < 4; i++)
            refused[(*n_ref)++] = rd.refused[i];
        raft_advance(r, &rd);
    }
    return n;
}

/* Forwards f's next proposal (a write if cc is NULL) to l; returns how
 * many entries l appended and, in *hint, the reason l sent back (0: none).
 * Whatever l answers must be one refusal of that very proposal. */
static raft_index forward_to(raft *f, raft *l, const raft_conf_change *cc, uint64_t tag,
                             raft_index *hint)
{
    raft_ready rd;
    raft_msg sent[8];
    if (cc)
        CHECK(raft_propose_conf(f, cc) == RAFT_OK);
    else
        CHECK(raft_propose_tagged(f, (const uint8_t *)"w", 1, tag) == RAFT_OK);
    CHECK(raft_ready_get(f, &rd) == 0 && rd.n_messages == 1);
    raft_msg prop = rd.messages[0];
    CHECK(prop.type == RAFT_MSG_PROP && prop.to == raft_self(l) && prop.context == tag &&
          prop.n_entries == 1);
    raft_index last = raft_last_index(l);
    CHECK(raft_step(l, &prop) == 0);
    raft_advance(f, &rd);
    size_t n = drain_out(l, sent, 8, NULL, NULL);
    *hint = 0;
    for (size_t i = 0; i < n; i++)
        if (sent[i].type == RAFT_MSG_READINDEX_RESP) {
            CHECK(tag && sent[i].to == raft_self(f) && sent[i].context == tag &&
                  sent[i].flags == RAFT_FLAG_REFUSED && sent[i].reject && *hint == 0);
            *hint = sent[i].reject_hint;
        }
    return raft_last_index(l) - last;
}

/* A conf change a follower forwards and the leader refuses comes back to
 * its proposer: the leader answers the tag the PROP carried with its
 * reason (a READINDEX_RESP flagged REFUSED, which a member of the previous
 * version drops as a refused read), and the follower hands it out in its
 * Ready, taking it only from the leader it follows. Untagged: no answer. */
static void test_refused_conf_change_comes_back(void)
{
    raft_init_state init;
    init_voters(&init, 3);
    init.conf.learners[init.conf.n_learners++] = 4;
    raft *l = raw_new(1, 0, &init), *f = raw_new(2, 0, &init);
    if (!l || !f)
        return;
    lead_past_noop(l, 1, 1);
    raft_msg hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
    step_and_drain(f, hb, NULL);
    CHECK(raft_leader(f) == 1);
    /* the follower forwards a promotion of the learner, tagged; the leader
     * refuses it (learner 4 has acknowledged nothing) */
    raft_conf_change promote = {.op = RAFT_CONF_PROMOTE, .id = 4, .tag = 77};
    raft_index hint;
    CHECK(forward_to(f, l, &promote, 77, &hint) == 0 &&
          hint == (raft_index)-RAFT_ERR_NOT_READY);
    raft_msg sent[8];
    raft_ready rd;
    /* the same refusal from a member that does not lead f: dropped */
    raft_msg no = {.type = RAFT_MSG_READINDEX_RESP, .flags = RAFT_FLAG_REFUSED, .reject = true,
                   .from = 3, .to = 2, .term = 1, .context = 77,
                   .reject_hint = (raft_index)-RAFT_ERR_NOT_READY};
    raft_refusal got[4];
    size_t n_got = 0;
    CHECK(raft_step(f, &no) == 0);
    drain_out(f, sent, 8, got, &n_got);
    CHECK(n_got == 0);
    /* from its leader, but a reason no leader gives, or not a refusal:
     * dropped too */
    raft_msg odd = no;
    odd.from = 1;
    const raft_index hints[] = {0, (raft_index)-RAFT_ERR_NO_LEADER, 63, UINT64_C(1) << 62};
    for (size_t i = 0; i < sizeof hints / sizeof hints[0]; i++) {
        odd.reject_hint = hints[i];
        CHECK(raft_step(f, &odd) == 0);
    }
    odd.reject_hint = no.reject_hint;
    odd.reject = false;
    CHECK(raft_step(f, &odd) == 0);
    odd.reject = true;
    odd.context = 0;
    CHECK(raft_step(f, &odd) == 0);
    drain_out(f, sent, 8, got, &n_got);
    CHECK(n_got == 0);
    /* from its leader: handed out once */
    no.from = 1;
    CHECK(raft_step(f, &no) == 0);
    drain_out(f, sent, 8, got, &n_got);
    CHECK(n_got == 1 && got[0].tag == 77 && got[0].code == RAFT_ERR_NOT_READY);
    CHECK(!raft_has_ready(f));
    /* a forwarded change the leader takes gets no answer, nor does the
     * same PROP delivered twice (its copy is the change in flight) */
    raft_conf_change add5 = {.op = RAFT_CONF_ADD_LEARNER, .id = 5, .tag = 79};
    CHECK(raft_propose_conf(f, &add5) == RAFT_OK);
    CHECK(raft_ready_get(f, &rd) == 0 && rd.n_messages == 1);
    raft_msg prop = rd.messages[0];
    raft_index last = raft_last_index(l);
    CHECK(raft_step(l, &prop) == 0);
    CHECK(raft_last_index(l) == last + 1);
    CHECK(raft_step(l, &prop) == 0);
    CHECK(raft_last_index(l) == last + 1);
    raft_advance(f, &rd);
    size_t n = drain_out(l, sent, 8, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        CHECK(sent[i].type != RAFT_MSG_READINDEX_RESP);
    /* with that change in flight, another: CONF_PENDING */
    promote.tag = 78;
    CHECK(forward_to(f, l, &promote, 78, &hint) == 0 &&
          hint == (raft_index)-RAFT_ERR_CONF_PENDING);
    /* an untagged forward is dropped without a word, as before */
    promote.tag = 0;
    CHECK(forward_to(f, l, &promote, 0, &hint) == 0 && hint == 0);
    raft_free(l);
    raft_free(f);
}

/* Nodes 1 and 2 of three voters, fresh; false (a failed CHECK) if refused. */
static bool raw_pair(raft **a, raft **b)
{
    raft_init_state init;
    init_voters(&init, 3);
    *a = raw_new(1, 0, &init);
    *b = raw_new(2, 0, &init);
    return *a && *b;
}

/* raw_pair with 1 leading term 1 past its no-op and 2 following it. */
static bool led_pair(raft **l, raft **f)
{
    if (!raw_pair(l, f))
        return false;
    lead_past_noop(*l, 1, 1);
    raft_msg hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
    step_and_drain(*f, hb, NULL);
    return true;
}

/* A leader handing leadership over appends no proposal; one forwarded to
 * it comes back to its proposer, write or conf change, as "transferring",
 * so the proposer can send it again (node.c does, on its next tick)
 * rather than wait out its deadline when the transfer fails. The same
 * proposals are taken once the transfer is abandoned. Untagged: no word,
 * as before. */
static void test_transfer_refuses_forwarded_proposals(void)
{
    raft *l, *f;
    if (!led_pair(&l, &f))
        return;
    CHECK(raft_transfer_leader(l, 3) == RAFT_OK); /* 3 never answers */
    raft_msg sent[8];
    drain_out(l, sent, 8, NULL, NULL);
    const raft_index transferring = (raft_index)-RAFT_ERR_TRANSFERRING;
    raft_conf_change add5 = {.op = RAFT_CONF_ADD_LEARNER, .id = 5, .tag = 92};
    raft_index hint;
    CHECK(forward_to(f, l, NULL, 91, &hint) == 0 && hint == transferring);
    CHECK(forward_to(f, l, &add5, 92, &hint) == 0 && hint == transferring);
    CHECK(forward_to(f, l, NULL, 0, &hint) == 0 && hint == 0);
    /* the follower hands both refusals out, with the leader's reason */
    raft_msg back = {.type = RAFT_MSG_READINDEX_RESP, .flags = RAFT_FLAG_REFUSED, .reject = true,
                     .from = 1, .to = 2, .term = 1, .reject_hint = transferring};
    raft_refusal got[4];
    size_t n_got = 0;
    back.context = 91;
    CHECK(raft_step(f, &back) == 0);
    back.context = 92;
    CHECK(raft_step(f, &back) == 0);
    drain_out(f, sent, 8, got, &n_got);
    CHECK(n_got == 2 && got[0].tag == 91 && got[0].code == RAFT_ERR_TRANSFERRING &&
          got[1].tag == 92 && got[1].code == RAFT_ERR_TRANSFERRING);
    /* an election timeout later the transfer is abandoned: both go in */
    for (int i = 0; i < 30 && raft_last_index(l) == 1; i++) {
        raft_tick(l);
        drain_out(l, sent, 8, NULL, NULL);
        if (forward_to(f, l, NULL, 91, &hint) == 1)
            break;
        CHECK(hint == transferring);
    }
    CHECK(raft_role_get(l) == RAFT_LEADER && raft_last_index(l) == 2);
    CHECK(forward_to(f, l, &add5, 92, &hint) == 1 && hint == 0);
    raft_free(l);
    raft_free(f);
}

/* The transfer's own target forwards a conf change, then is told to
 * campaign before the leader's refusal arrives: the refusal, now of an
 * earlier term, still reaches its proposer (flagged stale), since conf
 * changes are never proposed again on a leader change. Only the leader of
 * that term may send one. */
static void test_stale_refusal_reaches_the_transfer_target(void)
{
    raft *l, *f;
    if (!led_pair(&l, &f))
        return;
    raft_msg sent[8];
    raft_msg now = {.type = RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = 1};
    CHECK(raft_step(f, &now) == 0);
    drain_out(f, sent, 8, NULL, NULL);
    CHECK(raft_role_get(f) == RAFT_CANDIDATE && raft_term_get(f) == 2);
    const raft_index transferring = (raft_index)-RAFT_ERR_TRANSFERRING;
    raft_msg back = {.type = RAFT_MSG_READINDEX_RESP, .flags = RAFT_FLAG_REFUSED, .reject = true,
                     .from = 3, .to = 2, .term = 1, .reject_hint = transferring, .context = 93};
    raft_refusal got[4];
    size_t n_got = 0;
    CHECK(raft_step(f, &back) == 0); /* 3 did not lead term 1 */
    back.from = 1;
    back.term = 0;
    CHECK(raft_step(f, &back) == 0); /* a refusal always has its term */
    back.term = 1;
    back.context = 92;
    CHECK(raft_step(f, &back) == 0);
    drain_out(f, sent, 8, got, &n_got);
    CHECK(n_got == 1 && got[0].tag == 92 && got[0].code == RAFT_ERR_TRANSFERRING &&
          got[0].stale);
    CHECK(raft_role_get(f) == RAFT_CANDIDATE && raft_term_get(f) == 2); /* nothing else moved */
    raft_free(l);
    raft_free(f);
}

static void test_learner(void)
{
    fx *f = mk(3, true, true, 19);
    raft_id l = elect(f);
    CHECK(fx_add_node(f, 4) == 0);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_LEARNER, 4) == 0);
    run(f, 10);
    CHECK(raft_is_learner(fx_raft(f, l), 4));
    CHECK(fx_propose(f, l, "L") == 0);
    run(f, 3);
    CHECK(has_data(f, 4, "L")); /* learners replicate */
    /* Not counted in the quorum: leader + learner cannot commit. */
    raft_id a = other_than(f, l, 4), b = 0;
    for (raft_id id = 1; id <= 3; id++)
        if (id != l && id != a)
            b = id;
    fx_crash(f, a);
    fx_crash(f, b);
    CHECK(fx_propose(f, l, "nq") == 0);
    run(f, 3);
    CHECK(!has_data(f, l, "nq"));
    /* A learner never campaigns, whatever happens to the leader. */
    fx_crash(f, l);
    run(f, 80);
    CHECK(raft_role_get(fx_raft(f, 4)) == RAFT_FOLLOWER);
    CHECK(fx_leader(f) == 0);
    fx_restart(f, l);
    fx_restart(f, a);
    fx_restart(f, b);
    run(f, 60);
    raft_id nl = fx_leader(f);
    CHECK(nl != 0 && nl != 4);
    /* Promote it: now it votes and counts. */
    CHECK(fx_propose_conf(f, nl, RAFT_CONF_PROMOTE, 4) == 0);
    run(f, 10);
    CHECK(raft_is_voter(fx_raft(f, nl), 4));
    CHECK(raft_is_voter(fx_raft(f, 4), 4));
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* Node `id` of `init`, which cannot campaign, hearing from no leader: it
 * asks each of the three voters with a prevote every election timeout,
 * and their grants leave it a follower in its term. */
static void check_asks_voters_only(const raft_init_state *init, raft_id id)
{
    raft *r = raw_new(id, 0, init);
    if (!r)
        return;
    size_t asked = 0;
    for (int i = 0; i < 100; i++) {
        raft_tick(r);
        raft_ready rd;
        if (!raft_has_ready(r) || raft_ready_get(r, &rd) != 0)
            continue;
        for (size_t k = 0; k < rd.n_messages; k++) {
            const raft_msg *m = &rd.messages[k];
            CHECK(m->type == RAFT_MSG_PREVOTE && m->term == 1 && m->to >= 1 && m->to <= 3);
            asked++;
        }
        raft_advance(r, &rd);
    }
    CHECK(asked >= 3 && asked % 3 == 0); /* each of the three voters, each time */
    for (raft_id v = 1; v <= 3; v++) {
        raft_msg g = {.type = RAFT_MSG_PREVOTE_RESP, .from = v, .to = id, .term = 1};
        step_and_drain(r, g, NULL);
    }
    CHECK(raft_role_get(r) == RAFT_FOLLOWER && raft_term_get(r) == 0);
    raft_free(r);
}

/* A learner's vote never counts, and a learner never campaigns: hearing
 * from no leader, it only asks the voters with prevotes (so a refusal can
 * name a leader it missed being added, raft.c), and grants change nothing. */
static void test_learner_vote_not_counted(void)
{
    raft_init_state init;
    init_voters(&init, 3);
    init.conf.n_learners = 1;
    init.conf.learners[0] = 4;
    raft *r = raw_new(1, 0, &init);
    if (!r)
        return;
    tick_to_candidate(r);
    raft_term t = raft_term_get(r);
    grant_vote(r, 4, t);
    CHECK(raft_role_get(r) == RAFT_CANDIDATE);
    grant_vote(r, 2, t);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    raft_free(r);

    check_asks_voters_only(&init, 4);
}

/* A node whose conf does not list it (restarted from a snapshot older than
 * its own addition) and that hears from no leader asks the voters it knows
 * with prevotes, as a learner does. If they removed it meanwhile, no leader
 * will ever send to it: their peer listeners answer its prevotes 410 Gone,
 * and that is how it learns it is out and stops (found by the 600 s fault
 * run, seed 36: such a node stayed silent and ran on for good). */
static void test_node_outside_its_conf_asks_voters(void)
{
    raft_init_state init;
    init_voters(&init, 3);
    check_asks_voters_only(&init, 5);
}

/* A leader asked to remove itself hands leadership to the most caught-up
 * voter first and refuses the change (its proposer sends it again): a
 * leader that removed itself could step down before the others heard the
 * removal commit, holding the longest log while they still count it as a
 * voter — with a member that missed another's addition, no one could be
 * elected (FOUND-BUGS #6). Sent again, it is the new leader's to make. */
static void test_remove_leader(void)
{
    fx *f = mk(3, true, true, 23);
    raft_id l = elect(f);
    CHECK(l != 0);
    raft_index last = raft_last_index(fx_raft(f, l));
    CHECK(fx_propose_conf(f, l, RAFT_CONF_REMOVE, l) == RAFT_ERR_TRANSFERRING);
    CHECK(raft_last_index(fx_raft(f, l)) == last);
    run(f, 10);
    raft_id nl = fx_leader(f);
    CHECK(nl != 0 && nl != l && raft_is_voter(fx_raft(f, l), l));
    CHECK(fx_propose_conf(f, l, RAFT_CONF_REMOVE, l) == 0); /* forwarded now */
    run(f, 3);
    CHECK(!raft_is_voter(fx_raft(f, l), l));
    run(f, 60);
    CHECK(fx_leader(f) == nl);
    if (nl) {
        CHECK(raft_conf_get(fx_raft(f, nl))->n_voters == 2);
        CHECK(fx_propose(f, nl, "two-node") == 0);
        run(f, 3);
        CHECK(has_data(f, other_than(f, nl, l), "two-node"));
    }
    /* The removed node never campaigns again. */
    CHECK(raft_role_get(fx_raft(f, l)) == RAFT_FOLLOWER);
    /* The leader's removal asked of a follower: forwarded, refused, and
     * leadership moves to the follower; the leader stays a voter. */
    raft_id o = other_than(f, nl, l);
    uint64_t refused = fx_get_stats(f).transfer_refusals;
    CHECK(fx_propose_conf(f, o, RAFT_CONF_REMOVE, nl) == 0);
    run(f, 10);
    CHECK(fx_leader(f) == o && raft_is_voter(fx_raft(f, o), nl));
    CHECK(fx_get_stats(f).transfer_refusals == refused + 1);
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* The leader's removal, retried as raftkv's node does (every tick), when
 * its two most caught-up followers are down (a tie: the first in id
 * order is chosen): each transfer to one of them lapses, and once both
 * have, the next goes to a follower that is up, which takes over.
 * Remembering only the last lapsed target would alternate between the
 * two down ones for good. */
static void test_remove_leader_passes_over_a_lapsed_successor(void)
{
    fx *f = mk(5, true, true, 31);
    raft_id l = elect(f);
    CHECK(l != 0);
    run(f, 3);
    raft_id down[2], n_down = 0;
    for (raft_id id = 1; id <= 5 && n_down < 2; id++)
        if (id != l)
            down[n_down++] = id;
    CHECK(raft_best_successor(fx_raft(f, l)) == down[0]);
    fx_crash(f, down[0]);
    fx_crash(f, down[1]);
    int tries = 0;
    while (tries < 200 && fx_leader(f) == l) {
        CHECK(fx_propose_conf(f, l, RAFT_CONF_REMOVE, l) == RAFT_ERR_TRANSFERRING);
        run(f, 1);
        tries++;
    }
    raft_id up = fx_leader(f);
    CHECK_MSG(up != l && up != 0 && up != down[0] && up != down[1],
              "leader %llu after %d tries", (unsigned long long)up, tries);
    if (up == 0 || up == l) {
        fx_free(f);
        return;
    }
    CHECK(fx_propose_conf(f, up, RAFT_CONF_REMOVE, l) == 0);
    run(f, 5);
    CHECK(!raft_is_voter(fx_raft(f, up), l));
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

static void test_conf_change_pending(void)
{
    fx *f = mk(3, true, true, 29);
    raft_id l = elect(f);
    CHECK(fx_add_node(f, 4) == 0);
    CHECK(fx_add_node(f, 5) == 0);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_LEARNER, 4) == 0);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_LEARNER, 5) == RAFT_ERR_CONF_PENDING);
    run(f, 5);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_LEARNER, 5) == 0);
    run(f, 5);
    CHECK(raft_is_learner(fx_raft(f, l), 5));
    /* Invalid changes are refused up front. */
    CHECK(fx_propose_conf(f, l, RAFT_CONF_ADD_VOTER, 5) == RAFT_ERR_INVALID);
    CHECK(fx_propose_conf(f, l, RAFT_CONF_PROMOTE, 1) == RAFT_ERR_INVALID);
    CHECK(fx_propose_conf(f, l, 77, 6) == RAFT_ERR_INVALID);
    fx_free(f);
}

/* A new leader may append a conf change before its no-op is applied when
 * its unapplied tail holds none (a removal handed over with the
 * leadership is made at once); with one in the tail it waits. */
static void test_new_leader_waits_only_for_a_conf_in_its_tail(void)
{
    raft *a, *b;
    if (!raw_pair(&a, &b))
        return;
    tick_to_candidate(a);
    grant_vote(a, 2, 1);
    CHECK(raft_role_get(a) == RAFT_LEADER && raft_applied_index(a) == 0);
    raft_conf_change add4 = {.op = RAFT_CONF_ADD_LEARNER, .id = 4};
    CHECK(raft_propose_conf(a, &add4) == RAFT_OK);
    raft_conf_change add5 = {.op = RAFT_CONF_ADD_LEARNER, .id = 5};
    CHECK(raft_propose_conf(a, &add5) == RAFT_ERR_CONF_PENDING);
    /* b holds a's conf change, unapplied, and wins the next election */
    uint8_t data[64];
    size_t n = raft_conf_change_encode(&add4, data, sizeof data);
    raft_entry e = {.index = 1, .term = 1, .type = RAFT_ENTRY_CONF, .len = (uint32_t)n,
                    .data = data};
    raft_msg app = {.type = RAFT_MSG_APPEND, .from = 1, .to = 2, .term = 1,
                    .n_entries = 1, .entries = &e};
    step_and_drain(b, app, NULL);
    CHECK(raft_last_index(b) == 1);
    tick_to_candidate(b);
    grant_vote(b, 3, 2);
    CHECK(raft_role_get(b) == RAFT_LEADER && raft_applied_index(b) == 0);
    CHECK(raft_propose_conf(b, &add5) == RAFT_ERR_CONF_PENDING);
    raft_free(a);
    raft_free(b);
}

/* ---- snapshots ---- */

static void test_snapshot_catch_up(void)
{
    fx_options o;
    memset(&o, 0, sizeof o);
    o.seed = 31;
    o.n_nodes = 3;
    o.pre_vote = true;
    o.check_quorum = true;
    o.snapshot_every = 5;
    o.snapshot_keep = 2;
    fx *f = fx_new(&o);
    raft_id l = elect(f);
    raft_id lag = other_than(f, l, 0);
    fx_isolate(f, lag);
    char buf[32];
    for (int i = 0; i < 30; i++) {
        snprintf(buf, sizeof buf, "v%d", i);
        CHECK(fx_propose(f, l, buf) == 0);
        fx_deliver(f, 100);
    }
    run(f, 2);
    CHECK(raft_first_index(fx_raft(f, l)) > raft_last_index(fx_raft(f, lag)) + 1);
    fx_heal(f);
    run(f, 20);
    CHECK(fx_applied(f, lag) == fx_applied(f, l));
    CHECK(has_data(f, lag, "v29"));
    CHECK(raft_first_index(fx_raft(f, lag)) > 2); /* it installed a snapshot */
    CHECK(fx_propose(f, l, "post") == 0);
    run(f, 3);
    CHECK(has_data(f, lag, "post"));
    /* It survives a restart from its installed snapshot. */
    fx_crash(f, lag);
    fx_restart(f, lag);
    run(f, 5);
    CHECK(has_data(f, lag, "post"));
    CHECK(fx_check(f) == 0);
    fx_free(f);
}

/* ---- codec ---- */

static void test_conf_change_codec(void)
{
    const uint8_t ctx[] = "http://127.0.0.1:42379";
    raft_conf_change cc = {.op = RAFT_CONF_ADD_VOTER, .id = 0x0102030405060708ull,
                           .ctx_len = sizeof ctx - 1, .ctx = ctx};
    uint8_t buf[64];
    size_t n = raft_conf_change_encode(&cc, buf, sizeof buf);
    CHECK(n == raft_conf_change_size(&cc) && n == 13 + sizeof ctx - 1);
    CHECK(raft_conf_change_encode(&cc, buf, n - 1) == 0);
    raft_conf_change out;
    CHECK(raft_conf_change_decode(buf, n, &out) == 0);
    CHECK(out.op == cc.op && out.id == cc.id && out.ctx_len == cc.ctx_len);
    CHECK(memcmp(out.ctx, ctx, cc.ctx_len) == 0);
    CHECK(buf[1] == 0x08); /* little endian */
    /* Garbage: truncated, trailing bytes, bad op, id 0, lying length. */
    CHECK(raft_conf_change_decode(buf, n - 1, &out) == RAFT_ERR_INVALID);
    CHECK(raft_conf_change_decode(buf, 5, &out) == RAFT_ERR_INVALID);
    CHECK(raft_conf_change_decode(NULL, 0, &out) == RAFT_ERR_INVALID);
    uint8_t big[80];
    memcpy(big, buf, n);
    big[n] = 0;
    CHECK(raft_conf_change_decode(big, n + 1, &out) == RAFT_ERR_INVALID);
    buf[0] = 9;
    CHECK(raft_conf_change_decode(buf, n, &out) == RAFT_ERR_INVALID);
    buf[0] = RAFT_CONF_REMOVE;
    memset(buf + 1, 0, 8);
    CHECK(raft_conf_change_decode(buf, n, &out) == RAFT_ERR_INVALID);
    buf[1] = 3;
    buf[9] = 0xff, buf[10] = 0xff, buf[11] = 0xff, buf[12] = 0xff;
    CHECK(raft_conf_change_decode(buf, n, &out) == RAFT_ERR_INVALID);
    /* Random bytes never crash the decoder. */
    uint64_t s = 12345;
    for (int i = 0; i < 2000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(s >> 58);
        for (size_t j = 0; j < len; j++)
            big[j] = (uint8_t)(s >> (j % 56));
        if (raft_conf_change_decode(big, len, &out) == 0)
            CHECK(out.ctx_len == len - 13);
    }
    /* raft_conf_apply rules. */
    raft_conf c;
    memset(&c, 0, sizeof c);
    raft_conf_change add = {.op = RAFT_CONF_ADD_LEARNER, .id = 7};
    CHECK(raft_conf_apply(&c, &add) == 0 && c.n_learners == 1);
    CHECK(raft_conf_apply(&c, &add) == RAFT_ERR_INVALID);
    add.op = RAFT_CONF_PROMOTE;
    CHECK(raft_conf_apply(&c, &add) == 0 && c.n_voters == 1 && c.n_learners == 0);
    CHECK(raft_conf_apply(&c, &add) == RAFT_ERR_INVALID);
    add.op = RAFT_CONF_REMOVE;
    CHECK(raft_conf_apply(&c, &add) == 0 && c.n_voters == 0);
    CHECK(!raft_conf_has(&c, 7));
    for (raft_id id = 1; id <= RAFT_MAX_MEMBERS; id++) {
        raft_conf_change a = {.op = RAFT_CONF_ADD_VOTER, .id = id};
        CHECK(raft_conf_apply(&c, &a) == 0);
    }
    raft_conf_change extra = {.op = RAFT_CONF_ADD_VOTER, .id = 100};
    CHECK(raft_conf_apply(&c, &extra) == RAFT_ERR_TOO_MANY);
}

/* (Deep copies of messages are the transport's: transport_test.) */
static void test_msg_names(void)
{
    CHECK(strcmp(raft_msg_type_name(RAFT_MSG_SNAP), "SNAP") == 0);
    CHECK(strcmp(raft_msg_type_name(1000), "?") == 0);
    CHECK(strcmp(raft_role_name(RAFT_LEADER), "leader") == 0);
}

int main(void)
{
    RUN(test_single_node_direct);
    RUN(test_snapshot_taken_at);
    RUN(test_tail_start);
    RUN(test_election);
    RUN(test_randomized_timeout);
    RUN(test_prevote_rejoin);
    RUN(test_no_prevote_disrupts);
    RUN(test_check_quorum_steps_down);
    RUN(test_replication_and_commit);
    RUN(test_no_commit_of_old_term_by_counting);
    RUN(test_deferred_commit_notice);
    RUN(test_follower_rejects_forged_append);
    RUN(test_read_index);
    RUN(test_read_index_answer_from_previous_life);
    RUN(test_read_index_waits_for_term_commit);
    RUN(test_read_round_asks_a_quorum);
    RUN(test_leader_transfer);
    RUN(test_add_voter);
    RUN(test_learner);
    RUN(test_promote_waits_for_learner);
    RUN(test_promote_waits_for_the_conf_change);
    RUN(test_refused_conf_change_comes_back);
    RUN(test_transfer_refuses_forwarded_proposals);
    RUN(test_stale_refusal_reaches_the_transfer_target);
    RUN(test_remove_leader_passes_over_a_lapsed_successor);
    RUN(test_new_leader_waits_only_for_a_conf_in_its_tail);
    RUN(test_learner_vote_not_counted);
    RUN(test_node_outside_its_conf_asks_voters);
    RUN(test_remove_leader);
    RUN(test_conf_change_pending);
    RUN(test_snapshot_catch_up);
    RUN(test_conf_change_codec);
    RUN(test_msg_names);
    TEST_MAIN_END();
}
