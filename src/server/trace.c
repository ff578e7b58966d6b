/* trace: the loop's time per phase (trace.h). Empty unless RAFTKV_TRACE. */
#include "server/trace.h"

#ifdef RAFTKV_TRACE
#include "util/util.h"

#include <string.h>
#include <time.h>

#define TRACE_EVERY_US 2000000u

static uint64_t sum_us[TRACE_PHASES];
static uint64_t turns, persisted, applied, started_us;

uint64_t trace_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void trace_add(enum trace_phase ph, uint64_t since_us) { sum_us[ph] += trace_now_us() - since_us; }

void trace_entries(uint64_t p, uint64_t a)
{
    persisted += p;
    applied += a;
}

void trace_turn(void)
{
    uint64_t now = trace_now_us();
    turns++;
    if (!started_us)
        started_us = now;
    if (now - started_us < TRACE_EVERY_US)
        return;
    log_warn("trace: %.1f s, %llu turns, ms in wait %llu events %llu persist %llu apply %llu "
             "ready %llu flush %llu; entries persisted %llu applied %llu",
             (double)(now - started_us) / 1e6, (unsigned long long)turns,
             (unsigned long long)sum_us[TRACE_WAIT] / 1000,
             (unsigned long long)sum_us[TRACE_EVENTS] / 1000,
             (unsigned long long)sum_us[TRACE_PERSIST] / 1000,
             (unsigned long long)sum_us[TRACE_APPLY] / 1000,
             (unsigned long long)sum_us[TRACE_READY] / 1000,
             (unsigned long long)sum_us[TRACE_FLUSH] / 1000, (unsigned long long)persisted,
             (unsigned long long)applied);
    memset(sum_us, 0, sizeof sum_us);
    turns = persisted = applied = 0;
    started_us = now;
}
#endif
