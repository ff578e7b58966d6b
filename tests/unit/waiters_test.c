/* waiters_test: the requests the node loop owes an answer — a pending
 * proposal is found by its sequence number (also among hash-bucket
 * neighbours) and only once, expiry fails exactly the ones past their
 * deadline (proposals and reads) with the status given, and "all" fails
 * every one: each request is answered exactly once. */
#include "../test.h"
#include "server/waiters.h"

#include <stdlib.h>
#include <string.h>

/* Every callback counts into the record its ud points at. */
typedef struct {
    int calls;
    int status;
    bool had_res;
} answer;

static void on_write(void *ud, int status, kv_result *res)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
    a->had_res = res != NULL;
}

static void on_done(void *ud, int status)
{
    answer *a = ud;
    a->calls++;
    a->status = status;
}

static pending *new_pending(uint64_t seq, uint64_t deadline, answer *a, bool write)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    buf_init(&p->entry);
    buf_append(&p->entry, "entry", 5);
    p->seq = seq;
    p->deadline = deadline;
    p->ud = a;
    if (write)
        p->wcb = on_write;
    else
        p->dcb = on_done;
    return p;
}

static read_waiter *add_read(waiters *w, uint64_t deadline, answer *a)
{
    read_waiter *rw = calloc(1, sizeof *rw);
    if (!rw) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    rw->deadline = deadline;
    rw->cb = on_done;
    rw->ud = a;
    rw->next = w->reads;
    w->reads = rw;
    return rw;
}

static size_t count_all(const waiters *w)
{
    size_t n = 0;
    for (const pending *p = w->all; p; p = p->next)
        n++;
    return n;
}

static void test_add_take(void)
{
    waiters *w = calloc(1, sizeof *w);
    answer a[3] = {{0}};
    CHECK(w != NULL);
    for (int i = 0; i < 3; i++)
        waiters_add(w, new_pending(100 + (uint64_t)i, UINT64_MAX, &a[i], true));
    CHECK(count_all(w) == 3);
    CHECK(waiters_take(w, 99) == NULL);
    pending *p = waiters_take(w, 101); /* the middle of the list */
    CHECK(p && p->seq == 101 && p->ud == &a[1]);
    CHECK(waiters_take(w, 101) == NULL); /* only once */
    CHECK(count_all(w) == 2);
    waiters_free_pending(p);
    pending *first = waiters_take(w, 100), *last = waiters_take(w, 102);
    CHECK(first && first->seq == 100 && last && last->seq == 102);
    CHECK(w->all == NULL && count_all(w) == 0);
    waiters_free_pending(first);
    waiters_free_pending(last);
    CHECK(a[0].calls + a[1].calls + a[2].calls == 0); /* taking answers nobody */
    free(w);
}

/* Sequence numbers that share a hash bucket are told apart. */
static void test_take_in_shared_bucket(void)
{
    waiters *w = calloc(1, sizeof *w);
    answer a = {0};
    CHECK(w != NULL);
    uint64_t seqs[] = {5, 5 + PENDING_BUCKETS, 5 + 2 * PENDING_BUCKETS};
    for (int i = 0; i < 3; i++)
        waiters_add(w, new_pending(seqs[i], UINT64_MAX, &a, false));
    CHECK(waiters_take(w, 5 + 3 * PENDING_BUCKETS) == NULL);
    for (int i = 0; i < 3; i++) {
        pending *p = waiters_take(w, seqs[i]);
        CHECK_MSG(p && p->seq == seqs[i], "seq %llu", (unsigned long long)seqs[i]);
        if (p)
            waiters_free_pending(p);
    }
    CHECK(w->all == NULL);
    free(w);
}

static void test_fail_pending_answers_once(void)
{
    answer wa = {0}, da = {0};
    waiters_fail_pending(new_pending(1, 0, &wa, true), NODE_ERR_TIMEOUT);
    CHECK(wa.calls == 1 && wa.status == NODE_ERR_TIMEOUT && !wa.had_res);
    waiters_fail_pending(new_pending(2, 0, &da, false), NODE_ERR_NO_LEADER);
    CHECK(da.calls == 1 && da.status == NODE_ERR_NO_LEADER);
}

static void test_expire_only_past_deadline(void)
{
    waiters *w = calloc(1, sizeof *w);
    answer due = {0}, later = {0}, read_due = {0}, read_later = {0};
    CHECK(w != NULL);
    waiters_add(w, new_pending(1, 1000, &due, true));
    waiters_add(w, new_pending(2, 5000, &later, true));
    waiters_add(w, new_pending(3, 999, &due, false));
    add_read(w, 1000, &read_due);
    add_read(w, 5000, &read_later);
    waiters_expire(w, 1000, false, NODE_ERR_TIMEOUT);
    CHECK(due.calls == 2 && due.status == NODE_ERR_TIMEOUT);
    CHECK(read_due.calls == 1 && read_due.status == NODE_ERR_TIMEOUT);
    CHECK(later.calls == 0 && read_later.calls == 0);
    CHECK(count_all(w) == 1 && w->all->seq == 2);
    CHECK(waiters_take(w, 1) == NULL && waiters_take(w, 3) == NULL);
    CHECK(w->reads && !w->reads->next && w->reads->ud == &read_later);
    waiters_expire(w, 0, true, NODE_ERR_STOPPING); /* all: deadline ignored */
    CHECK(later.calls == 1 && later.status == NODE_ERR_STOPPING);
    CHECK(read_later.calls == 1 && read_later.status == NODE_ERR_STOPPING);
    CHECK(due.calls == 2 && read_due.calls == 1); /* never twice */
    CHECK(w->all == NULL && w->reads == NULL);
    free(w);
}

static void test_expire_empty(void)
{
    waiters *w = calloc(1, sizeof *w);
    CHECK(w != NULL);
    waiters_expire(w, UINT64_MAX, true, NODE_ERR_STOPPING);
    CHECK(w->all == NULL && w->reads == NULL);
    free(w);
}

int main(void)
{
    RUN(test_add_take);
    RUN(test_take_in_shared_bucket);
    RUN(test_fail_pending_answers_once);
    RUN(test_expire_only_past_deadline);
    RUN(test_expire_empty);
    TEST_MAIN_END();
}
