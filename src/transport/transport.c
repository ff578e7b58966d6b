/* transport: the public face of the module. Owns a private copy of the
 * configuration (the strings too, so callers may free theirs) and starts
 * and stops the two halves: the sender thread and the peer listener.
 * Must never do work of its own: it only routes calls to those halves. */
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

struct transport {
    transport_config cfg;
    char *listen_host;
    char *data_dir;
    transport_sender *sender;
    transport_server *server;
};

static void transport_free(transport *t)
{
    free(t->listen_host);
    free(t->data_dir);
    free(t);
}

transport *transport_start(const transport_config *cfg, char *err, size_t errlen)
{
    transport *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->cfg = *cfg;
    transport_curl_set_source(cfg->listen_host);
    t->listen_host = xstrdup(cfg->listen_host ? cfg->listen_host : "");
    t->data_dir = xstrdup(cfg->data_dir ? cfg->data_dir : ".");
    if (!t->listen_host || !t->data_dir) {
        snprintf(err, errlen, "out of memory");
        transport_free(t);
        return NULL;
    }
    t->cfg.listen_host = t->listen_host;
    t->cfg.data_dir = t->data_dir;
    t->sender = transport_sender_start(&t->cfg);
    if (!t->sender) {
        snprintf(err, errlen, "cannot start the transport sender thread");
        transport_free(t);
        return NULL;
    }
    t->server = transport_server_start(&t->cfg, err, errlen);
    if (!t->server) {
        transport_sender_stop(t->sender);
        transport_free(t);
        return NULL;
    }
    return t;
}

void transport_stop(transport *t)
{
    if (!t)
        return;
    /* listener first: nothing new arrives while the sender winds down */
    transport_server_stop(t->server);
    transport_sender_stop(t->sender);
    transport_free(t);
}

uint16_t transport_listen_port(const transport *t) { return transport_server_port(t->server); }

int transport_set_peer(transport *t, raft_id id, const char *url)
{
    if (!url || id == 0)
        return -1;
    return transport_sender_set_peer(t->sender, id, url);
}

void transport_remove_peer(transport *t, raft_id id) { transport_sender_remove_peer(t->sender, id); }

void transport_send(transport *t, const raft_msg *msgs, size_t n)
{
    transport_sender_send(t->sender, msgs, n);
}

void transport_send_snapshot(transport *t, const raft_msg *msg, const char *path,
                             uint64_t size, uint32_t crc)
{
    transport_sender_snapshot(t->sender, msg, path, size, crc);
}
