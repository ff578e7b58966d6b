/* inbox_test: the bounded queue into the node loop — events come out in
 * the order they went in, a take waits for a push from another thread
 * (and not past its deadline when nothing comes), a full inbox refuses
 * and leaves the event to the caller, a closed one refuses everything and
 * hands back what was queued, and an event is failed and freed whole. */
#include "../test.h"
#include "server/inbox.h"
#include "util/util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static event *new_event(int kind, uint64_t id)
{
    event *ev = calloc(1, sizeof *ev);
    if (!ev) {
        fprintf(stderr, "FAIL out of memory\n");
        exit(1);
    }
    ev->kind = kind;
    ev->id = id;
    return ev;
}

static size_t free_all(event *evs)
{
    size_t n = 0;
    while (evs) {
        event *next = evs->next;
        event_free(evs);
        evs = next;
        n++;
    }
    return n;
}

static void test_push_take_in_order(void)
{
    inbox q;
    CHECK(inbox_init(&q) == 0);
    for (uint64_t i = 1; i <= 3; i++)
        CHECK(inbox_push(&q, new_event(EV_PROPOSE, i)) == 0);
    event *evs = inbox_take_all(&q, 0); /* deadline passed: no wait */
    uint64_t want = 1;
    for (event *ev = evs; ev; ev = ev->next)
        CHECK(ev->id == want++);
    CHECK(want == 4);
    CHECK(q.count == 0 && !q.head && !q.tail);
    CHECK(free_all(evs) == 3);
    CHECK(inbox_take_all(&q, now_ms()) == NULL); /* empty, deadline now */
    inbox_destroy(&q);
}

static void *push_one(void *arg)
{
    inbox_push(arg, new_event(EV_READ, 42));
    return NULL;
}

/* The loop waits on the condition, not on a timer: a push from another
 * thread ends the wait long before the deadline. */
static void test_take_waits_for_push(void)
{
    inbox q;
    CHECK(inbox_init(&q) == 0);
    pthread_t t;
    uint64_t start = now_ms();
    CHECK(pthread_create(&t, NULL, push_one, &q) == 0);
    event *evs = inbox_take_all(&q, start + 30000);
    pthread_join(t, NULL);
    CHECK(evs && evs->id == 42 && evs->kind == EV_READ && !evs->next);
    CHECK(now_ms() - start < 30000);
    free_all(evs);
    inbox_destroy(&q);
}

static void test_take_returns_at_deadline(void)
{
    inbox q;
    CHECK(inbox_init(&q) == 0);
    uint64_t start = now_ms();
    CHECK(inbox_take_all(&q, start + 20) == NULL);
    CHECK(now_ms() >= start + 20);
    inbox_destroy(&q);
}

static void test_full_refuses(void)
{
    inbox q;
    CHECK(inbox_init(&q) == 0);
    int refused = 0;
    for (uint64_t i = 0; i < INBOX_MAX_EVENTS; i++)
        refused += inbox_push(&q, new_event(EV_MSGS, i)) != 0;
    CHECK(refused == 0 && q.count == INBOX_MAX_EVENTS);
    event *extra = new_event(EV_PROPOSE, 7);
    CHECK(inbox_push(&q, extra) == -1);
    CHECK(extra->next == NULL && extra->id == 7 && q.count == INBOX_MAX_EVENTS);
    CHECK(free_all(inbox_take_all(&q, 0)) == INBOX_MAX_EVENTS);
    CHECK(inbox_push(&q, extra) == 0); /* room again */
    CHECK(free_all(inbox_take_all(&q, 0)) == 1);
    inbox_destroy(&q);
}

static void test_close_hands_back_and_refuses(void)
{
    inbox q;
    CHECK(inbox_init(&q) == 0);
    CHECK(inbox_push(&q, new_event(EV_PROPOSE, 1)) == 0);
    CHECK(inbox_push(&q, new_event(EV_PROPOSE, 2)) == 0);
    event *left = inbox_close(&q);
    CHECK(left && left->id == 1 && left->next && left->next->id == 2);
    CHECK(free_all(left) == 2);
    event *late = new_event(EV_READ, 3);
    CHECK(inbox_push(&q, late) == -1);
    CHECK(q.closed && q.count == 0);
    event_free(late);
    CHECK(inbox_close(&q) == NULL);
    inbox_destroy(&q);
}

static int got_status = -100, got_calls;
static kv_result *got_res = (kv_result *)1;
static void on_write(void *ud, int status, kv_result *res)
{
    got_calls++;
    got_status = status;
    got_res = res;
}
static void on_done(void *ud, int status)
{
    got_calls++;
    got_status = status;
}

static void test_event_fail_calls_its_callback(void)
{
    event *ev = new_event(EV_PROPOSE, 1);
    ev->wcb = on_write;
    got_calls = 0;
    event_fail(ev, NODE_ERR_BUSY);
    CHECK(got_calls == 1 && got_status == NODE_ERR_BUSY && got_res == NULL);
    event_free(ev);
    ev = new_event(EV_READ, 2);
    ev->dcb = on_done;
    got_calls = 0;
    event_fail(ev, NODE_ERR_STOPPING);
    CHECK(got_calls == 1 && got_status == NODE_ERR_STOPPING);
    event_free(ev);
    ev = new_event(EV_MSGS, 3); /* no callback: nothing to call */
    got_calls = 0;
    event_fail(ev, NODE_ERR_STOPPING);
    CHECK(got_calls == 0);
    event_free(ev);
}

/* A received snapshot's staged file goes with its event. */
static void test_event_free_removes_staged_file(void)
{
    char dir[] = "/tmp/inbox_test.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[64];
    snprintf(path, sizeof path, "%s/staged.snap", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f)
        fclose(f);
    event *ev = new_event(EV_SNAP_RECV, 1);
    ev->path = xstrdup(path);
    ev->data = malloc(16);
    ev->url = xstrdup("http://127.0.0.1:1");
    event_free(ev);
    struct stat st;
    CHECK(stat(path, &st) != 0);
    remove(path); /* only there if the check failed */
    CHECK(rmdir(dir) == 0);
}

int main(void)
{
    RUN(test_push_take_in_order);
    RUN(test_take_waits_for_push);
    RUN(test_take_returns_at_deadline);
    RUN(test_full_refuses);
    RUN(test_close_hands_back_and_refuses);
    RUN(test_event_fail_calls_its_callback);
    RUN(test_event_free_removes_staged_file);
    TEST_MAIN_END();
}
