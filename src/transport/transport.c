/* transport: the public face of the module. Owns a private copy of the
 * configuration (the strings too, so callers may free theirs) and starts
 * and stops the three parts: the sender, the peer listener and the answers
 * riding the listener's responses (a message for a peer whose request
 * waits for one goes there, the rest to the sender).
 * Must never do work of its own: it only routes calls to those parts. */
#include "transport/transport_int.h"

#include <stdlib.h>
#include <string.h>

struct transport {
    transport_config cfg;
    char *listen_host;
    char *data_dir;
    transport_sender *sender;
    transport_server *server;
    transport_answers *answers;
};

static void transport_free(transport *t)
{
    transport_answers_free(t->answers);
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
    t->answers = transport_answers_new(cfg->cluster_id);
    if (!t->answers) {
        snprintf(err, errlen, "out of memory");
        transport_free(t);
        return NULL;
    }
    t->sender = transport_sender_start(&t->cfg);
    if (!t->sender) {
        snprintf(err, errlen, "cannot start the transport sender thread");
        transport_free(t);
        return NULL;
    }
    t->server = transport_server_start(&t->cfg, t->answers, err, errlen);
    if (!t->server) {
        transport_sender_stop(t->sender);
        transport_free(t);
        return NULL;
    }
    t->answers->in_loop = transport_server_poll_fd(t->server) >= 0;
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
    raft_msg stack[64], *rest = n <= 64 ? stack : malloc(n * sizeof *rest);
    if (!rest) { /* short of memory: the sender alone still works */
        transport_sender_send(t->sender, msgs, n);
        return;
    }
    size_t left = transport_answers_take(t->answers, msgs, n, rest);
    if (left)
        transport_sender_send(t->sender, rest, left);
    if (rest != stack)
        free(rest);
}

void transport_answer_handled(transport *t, transport_answer *answer)
{
    transport_answers_handled(t->answers, answer);
}

void transport_flush_answers(transport *t)
{
    if (!t)
        return;
    if (transport_answers_flush(t->answers) > 0)
        transport_server_run(t->server); /* the resumed answers leave now */
}

void transport_poll(transport *t, int wake_fd, int timeout_ms)
{
    int server_ms = transport_server_timeout_ms(t->server);
    if (server_ms >= 0 && server_ms < timeout_ms)
        timeout_ms = server_ms;
    transport_sender_poll(t->sender, wake_fd, transport_server_poll_fd(t->server), timeout_ms);
    transport_server_run(t->server);
}

bool transport_broken(const transport *t) { return t && transport_server_broken(t->server); }

uint64_t transport_requests(const transport *t) { return transport_sender_requests(t->sender); }

void transport_send_snapshot(transport *t, const raft_msg *msg, const char *path,
                             uint64_t size, uint32_t crc)
{
    transport_sender_snapshot(t->sender, msg, path, size, crc);
}
