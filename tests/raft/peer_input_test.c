/* peer_input_test: one core driven by hand with what a hostile, stale or
 * confused peer could send: non-members, absurd terms and indexes, forged
 * proposals and appends, and a leader that says we acknowledged entries our
 * disk no longer has. Each case reproduces a finding that once changed
 * state (a forged max-term heartbeat stopped a whole cluster for good).
 *
 * Must never: go through the simulator; it checks the core's own door. */
#include "../test.h"
#include "raft/raft.h"

#include <stdlib.h>
#include <string.h>

/* Node 1 of the voters {1, 2, 3}, with entries 1..n_log of term 1;
 * guards: prevote and check-quorum on (as a node runs them). */
static raft *mk_node_with(size_t n_log, raft_term term, bool guards)
{
    static raft_entry ents[8];
    static uint8_t payload[] = "x";
    for (size_t i = 0; i < n_log && i < 8; i++)
        ents[i] = (raft_entry){.term = 1, .index = i + 1, .type = RAFT_ENTRY_NORMAL,
                               .len = 1, .data = payload};
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs.term = term;
    init.conf.n_voters = 3;
    for (raft_id v = 0; v < 3; v++)
        init.conf.voters[v] = v + 1;
    init.n_entries = n_log;
    init.entries = ents;
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1, .pre_vote = guards,
                       .check_quorum = guards, .max_inflight = 16, .max_msg_bytes = 1 << 20,
                       .seed = 7};
    raft *r = NULL;
    CHECK(raft_new(&cfg, &init, &r) == RAFT_OK);
    return r;
}

static raft *mk_node(size_t n_log, raft_term term) { return mk_node_with(n_log, term, true); }

/* Drains the Ready as a node would (everything "persisted" at once). */
static void drain(raft *r)
{
    raft_ready rd;
    while (raft_has_ready(r) && raft_ready_get(r, &rd) == 0)
        raft_advance(r, &rd);
}

static raft_msg msg(uint8_t type, raft_id from, raft_term term)
{
    raft_msg m;
    memset(&m, 0, sizeof m);
    m.type = type;
    m.from = from;
    m.to = 1;
    m.term = term;
    return m;
}

/* Makes node 1 leader of term 2 with node 2's votes. */
static raft *mk_leader(void)
{
    raft *r = mk_node(0, 1);
    for (int i = 0; i < 40 && raft_role_get(r) == RAFT_FOLLOWER; i++)
        raft_tick(r);
    drain(r);
    raft_msg pv = msg(RAFT_MSG_PREVOTE_RESP, 2, raft_term_get(r) + 1);
    raft_step(r, &pv);
    drain(r);
    raft_msg v = msg(RAFT_MSG_VOTE_RESP, 2, raft_term_get(r));
    raft_step(r, &v);
    drain(r);
    CHECK(raft_role_get(r) == RAFT_LEADER);
    return r;
}

static void test_max_term_heartbeat_from_non_member(void)
{
    raft *r = mk_node(2, 3);
    raft_msg h = msg(RAFT_MSG_HEARTBEAT, 99, UINT64_MAX);
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    h.term = RAFT_MAX_NUMBER - 1; /* well formed, but not a member */
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    CHECK(raft_term_get(r) == 3);
    CHECK(raft_leader(r) == 0);
    /* A member with a term at the bound is malformed too. */
    h.from = 2;
    h.term = RAFT_MAX_NUMBER;
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    CHECK(raft_term_get(r) == 3);
    raft_free(r);
}

static void test_every_type_from_non_member_changes_nothing(void)
{
    raft *r = mk_leader();
    raft_term t = raft_term_get(r);
    raft_index last = raft_last_index(r), commit = raft_commit_index(r);
    static uint8_t data[] = "forged";
    raft_entry e = {.type = RAFT_ENTRY_NORMAL, .len = 6, .data = data};
    for (uint8_t type = RAFT_MSG_APPEND; type <= RAFT_MSG_TRANSFER; type++) {
        raft_msg m = msg(type, 99, type == RAFT_MSG_PROP ? 0 : t);
        if (type == RAFT_MSG_PROP) {
            m.entries = &e;
            m.n_entries = 1;
        }
        m.index = 3; /* TRANSFER: target 3 */
        CHECK_MSG(raft_step(r, &m) == RAFT_ERR_INVALID, "type %s accepted",
                  raft_msg_type_name(type));
        drain(r);
    }
    CHECK(raft_role_get(r) == RAFT_LEADER && raft_term_get(r) == t);
    CHECK(raft_last_index(r) == last && raft_commit_index(r) == commit);
    /* The same proposal from a member is taken. */
    raft_msg p = msg(RAFT_MSG_PROP, 2, 0);
    p.entries = &e;
    p.n_entries = 1;
    CHECK(raft_step(r, &p) == RAFT_OK);
    CHECK(raft_last_index(r) == last + 1);
    raft_free(r);
}

/* A node whose term a campaign lifted above a live leader's answers that
 * leader's stale heartbeats and appends with its own term, with or without
 * prevote and check-quorum, so the leader steps down and an election at
 * the newer term takes the node back. Without the guards it once kept
 * silent: a learner (which never campaigns) lifted by a removed member it
 * still knew waited forever (simulator seed 5820). */
static void test_stale_leader_hears_newer_term(void)
{
    for (int guards = 0; guards < 2; guards++) {
        raft *r = mk_node_with(2, 5, guards);
        static const uint8_t stale[] = {RAFT_MSG_APPEND, RAFT_MSG_HEARTBEAT};
        for (size_t k = 0; k < sizeof stale; k++) {
            uint8_t type = stale[k];
            raft_msg m = msg(type, 2, 3);
            CHECK(raft_step(r, &m) == RAFT_OK);
            raft_ready rd;
            CHECK(raft_has_ready(r) && raft_ready_get(r, &rd) == 0);
            bool told = false;
            for (size_t i = 0; i < rd.n_messages; i++)
                told |= rd.messages[i].type == RAFT_MSG_APPEND_RESP &&
                        rd.messages[i].to == 2 && rd.messages[i].term == 5;
            CHECK_MSG(told, "%s at term 3 (guards %d) not answered with term 5",
                      raft_msg_type_name(type), guards);
            raft_advance(r, &rd);
            CHECK(raft_term_get(r) == 5 && raft_leader(r) == 0);
        }
        raft_free(r);
    }
}

static void test_forged_append_from_non_member(void)
{
    raft *r = mk_node(2, 2);
    static uint8_t data[] = "evil";
    raft_entry e = {.term = 2, .index = 3, .type = RAFT_ENTRY_NORMAL, .len = 4, .data = data};
    raft_msg a = msg(RAFT_MSG_APPEND, 99, 2);
    a.index = 2;
    a.log_term = 1;
    a.commit = 3;
    a.entries = &e;
    a.n_entries = 1;
    CHECK(raft_step(r, &a) == RAFT_ERR_INVALID);
    drain(r);
    CHECK(raft_last_index(r) == 2 && raft_commit_index(r) == 0);
    CHECK(raft_leader(r) == 0 && raft_term_get(r) == 2);
    raft_free(r);
}

/* A refusal of a campaign at the leader's term, as a member refuses a
 * node that missed the change adding the leader. */
static raft_msg leader_hint(raft_id from, raft_term term, raft_id leader)
{
    raft_msg m = msg(RAFT_MSG_PREVOTE_RESP, from, term);
    m.reject = true;
    m.flags = RAFT_FLAG_LEADER_HINT;
    m.context = leader;
    return m;
}

/* A member whose conf lacks the leader (it missed the change adding it)
 * lets that leader in once a member names it, and only then: a stranger
 * naming itself, or a hint that is no refusal, changes nothing (simulator
 * seed 1878 with one-voter read rounds: a node whose conf lacked the
 * leader refused it to the end). */
static void test_member_named_leader_let_in(void)
{
    raft *r = mk_node(2, 5);
    raft_msg h = msg(RAFT_MSG_HEARTBEAT, 9, 6);
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    raft_msg self = leader_hint(9, 6, 9); /* the stranger names itself */
    CHECK(raft_step(r, &self) == RAFT_ERR_INVALID);
    raft_msg grant = leader_hint(2, 6, 9);
    grant.reject = false; /* not a refusal */
    CHECK(raft_step(r, &grant) == RAFT_OK); /* a member's grant is taken, and names nobody */
    drain(r);
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    CHECK(raft_leader(r) == 0);
    raft_msg hint = leader_hint(2, 6, 9); /* member 2: "9 leads" */
    CHECK(raft_step(r, &hint) == RAFT_OK);
    drain(r);
    CHECK(raft_step(r, &h) == RAFT_OK);
    CHECK(raft_leader(r) == 9 && raft_term_get(r) == 6);
    raft_msg vote = msg(RAFT_MSG_VOTE, 9, 7); /* let in as a leader only */
    CHECK(raft_step(r, &vote) == RAFT_ERR_INVALID);
    raft_free(r);
}

/* A leader refusing a campaign under its lease names itself. */
static void test_refused_campaign_names_leader(void)
{
    raft *r = mk_leader();
    raft_term t = raft_term_get(r);
    raft_msg v = msg(RAFT_MSG_VOTE, 3, t + 5);
    v.index = 10;
    v.log_term = t;
    CHECK(raft_step(r, &v) == RAFT_OK);
    raft_ready rd;
    CHECK(raft_has_ready(r) && raft_ready_get(r, &rd) == 0);
    bool named = false;
    for (size_t i = 0; i < rd.n_messages; i++) {
        const raft_msg *m = &rd.messages[i];
        named |= m->type == RAFT_MSG_VOTE_RESP && m->to == 3 && m->reject && m->term == t &&
                 (m->flags & RAFT_FLAG_LEADER_HINT) && m->context == 1;
    }
    CHECK(named);
    raft_advance(r, &rd);
    CHECK(raft_role_get(r) == RAFT_LEADER && raft_term_get(r) == t);
    raft_free(r);
}

static void test_heartbeat_beyond_log_is_log_lost(void)
{
    raft *r = mk_node(2, 2);
    raft_msg h = msg(RAFT_MSG_HEARTBEAT, 2, 2);
    h.commit = 2; /* what we hold: fine */
    CHECK(raft_step(r, &h) == RAFT_OK);
    CHECK(raft_commit_index(r) == 2);
    drain(r);
    h.commit = 5; /* the leader knows we acknowledged 5: our disk lost 3..5 */
    CHECK(raft_step(r, &h) == RAFT_ERR_LOG_LOST);
    CHECK(raft_lost_index(r) == 5);
    CHECK(raft_commit_index(r) == 2);
    /* Sticky: nothing more is stepped. */
    h.commit = 1;
    CHECK(raft_step(r, &h) == RAFT_ERR_LOG_LOST);
    raft_free(r);
}

/* A one-member cluster is a member of its own conf: strangers are refused
 * (the rule that lets a joiner follow anyone applies only to a node that
 * is not yet in the membership it knows). */
static void test_single_node_refuses_stranger(void)
{
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs.term = 4;
    init.conf.n_voters = 1;
    init.conf.voters[0] = 1;
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1, .seed = 5};
    raft *r = NULL;
    CHECK(raft_new(&cfg, &init, &r) == RAFT_OK);
    raft_msg h = msg(RAFT_MSG_HEARTBEAT, 99, 9);
    CHECK(raft_step(r, &h) == RAFT_ERR_INVALID);
    CHECK(raft_term_get(r) == 4 && raft_leader(r) == 0);
    raft_free(r);
    /* a joiner that has not applied its own addition yet follows a leader */
    init.conf.voters[0] = 2;
    CHECK(raft_new(&cfg, &init, &r) == RAFT_OK);
    h.from = 7;
    CHECK(raft_step(r, &h) == RAFT_OK);
    CHECK(raft_term_get(r) == 9 && raft_leader(r) == 7);
    raft_free(r);
}

static void test_load_refuses_huge_term(void)
{
    raft_init_state init;
    memset(&init, 0, sizeof init);
    init.hs.term = RAFT_MAX_NUMBER;
    raft_config cfg = {.id = 1, .election_tick = 10, .heartbeat_tick = 1};
    raft *r = NULL;
    CHECK(raft_new(&cfg, &init, &r) == RAFT_ERR_INVALID);
    CHECK(r == NULL);
}

int main(void)
{
    RUN(test_max_term_heartbeat_from_non_member);
    RUN(test_every_type_from_non_member_changes_nothing);
    RUN(test_forged_append_from_non_member);
    RUN(test_stale_leader_hears_newer_term);
    RUN(test_member_named_leader_let_in);
    RUN(test_refused_campaign_names_leader);
    RUN(test_heartbeat_beyond_log_is_log_lost);
    RUN(test_single_node_refuses_stranger);
    RUN(test_load_refuses_huge_term);
    TEST_MAIN_END();
}
