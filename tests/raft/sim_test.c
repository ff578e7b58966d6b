/* sim_test: the random deterministic Raft simulator.
 *
 * Owns: the per-seed choice of options (cluster size, PreVote/CheckQuorum,
 * drop/duplicate/delay, snapshots, membership changes), running each seed
 * through fx_run_random with checks after every step and then fx_settle
 * (liveness in calm conditions), the replay command line, and self-tests
 * proving the checker catches fabricated violations.
 *
 * Must never: depend on wall time or on the order seeds run in — a seed's
 * run is a function of the seed (and --steps) alone, so every failure
 * replays with `tests/raft/sim_test --seed N --verbose`.
 */
#include "../alloc_wrap.h"
#include "../test.h"
#include "fixture.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned long long ull;

/* Allocations go through alloc_wrap.c (src/raft/local.mk links with
 * --wrap): one inside a core call of a seed with nomem may fail. */
bool alloc_wrap_fails(void) { return fx_core_alloc_fails(); }

#define SIM_DEFAULT_SEEDS 2000
#define SIM_DEFAULT_STEPS 3000
#define SIM_GROUP 100
#define SIM_SETTLE_TICKS 400

typedef struct {
    fx_options o;
    bool membership;
} sim_plan;

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Options are a pure function of the seed, taken from its hash bits. */
static sim_plan plan_for(uint64_t seed)
{
    static const double drops[] = {0, 0.02, 0.1, 0.25};
    static const int delays[] = {0, 1, 3, 6};
    static const int snap_every[] = {0, 5, 10, 25};
    static const int snap_keep[] = {0, 0, 3, 10};
    static const double slow_fsync[] = {0, 0.2, 0.5, 0.9};
    static const int snap_lag[] = {0, 2, 10, 40};
    uint64_t h = mix64(seed);
    sim_plan p;
    memset(&p, 0, sizeof p);
    p.o.seed = seed;
    p.o.n_nodes = (h & 1) ? 5 : 3;
    p.o.election_tick = 5;
    p.o.heartbeat_tick = 1;
    p.o.pre_vote = (h >> 1) & 1;
    p.o.check_quorum = (h >> 2) & 1;
    p.o.drop = drops[(h >> 3) & 3];
    p.o.duplicate = ((h >> 5) & 1) ? 0.05 : 0;
    p.o.max_delay = delays[(h >> 6) & 3];
    p.membership = ((h >> 8) & 3) == 0;
    int s = (int)((h >> 10) & 3);
    if (p.membership && s == 0)
        s = 1; /* fresh joiners need snapshots to learn the conf */
    p.o.snapshot_every = snap_every[s];
    p.o.snapshot_keep = snap_keep[s];
    p.o.max_inflight = ((h >> 12) & 1) ? 2 : 16;
    p.o.slow_fsync = slow_fsync[(h >> 13) & 3];
    p.o.snapshot_lag = snap_lag[(h >> 15) & 3];
    p.o.byzantine = ((h >> 17) & 3) == 0 ? 0.05 : 0;
    p.o.defer_commit_notice = (h >> 19) & 1;
    p.o.nomem = ((h >> 20) & 3) == 0 ? 0.01 : 0;
    return p;
}

static void plan_print(const sim_plan *p)
{
    printf("plan: nodes=%d prevote=%d checkquorum=%d drop=%.2f dup=%.2f delay=%d "
           "snapshot_every=%d keep=%d lag=%d slow_fsync=%.1f inflight=%u membership=%d "
           "byzantine=%.2f defer_commit=%d nomem=%.2f\n",
           p->o.n_nodes, p->o.pre_vote, p->o.check_quorum, p->o.drop, p->o.duplicate,
           p->o.max_delay, p->o.snapshot_every, p->o.snapshot_keep, p->o.snapshot_lag,
           p->o.slow_fsync, p->o.max_inflight, p->membership, p->o.byzantine,
           p->o.defer_commit_notice, p->o.nomem);
}

/* Runs one seed; prints the FAIL line with the replay command on failure. */
static bool run_seed(uint64_t seed, int steps, bool verbose)
{
    sim_plan p = plan_for(seed);
    fx *f = fx_new(&p.o);
    if (!f) {
        printf("FAIL seed=%llu: fx_new failed; replay: tests/raft/sim_test --seed %llu "
               "--verbose\n", (ull)seed, (ull)seed);
        return false;
    }
    if (verbose) {
        plan_print(&p);
        fx_set_trace(f, stdout);
    }
    int rc = fx_run_random(f, steps, p.membership);
    if (rc == 0)
        rc = fx_settle(f, SIM_SETTLE_TICKS);
    if (rc) {
        char extra[32] = "";
        if (steps != SIM_DEFAULT_STEPS)
            snprintf(extra, sizeof extra, " --steps %d", steps);
        printf("FAIL seed=%llu: %s; replay: tests/raft/sim_test --seed %llu%s --verbose\n",
               (ull)seed, fx_error(f), (ull)seed, extra);
    } else if (verbose) {
        printf("seed %llu ok after %llu steps\n", (ull)seed, (ull)fx_step_count(f));
    }
    fflush(stdout);
    fx_free(f);
    return rc == 0;
}

/* One test case per group of seeds keeps the output short; every failing
 * seed still prints its own FAIL line. */
static void run_seed_groups(uint64_t first, uint64_t n_seeds, int steps)
{
    uint64_t last = first + n_seeds - 1, hi = 0;
    for (uint64_t lo = first; hi != last; lo = hi + 1) {
        hi = last - lo >= SIM_GROUP ? lo + SIM_GROUP - 1 : last;
        int failed = 0;
        for (uint64_t s = lo; s <= hi; s++)
            failed += !run_seed(s, steps, false);
        if (failed)
            test_cases_failed++;
        else
            test_cases_passed++;
        printf("%s sim seeds %llu-%llu (%d failed)\n", failed ? "FAIL" : "PASS", (ull)lo,
               (ull)hi, failed);
        fflush(stdout);
    }
}

/* ---- checker self-tests: fabricated violations must be caught ---- */

/* A three-node cluster without faults (NULL, a failed check, if fx_new failed). */
static fx *calm_cluster(void)
{
    fx_options o;
    memset(&o, 0, sizeof o);
    o.seed = 42;
    o.n_nodes = 3;
    fx *f = fx_new(&o);
    CHECK(f != NULL);
    return f;
}

/* A cluster with "a" committed and applied on all three nodes; returns
 * its index (0 on failure). */
static raft_index commit_one(fx *f)
{
    raft_id l = fx_elect_any(f, 200);
    if (!l || fx_propose(f, l, "a") != 0)
        return 0;
    raft_index idx = raft_last_index(fx_raft(f, l));
    for (int i = 0; i < 50; i++) {
        fx_deliver(f, 100);
        bool all = true;
        for (raft_id id = 1; id <= 3; id++) {
            const char *d = fx_applied_data(f, id, idx);
            all = all && d && !strcmp(d, "a");
        }
        if (all)
            return idx;
        fx_tick_all(f);
    }
    return 0;
}

/* The checker must refuse the fabricated state, naming what it breaks. */
static void check_caught(fx *f, const char *property)
{
    CHECK(fx_check(f) == -1);
    CHECK_MSG(strstr(fx_error(f), property) != NULL, "%s: %s", property, fx_error(f));
}

static void test_checker_state_machine_safety(void)
{
    fx *f = calm_cluster();
    if (!f)
        return;
    raft_index idx = commit_one(f);
    CHECK(idx > 0);
    CHECK(fx_check(f) == 0);
    raft_term t = raft_term_get(fx_raft(f, fx_leader(f)));
    fx_inject_apply(f, 2, idx, t, "a"); /* agreeing apply: still fine */
    CHECK(fx_check(f) == 0);
    fx_inject_apply(f, 2, idx, t, "b");
    check_caught(f, "state machine safety");
    fx_free(f);
}

static void test_checker_election_safety(void)
{
    fx *f = calm_cluster();
    if (!f)
        return;
    raft_id l = fx_elect_any(f, 200);
    CHECK(l != 0);
    if (l) {
        raft_term t = raft_term_get(fx_raft(f, l));
        fx_inject_leader(f, l, t);
        CHECK(fx_check(f) == 0);
        fx_inject_leader(f, l % 3 + 1, t);
        check_caught(f, "election safety");
    }
    fx_free(f);
}

static void test_checker_log_matching(void)
{
    fx *f = calm_cluster();
    if (!f)
        return;
    raft_index idx = commit_one(f);
    CHECK(idx > 0);
    raft_id l = fx_leader(f);
    if (idx && l) {
        raft_term t = raft_term_get(fx_raft(f, l));
        fx_inject_entry(f, l % 3 + 1, idx, t, "a");
        CHECK(fx_check(f) == 0);
        fx_inject_entry(f, l % 3 + 1, idx, t, "forged");
        check_caught(f, "log matching");
    }
    fx_free(f);
}

/* fx_settle must be able to fail: no ticks, no leader, no marker. */
static void test_checker_liveness_can_fail(void)
{
    fx *f = calm_cluster();
    if (!f)
        return;
    CHECK(fx_settle(f, 0) == -1);
    CHECK_MSG(strstr(fx_error(f), "liveness") != NULL, "%s", fx_error(f));
    fx_free(f);
}

/* A seed replays exactly: same steps, same applied state everywhere. */
static void test_replay_is_deterministic(void)
{
    raft_index applied[2][FX_MAX_NODES + 1];
    uint64_t steps[2];
    memset(applied, 0, sizeof applied); /* slot 0 (no node) is compared too */
    for (int run = 0; run < 2; run++) {
        sim_plan p = plan_for(7);
        fx *f = fx_new(&p.o);
        CHECK(f != NULL);
        if (!f)
            return;
        CHECK(fx_run_random(f, SIM_DEFAULT_STEPS, p.membership) == 0);
        CHECK(fx_settle(f, SIM_SETTLE_TICKS) == 0);
        steps[run] = fx_step_count(f);
        for (raft_id id = 1; id <= FX_MAX_NODES; id++)
            applied[run][id] = fx_applied(f, id);
        fx_free(f);
    }
    CHECK(steps[0] == steps[1]);
    CHECK(memcmp(applied[0], applied[1], sizeof applied[0]) == 0);
}

/* The schedule must make real progress, or the invariants say little. */
static void test_random_run_commits(void)
{
    fx_options o;
    memset(&o, 0, sizeof o);
    o.seed = 3;
    o.n_nodes = 5;
    o.election_tick = 5;
    fx *f = fx_new(&o);
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fx_run_random(f, 600, false) == 0);
    CHECK(fx_settle(f, SIM_SETTLE_TICKS) == 0);
    raft_id l = fx_leader(f);
    CHECK_MSG(l && fx_applied(f, l) >= 20, "leader %llu applied %llu", (ull)l,
              (ull)(l ? fx_applied(f, l) : 0));
    fx_free(f);
}

/* The production-like modelling must really happen on the seeds' plans:
 * early sends, fsyncs outliving a step and crashes in them, background
 * snapshots adopted, refused (membership moved on) and lost in crashes. */
static void test_production_modelling_exercised(void)
{
    fx_stats sum;
    memset(&sum, 0, sizeof sum);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        sim_plan p = plan_for(seed);
        p.o.slow_fsync = 0.5;
        p.o.snapshot_lag = 10;
        p.o.snapshot_every = 5;
        fx *f = fx_new(&p.o);
        CHECK(f != NULL);
        if (!f)
            return;
        CHECK_MSG(fx_run_random(f, SIM_DEFAULT_STEPS, true) == 0, "seed %llu: %s",
                  (ull)seed, fx_error(f));
        fx_stats st = fx_get_stats(f);
        sum.sent_early += st.sent_early;
        sum.parked += st.parked;
        sum.lost_in_fsync += st.lost_in_fsync;
        sum.snaps_started += st.snaps_started;
        sum.snaps_adopted += st.snaps_adopted;
        sum.snaps_refused += st.snaps_refused;
        sum.snaps_lost += st.snaps_lost;
        sum.refusals += st.refusals;
        sum.transfers += st.transfers;
        sum.transfer_refusals += st.transfer_refusals;
        sum.stale_refusals += st.stale_refusals;
        fx_free(f);
    }
    printf("modelling over 40 seeds: %llu sent early, %llu parked, %llu lost in fsync; "
           "snapshots %llu started, %llu adopted, %llu refused, %llu lost; "
           "%llu forwarded conf changes refused and heard back; %llu leadership transfers, "
           "%llu forwarded proposals refused during one (%llu heard in a later term)\n",
           (ull)sum.sent_early, (ull)sum.parked, (ull)sum.lost_in_fsync,
           (ull)sum.snaps_started, (ull)sum.snaps_adopted, (ull)sum.snaps_refused,
           (ull)sum.snaps_lost, (ull)sum.refusals, (ull)sum.transfers,
           (ull)sum.transfer_refusals, (ull)sum.stale_refusals);
    CHECK(sum.sent_early > 0 && sum.parked > 0 && sum.lost_in_fsync > 0);
    CHECK(sum.snaps_adopted > 0 && sum.snaps_refused > 0 && sum.snaps_lost > 0);
    CHECK(sum.refusals > 0 && sum.transfers > 0 && sum.transfer_refusals > 0);
}

/* Seeds 1-40 of plan_for with force applied to each plan, each run and
 * settled with every check; false (and a failed check) if one fails.
 * *sum gets the runs' stats added up. */
static bool run_forced(void (*force)(fx_options *), fx_stats *sum)
{
    memset(sum, 0, sizeof *sum);
    for (uint64_t seed = 1; seed <= 40; seed++) {
        sim_plan p = plan_for(seed);
        force(&p.o);
        fx *f = fx_new(&p.o);
        CHECK(f != NULL);
        if (!f)
            return false;
        CHECK_MSG(fx_run_random(f, SIM_DEFAULT_STEPS, p.membership) == 0 &&
                      fx_settle(f, 400) == 0,
                  "seed %llu: %s", (ull)seed, fx_error(f));
        fx_stats st = fx_get_stats(f);
        sum->byz_injected += st.byz_injected;
        for (int t = 0; t < 16; t++)
            sum->byz_by_type[t] += st.byz_by_type[t];
        sum->nomem_failed += st.nomem_failed;
        fx_free(f);
    }
    return true;
}

static void force_byzantine(fx_options *o) { o->byzantine = 0.2; }

static void force_nomem(fx_options *o) { o->nomem = 0.02; }

/* The hostile-input nemesis, forced on: thousands of messages of every type
 * from non-members, none obeyed (fx_byzantine.c checks each), and every
 * invariant and liveness kept. */
static void test_byzantine_nemesis_exercised(void)
{
    fx_stats sum;
    if (!run_forced(force_byzantine, &sum))
        return;
    printf("byzantine over 40 seeds: %llu hostile messages from non-members\n",
           (ull)sum.byz_injected);
    CHECK(sum.byz_injected > 5000);
    for (int t = RAFT_MSG_APPEND; t <= RAFT_MSG_TRANSFER; t++)
        CHECK_MSG(sum.byz_by_type[t] > 100, "type %s injected %llu times",
                  raft_msg_type_name(t), (ull)sum.byz_by_type[t]);
}

/* Out of memory inside the core, forced on: allocations fail in every
 * kind of core call, and every invariant and liveness hold (a failed step
 * is a lost message, a failed proposal or read is refused). */
static void test_out_of_memory_exercised(void)
{
    fx_stats sum;
    if (!run_forced(force_nomem, &sum))
        return;
    printf("out of memory over 40 seeds: %llu core allocations failed\n",
           (ull)sum.nomem_failed);
    CHECK(sum.nomem_failed > 1000);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: sim_test [--seed N] [--first N] [--seeds COUNT] [--steps K] [--verbose]\n");
}

int main(int argc, char **argv)
{
    uint64_t seed = 0, first = 1, n_seeds = SIM_DEFAULT_SEEDS;
    int steps = SIM_DEFAULT_STEPS;
    bool verbose = false;
    for (int i = 1; i < argc; i++) {
        bool has_arg = i + 1 < argc;
        if (!strcmp(argv[i], "--seed") && has_arg)
            seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--first") && has_arg)
            first = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seeds") && has_arg)
            n_seeds = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--steps") && has_arg)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--verbose"))
            verbose = true;
        else {
            usage();
            return 2;
        }
    }
    if (steps <= 0 || steps > 10000000 || first == 0 || n_seeds == 0 ||
        first > UINT64_MAX - n_seeds) {
        usage();
        return 2;
    }
    if (seed) {
        if (run_seed(seed, steps, verbose))
            test_cases_passed++;
        else
            test_cases_failed++;
        TEST_MAIN_END();
    }
    RUN(test_checker_state_machine_safety);
    RUN(test_checker_election_safety);
    RUN(test_checker_log_matching);
    RUN(test_checker_liveness_can_fail);
    RUN(test_replay_is_deterministic);
    RUN(test_random_run_commits);
    RUN(test_production_modelling_exercised);
    RUN(test_byzantine_nemesis_exercised);
    RUN(test_out_of_memory_exercised);
    run_seed_groups(first, n_seeds, steps);
    TEST_MAIN_END();
}
