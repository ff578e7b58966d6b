/* alarms: this node's part in the NOSPACE and CORRUPT alarms (alarms.c).
 * The alarms themselves are replicated kv state (kv.h, kv_alarm.c). */
#ifndef RAFTKV_ALARMS_H
#define RAFTKV_ALARMS_H

#include "server/node_int.h"

/* Each tick (node thread): raises NOSPACE when kv.db passed --quota-bytes
 * and CORRUPT when kv found a row failing its checksum, by proposing
 * ALARM_ACTIVATE for this member until the alarm is applied. */
void node_alarm_tick(node *n, uint64_t now);
/* What this node finds wrong now, as alarm bits (KV_ALARM_BIT), whether
 * or not the alarm is already raised. */
uint32_t node_alarm_conditions(node *n);

#endif
