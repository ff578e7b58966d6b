/* node_err: the reason text of each node status (enum node_status), the
 * one clients see as "reason". Its own file so that test doubles of the
 * node (tests/unit/fake_node.c) share it instead of copying it. Must never
 * return NULL or depend on anything else of the node. */
#include "server/node.h"

const char *node_strerror(int status)
{
    switch (status) {
    case NODE_OK: return "ok";
    case NODE_ERR_NO_LEADER: return "no_leader";
    case NODE_ERR_TIMEOUT: return "timeout";
    case NODE_ERR_STOPPING: return "stopping";
    case NODE_ERR_BUSY: return "busy";
    case NODE_ERR_CONF_PENDING: return "membership_change_in_progress";
    case NODE_ERR_INVALID: return "invalid_argument";
    case NODE_ERR_NOT_FOUND: return "member_not_found";
    case NODE_ERR_NOT_READY: return "learner_not_ready";
    case NODE_ERR_URL_EXISTS: return "peer_url_exists";
    default: return "internal";
    }
}
