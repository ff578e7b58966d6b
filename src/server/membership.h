/* membership: membership-change requests on the node loop (membership.c). */
#ifndef RAFTKV_MEMBERSHIP_H
#define RAFTKV_MEMBERSHIP_H

#include "server/node_int.h"

/* EV_MEMBER: checks the change against the current configuration, picks
 * an id for an ADD without one, and proposes it as a conf change. */
void node_handle_member(node *n, event *ev);

#endif
