/* trace: where the node loop's time goes — waiting, stepping events,
 * persisting, applying, the rest of the Ready — summed per phase and
 * logged once every 2 s with the entries persisted and applied, so that
 * a write's timeline can be read off a load (docs/PERFORMANCE.md).
 * Compiled out unless built with -DRAFTKV_TRACE (./configure
 * CPPFLAGS=-DRAFTKV_TRACE): a measuring tool, never part of a release
 * build, and it must never change what the loop does. Only the node loop
 * calls it. */
#ifndef RAFTKV_TRACE_H
#define RAFTKV_TRACE_H

#include <stdint.h>

enum trace_phase { TRACE_WAIT, TRACE_EVENTS, TRACE_PERSIST, TRACE_APPLY, TRACE_READY, TRACE_FLUSH,
                   TRACE_PHASES };

#ifdef RAFTKV_TRACE
uint64_t trace_now_us(void);
void trace_add(enum trace_phase ph, uint64_t since_us);
void trace_entries(uint64_t persisted, uint64_t applied);
/* End of a loop turn: logs the sums every 2 s, then starts again. */
void trace_turn(void);
#define TRACE_MARK(v) uint64_t v = trace_now_us()
#define TRACE_ADD(ph, v) trace_add(ph, v)
#define TRACE_ENTRIES(p, a) trace_entries(p, a)
#define TRACE_TURN() trace_turn()
#else
#define TRACE_MARK(v) ((void)0)
#define TRACE_ADD(ph, v) ((void)0)
#define TRACE_ENTRIES(p, a) ((void)0)
#define TRACE_TURN() ((void)0)
#endif

#endif
