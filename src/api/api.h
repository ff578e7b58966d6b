/* api: the client HTTP API (libmicrohttpd): request parsing, routing, JSON.
 *
 * Owns: the client listener, the routes of docs/API.md, error
 * bodies {"error","reason"}, and turning node/kv results into answers.
 *
 * Must never: block a server thread waiting for Raft (it suspends the
 * connection and is resumed by the node's callback), buffer a body larger
 * than max_request_bytes (413 as soon as it is known), or write anything
 * for a request it rejects.
 */
#ifndef RAFTKV_API_H
#define RAFTKV_API_H

#include "kv/kv.h"
#include "server/node.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *host; /* listen address (NULL: every interface) */
    uint16_t port;
    /* HTTPS when cert_file is set; ca_file asks for client certificates,
     * client_cert_auth requires one (DESIGN: --cert-file...) */
    const char *cert_file, *key_file, *ca_file;
    bool client_cert_auth;
    bool peer_tls;                  /* peer URLs (membership changes) are https:// */
    unsigned max_conns_per_address; /* 0: no limit */
    uint32_t request_read_ms;       /* total time to send a request (slowloris) */
    size_t max_request_bytes;
    unsigned threads; /* libmicrohttpd thread pool size */
    node *node;
    kv *kv;
    /* the node's watch hub (outlives the api); NULL: /watch, the lock and
     * the election answer 503 or cannot wait */
    watch_hub *hub;
} api_config;

typedef struct api api;
api *api_start(const api_config *cfg, char *err, size_t errlen);
void api_stop(api *a);
/* Reads the client port's certificate files again (SIGHUP). 0, or -1 with
 * a message in err (the old ones stay in use). */
int api_reload_tls(api *a, char *err, size_t errlen);
/* The port actually bound (useful when cfg->port was 0: pick a free one). */
uint16_t api_port(const api *a);

/* ---- routing: a pure function, unit-tested ---- */
enum api_route_kind {
    ROUTE_NONE = 0,       /* 404 */
    ROUTE_ROOT_KEY,       /* GET/PUT /{key}: raftexample key */
    ROUTE_ROOT_MEMBER,    /* POST/DELETE /{id}: raftexample membership */
    ROUTE_KV,             /* /kv/{key} */
    ROUTE_TXN,            /* /txn */
    ROUTE_COMPACT,        /* /compact */
    ROUTE_WATCH,          /* /watch/{key} */
    ROUTE_LEASE,          /* /lease, /lease/{id}, /lease/{id}/keepalive */
    ROUTE_MEMBERS,        /* /members */
    ROUTE_MEMBER,         /* /members/{id} */
    ROUTE_MEMBER_PROMOTE, /* /members/{id}/promote */
    ROUTE_STATUS,
    ROUTE_HEALTH,
    ROUTE_METRICS,
    ROUTE_LOCK,           /* POST /lock/{name}, DELETE /lock/{owner key} */
    ROUTE_ELECTION,       /* /election/{name}/{campaign|proclaim|leader|resign} */
    ROUTE_ELECTION_OBSERVE, /* GET /election/{name}/observe */
    ROUTE_MAINT,          /* /maintenance/{alarms,alarms/disarm,hash} (sub says which) */
    ROUTE_V3,             /* POST /v3/{path} (and /v3beta, /v3alpha): etcd's gateway */
    ROUTE_VERSION,        /* GET /version: etcd's */
    ROUTE_AUTH,           /* /auth/... (sub names the shape; key, key2: user, role) */
};

typedef struct {
    int kind;              /* enum api_route_kind */
    const char *allow;     /* methods allowed on this route ("GET, PUT") */
    bool method_ok;        /* the request's method is one of them */
    /* key routes: the percent-decoded key (malloc'd; free with api_route_free) */
    uint8_t *key;
    size_t key_len;
    uint8_t *key2;         /* /auth/users/{user}/roles/{role}: the role */
    size_t key2_len;
    /* member/lease routes: the numeric id; id_ok false if it did not parse */
    uint64_t id;
    bool has_id;           /* the path has an id segment (id_ok: it parsed) */
    bool id_ok;
    const char *sub;       /* trailing sub-resource, e.g. "keepalive" */
} api_route;

/* Routes a request. Returns 0, -1 on a malformed path (bad
 * percent-encoding) or -2 when out of memory. */
int api_route_match(const char *method, const char *path, api_route *out);
void api_route_free(api_route *r);

#endif
