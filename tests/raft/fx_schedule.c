/* fx_schedule: the random schedule of fx_run_random (ticks, deliveries,
 * proposals, reads, partitions, crashes, restarts, membership changes, with
 * calm windows) and fx_settle's liveness check.
 *
 * Must never: use any randomness but f->rng, or skip the full check after
 * a step.
 */
#include "fx_int.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* A random existing node: want_up 1 = running, 0 = crashed, -1 = any. */
static fx_node *pick_node(fx *f, int want_up)
{
    raft_id ids[FX_MAX_NODES];
    size_t k = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && (want_up < 0 || n->up == (want_up == 1)))
            ids[k++] = id;
    }
    return k ? &f->nodes[ids[fx_rng_below(f, k)]] : NULL;
}

static int count_nodes(fx *f, bool up_only)
{
    int c = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        c += n && (!up_only || n->up);
    }
    return c;
}

static void trace_step(fx *f, const char *fmt, ...)
{
    if (!f->trace)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(f->trace, "step %llu%s: ", (ull)f->step, f->calm ? " (calm)" : "");
    vfprintf(f->trace, fmt, ap);
    va_end(ap);
    fputc('\n', f->trace);
}

static void rand_tick(fx *f)
{
    fx_node *n = pick_node(f, 1);
    if (!n)
        return;
    trace_step(f, "tick %llu (%s term %llu commit %llu applied %llu)", (ull)n->id,
               raft_role_name(raft_role_get(n->r)), (ull)raft_term_get(n->r),
               (ull)raft_commit_index(n->r), (ull)n->applied);
    fx_node_tick(f, n);
}

static void rand_propose(fx *f)
{
    fx_node *n = pick_node(f, 1);
    char buf[32];
    if (!n)
        return;
    snprintf(buf, sizeof buf, "v%llu", (ull)f->step);
    int rc = fx_propose(f, n->id, buf);
    trace_step(f, "propose %s on %llu -> %d", buf, (ull)n->id, rc);
}

static void rand_read(fx *f)
{
    fx_node *n = pick_node(f, 1);
    if (!n)
        return;
    uint64_t ctx = ++n->next_ctx;
    int rc = fx_read_index(f, n->id, ctx);
    trace_step(f, "read_index ctx %llu on %llu -> %d", (ull)ctx, (ull)n->id, rc);
}

/* Faults aimed at the leader half of the time: that is where elections,
 * log repair and lost commits happen. */
static fx_node *pick_victim(fx *f)
{
    raft_id l = fx_leader(f);
    return l && fx_rng_below(f, 2) ? &f->nodes[l] : pick_node(f, 1);
}

static void rand_partition(fx *f)
{
    raft_id a[FX_MAX_NODES];
    size_t k = 0;
    fx_node *v = pick_victim(f);
    if (v && fx_rng_below(f, 2)) {
        a[k++] = v->id; /* the victim alone or with one other node */
        fx_node *o = pick_node(f, -1);
        if (o && o != v && fx_rng_below(f, 2))
            a[k++] = o->id;
    } else {
        for (raft_id id = 1; id <= FX_MAX_NODES; id++)
            if (fx_node_get(f, id) && fx_rng_below(f, 2))
                a[k++] = id;
    }
    fx_heal(f);
    fx_partition(f, a, k);
    trace_step(f, "partition: %zu node(s) apart, first %llu", k, (ull)(k ? a[0] : 0));
}

/* A node in the middle of an fsync, if any: crashing it then is what
 * loses entries that already left (half of the crashes pick one). */
static fx_node *pick_parked(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && n->up && n->parked)
            return n;
    }
    return NULL;
}

static void rand_crash(fx *f)
{
    int total = count_nodes(f, false), down = total - count_nodes(f, true);
    if ((down + 1) * 2 >= total)
        return; /* keep a majority running */
    fx_node *n = pick_parked(f);
    if (!n || fx_rng_below(f, 2))
        n = pick_victim(f);
    if (!n)
        return;
    trace_step(f, "crash %llu", (ull)n->id);
    fx_node_stop(f, n);
}

static void rand_restart(fx *f)
{
    fx_node *n = pick_node(f, 0);
    if (!n)
        return;
    trace_step(f, "restart %llu (disk: term %llu, snapshot %llu, log to %llu)", (ull)n->id,
               (ull)n->hs.term, (ull)n->snap.index, (ull)fx_disk_last(n));
    fx_node_start(f, n);
}

static void rand_cut(fx *f)
{
    fx_node *a = pick_node(f, -1), *b = pick_node(f, -1);
    if (!a || !b || a == b)
        return;
    trace_step(f, "cut %llu->%llu", (ull)a->id, (ull)b->id);
    fx_cut(f, a->id, b->id);
}

/* A node to add as learner: a fresh one, as raftkv does: it never gives a
 * removed member's id to a new one (the node refuses, see the server's
 * membership check), so a removed node with its old disk and its old view
 * of the membership never comes back. A node that exists but never learnt
 * any membership (its add was refused) may be proposed again. */
static bool may_join(fx *f, const raft_conf *c, raft_id id)
{
    if (raft_conf_has(c, id))
        return false;
    fx_node *n = fx_node_get(f, id);
    if (!n)
        return true;
    const raft_conf *known = n->up ? raft_conf_get(n->r) : NULL;
    return known && n->snap.index == 0 && known->n_voters + known->n_learners == 0;
}

static raft_id pick_joiner(fx *f, const raft_conf *c)
{
    raft_id ids[FX_MAX_NODES];
    size_t k = 0;
    for (raft_id id = 1; id <= FX_MAX_NODES; id++)
        if (may_join(f, c, id))
            ids[k++] = id;
    return k ? ids[fx_rng_below(f, k)] : 0;
}

static void rand_membership(fx *f)
{
    raft_id lid = fx_leader(f);
    if (!lid)
        return;
    raft_conf c = *raft_conf_get(f->nodes[lid].r);
    uint8_t op = 0;
    raft_id target = 0;
    switch (fx_rng_below(f, 3)) {
    case 0:
        if (c.n_learners) {
            op = RAFT_CONF_PROMOTE;
            target = c.learners[fx_rng_below(f, c.n_learners)];
        }
        break;
    case 1:
        if (c.n_voters > 3) {
            op = RAFT_CONF_REMOVE;
            target = c.voters[fx_rng_below(f, c.n_voters)];
        } else if (c.n_learners) {
            op = RAFT_CONF_REMOVE;
            target = c.learners[fx_rng_below(f, c.n_learners)];
        }
        break;
    default:
        target = pick_joiner(f, &c);
        if (target && !fx_node_get(f, target) && fx_add_node(f, target))
            target = 0;
        op = RAFT_CONF_ADD_LEARNER;
        break;
    }
    if (!target)
        return;
    /* a third through any node up, as a client may ask a follower: the
     * change is forwarded, and a refusal comes back to it */
    fx_node *via = fx_rng_below(f, 3) == 0 ? pick_node(f, 1) : NULL;
    raft_id id = via ? via->id : lid;
    int rc = fx_propose_conf(f, id, op, target);
    trace_step(f, "conf change op %u node %llu via %llu (leader %llu) -> %d", op, (ull)target,
               (ull)id, (ull)lid, rc);
}

/* A leadership transfer (move-leader, or a leader removing itself) to a
 * random voter, asked of the leader or, a third of the time, of any node
 * up (a follower forwards it). The target may be down, cut off or behind:
 * the transfer then fails after an election timeout, and the proposals
 * forwarded meanwhile come back refused. */
static void rand_transfer(fx *f)
{
    raft_id lid = fx_leader(f);
    fx_node *via = lid == 0 || fx_rng_below(f, 3) == 0 ? pick_node(f, 1) : &f->nodes[lid];
    if (!via || !lid)
        return;
    const raft_conf *c = raft_conf_get(f->nodes[lid].r);
    if (c->n_voters == 0)
        return;
    raft_id to = c->voters[fx_rng_below(f, c->n_voters)];
    fx_node_unpark(f, via);
    fx_core_enter(f);
    int rc = raft_transfer_leader(via->r, to);
    fx_core_leave();
    fx_node_process(f, via);
    f->stats.transfers++;
    trace_step(f, "transfer leadership to %llu via %llu (leader %llu) -> %d", (ull)to,
               (ull)via->id, (ull)lid, rc);
}

/* The embedding's short timer for an untold commit (defer_commit_notice):
 * it fires at any point between steps. */
static void rand_send_commit(fx *f)
{
    fx_node *n = fx_node_get(f, fx_leader(f));
    if (!n || !n->up || !raft_commit_untold(n->r))
        return;
    trace_step(f, "send commit %llu from %llu", (ull)raft_commit_index(n->r), (ull)n->id);
    fx_node_unpark(f, n);
    fx_core_enter(f);
    raft_send_commit(n->r);
    fx_core_leave();
    fx_node_process(f, n);
}

static void rand_deliver(fx *f)
{
    trace_step(f, "deliver due (%zu queued)", f->n_q);
    fx_net_deliver_due(f, false);
    if (f->o.defer_commit_notice && fx_rng_chance(f, 0.5))
        rand_send_commit(f);
}

/* One random step. Every 200 steps the last 60 are calm (no new faults, no
 * drops, network healed) so that commits happen between storms. */
static void random_step(fx *f, bool membership)
{
    f->calm = f->step % 200 >= 140;
    if (f->calm)
        fx_heal(f);
    if (f->o.byzantine > 0 && fx_rng_chance(f, f->o.byzantine))
        fx_byzantine_inject(f);
    uint64_t r = fx_rng_below(f, 100);
    if (r < 45)
        rand_tick(f);
    else if (r < 73)
        rand_deliver(f);
    else if (r < 83)
        rand_propose(f);
    else if (r < 87)
        rand_read(f);
    else if (f->calm && r < 93)
        rand_restart(f);
    else if (r == 99)
        rand_transfer(f);
    else if (f->calm)
        membership ? rand_membership(f) : rand_tick(f);
    else if (r < 89)
        rand_partition(f);
    else if (r < 91) {
        trace_step(f, "heal");
        fx_heal(f);
    } else if (r < 93)
        rand_crash(f);
    else if (r < 95)
        rand_restart(f);
    else if (r < 96)
        rand_cut(f);
    else
        membership ? rand_membership(f) : rand_tick(f);
}

/* A parked leader's fsync finishes, at some step, if nothing made it
 * finish sooner (an input to the node: it is handled after the fsync). */
static void rand_fsyncs(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES && !f->failed; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && n->parked && fx_rng_below(f, 3) == 0) {
            trace_step(f, "fsync of %llu finishes", (ull)id);
            fx_node_unpark(f, n);
        }
    }
}

static void unpark_all(fx *f)
{
    for (raft_id id = 1; id <= FX_MAX_NODES && !f->failed; id++)
        fx_node_unpark(f, fx_node_get(f, id));
}

int fx_run_random(fx *f, int steps, bool membership)
{
    f->faults = true;
    for (int i = 0; i < steps && !f->failed; i++) {
        f->step++;
        rand_fsyncs(f);
        random_step(f, membership);
        fx_check(f); /* so the run stops at the first violation */
    }
    unpark_all(f);
    fx_check(f);
    f->faults = false;
    f->calm = false;
    return f->failed ? -1 : 0;
}

static bool node_applied_marker(const fx_node *n, const fx_blob *marker)
{
    for (raft_index i = n->applied; i > n->snap.index; i--)
        if (n->sm[i - 1].b == marker)
            return true;
    /* under a snapshot taken after it was applied */
    for (raft_index i = n->snap.index; i > 0; i--)
        if (n->snap_sm[i - 1].b == marker)
            return true;
    return false;
}

/* Stops running nodes outside the leader's conf: raftkv stops a removed
 * node, and a removed node that never learnt it could disrupt forever. */
static void stop_non_members(fx *f, const raft_conf *c)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && n->up && !raft_conf_has(c, id)) {
            trace_step(f, "settle: stop non-member %llu", (ull)id);
            fx_node_stop(f, n);
        }
    }
}

/* The first running member that has not applied the marker, or 0. */
static raft_id marker_missing(fx *f, const raft_conf *c, const fx_blob *marker)
{
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && n->up && raft_conf_has(c, id) && !node_applied_marker(n, marker))
            return id;
    }
    return 0;
}

int fx_settle(fx *f, int max_ticks)
{
    if (f->failed)
        return -1;
    f->faults = false;
    fx_heal(f);
    for (raft_id id = 1; id <= FX_MAX_NODES; id++) {
        fx_node *n = fx_node_get(f, id);
        if (n && !n->up)
            fx_node_start(f, n);
    }
    char text[48];
    snprintf(text, sizeof text, "settle-%llu", (ull)f->step);
    const fx_blob *marker = fx_blob_intern(f, RAFT_ENTRY_NORMAL, (const uint8_t *)text,
                                        (uint32_t)strlen(text));
    raft_id proposed_to = 0, missing = 0;
    raft_term proposed_term = 0;
    bool pruned = false;
    for (int t = 0; t < max_ticks && !f->failed && marker; t++) {
        raft_id lid = fx_leader(f);
        fx_node *l = lid ? &f->nodes[lid] : NULL;
        /* proposed again to each new leader, and, as raftkv retries an
         * unproposed request every tick, after a refusal (a transfer) */
        if (l && (lid != proposed_to || raft_term_get(l->r) != proposed_term)) {
            int rc = fx_propose(f, lid, text);
            trace_step(f, "settle: propose %s on leader %llu -> %d", text, (ull)lid, rc);
            proposed_to = rc == 0 ? lid : 0;
            proposed_term = raft_term_get(l->r);
        }
        if (l && node_applied_marker(l, marker)) {
            raft_conf c = *raft_conf_get(l->r);
            if (!pruned) {
                stop_non_members(f, &c);
                pruned = true;
            }
            missing = marker_missing(f, &c, marker);
            if (!missing)
                return fx_check(f);
        }
        fx_tick_all(f);
        fx_deliver(f, 100);
    }
    if (!f->failed)
        fx_fail(f, "liveness: %s within %d calm ticks (leader %llu, node %llu lacks %s)",
                missing ? "marker not applied everywhere" : "no leader committed a marker",
                max_ticks, (ull)fx_leader(f), (ull)missing, text);
    return -1;
}
