/* route: maps (method, raw path) to a route. Pure: no I/O, no MHD, no
 * state. Must never treat a path under a native prefix as a raftexample
 * root key, nor read past the path's terminating NUL. */
#include "api/api_int.h"

#include <stdlib.h>
#include <string.h>

/* How the rest of the path after a native prefix is read. */
enum shape { SHAPE_EXACT, SHAPE_KEY, SHAPE_MEMBERS, SHAPE_LEASE, SHAPE_ELECTION, SHAPE_MAINT,
             SHAPE_V3, SHAPE_AUTH };

typedef struct {
    const char *name;
    int kind;
    const char *allow;
    enum shape shape;
} prefix;

static const prefix prefixes[] = {
    {"kv", ROUTE_KV, "GET, PUT, DELETE", SHAPE_KEY},
    {"txn", ROUTE_TXN, "POST", SHAPE_EXACT},
    {"compact", ROUTE_COMPACT, "POST", SHAPE_EXACT},
    {"watch", ROUTE_WATCH, "GET", SHAPE_KEY},
    {"lease", ROUTE_LEASE, "GET, POST", SHAPE_LEASE},
    {"members", ROUTE_MEMBERS, "GET, POST", SHAPE_MEMBERS},
    {"status", ROUTE_STATUS, "GET", SHAPE_EXACT},
    {"health", ROUTE_HEALTH, "GET", SHAPE_EXACT},
    {"metrics", ROUTE_METRICS, "GET", SHAPE_EXACT},
    {"lock", ROUTE_LOCK, "POST, DELETE", SHAPE_KEY},
    {"election", ROUTE_ELECTION, NULL, SHAPE_ELECTION},
    {"maintenance", ROUTE_MAINT, NULL, SHAPE_MAINT},
    {"auth", ROUTE_AUTH, NULL, SHAPE_AUTH},
    {"v3", ROUTE_V3, "POST", SHAPE_V3},
    {"v3beta", ROUTE_V3, "POST", SHAPE_V3},
    {"v3alpha", ROUTE_V3, "POST", SHAPE_V3},
    {"version", ROUTE_VERSION, "GET", SHAPE_EXACT},
};

#define ROOT_ALLOW "GET, PUT, POST, DELETE"

static const prefix *find_prefix(const char *seg, size_t len)
{
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (strlen(prefixes[i].name) == len && memcmp(prefixes[i].name, seg, len) == 0)
            return &prefixes[i];
    }
    return NULL;
}

/* Exact token match in a ", "-separated list, so "PU" never matches "PUT". */
static bool method_in(const char *method, const char *allow)
{
    size_t m = strlen(method);
    const char *p = allow;
    while (*p) {
        size_t t = strcspn(p, ",");
        if (t == m && memcmp(p, method, m) == 0)
            return true;
        p += t;
        while (*p == ',' || *p == ' ')
            p++;
    }
    return false;
}

/* 0, -1 for a bad escape, -2 out of memory (api_pct_decode's codes). */
static int set_key(api_route *out, const char *s, size_t n)
{
    int rc = api_pct_decode(s, n, &out->key, &out->key_len);
    if (rc != 0) {
        out->key = NULL;
        out->key_len = 0;
    }
    return rc;
}

/* "/{id}" followed by nothing or "/{sub}"; returns false if the shape is
 * wrong (a 404), leaving id_ok to say whether the id parsed. */
static bool id_and_sub(const char *rest, api_route *out, const char **sub)
{
    const char *id = rest + 1;
    size_t n = strcspn(id, "/");
    out->has_id = true;
    out->id_ok = api_parse_id(id, n, API_MAX_ID, &out->id);
    *sub = id[n] ? id + n + 1 : NULL;
    return !*sub || strchr(*sub, '/') == NULL;
}


/* A path under a native prefix that names nothing: 404, never a root key. */
static int route_none(api_route *out)
{
    out->kind = ROUTE_NONE;
    out->allow = NULL;
    return 0;
}

static int route_members(const char *rest, api_route *out)
{
    if (!*rest)
        return 0; /* /members */
    const char *sub;
    if (!id_and_sub(rest, out, &sub))
        return route_none(out);
    if (!sub) {
        out->kind = ROUTE_MEMBER;
        out->allow = "DELETE";
    } else if (strcmp(sub, "promote") == 0) {
        out->kind = ROUTE_MEMBER_PROMOTE;
        out->allow = "POST";
        out->sub = "promote";
    } else {
        return route_none(out);
    }
    return 0;
}

static int route_lease(const char *rest, api_route *out)
{
    if (!*rest)
        return 0; /* /lease: list or grant */
    const char *sub;
    if (!id_and_sub(rest, out, &sub))
        return route_none(out);
    if (!sub) {
        out->allow = "GET, DELETE";
    } else if (strcmp(sub, "keepalive") == 0) {
        out->allow = "POST";
        out->sub = "keepalive";
    } else {
        return route_none(out);
    }
    return 0;
}

/* "/{name}/{verb}": the name (percent-decoded, may hold '/') is the key;
 * the last segment is the verb, which decides the method (and, for
 * observe, the route: its handler is apart from the others'). */
static int route_election(const char *rest, api_route *out)
{
    static const struct {
        const char *verb, *allow;
    } verbs[] = {{"campaign", "POST"}, {"proclaim", "POST"}, {"resign", "POST"},
                 {"leader", "GET"},    {"observe", "GET"}};
    const char *slash = *rest ? strrchr(rest + 1, '/') : NULL;
    for (size_t i = 0; slash && i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strcmp(slash + 1, verbs[i].verb) == 0) {
            out->sub = verbs[i].verb;
            out->allow = verbs[i].allow;
            if (strcmp(out->sub, "observe") == 0)
                out->kind = ROUTE_ELECTION_OBSERVE;
            return set_key(out, rest + 1, (size_t)(slash - (rest + 1)));
        }
    }
    out->kind = ROUTE_NONE;
    return 0;
}

static int route_maint(const char *rest, api_route *out)
{
    static const struct {
        const char *path, *sub, *allow;
    } routes[] = {{"/alarms", "alarms", "GET"},
                  {"/alarms/disarm", "disarm", "POST"},
                  {"/hash", "hash", "GET"},
                  {"/snapshot", "snapshot", "GET"},
                  {"/defrag", "defrag", "POST"},
                  {"/move-leader", "move-leader", "POST"}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(rest, routes[i].path) == 0) {
            out->sub = routes[i].sub;
            out->allow = routes[i].allow;
            return 0;
        }
    }
    return route_none(out);
}

/* /auth/{verb} and /auth/{users|roles}/{name}[/{what}[/{role}]]: sub
 * names the shape, key the name, key2 the role (both percent-decoded;
 * names hold no '/'). */
static int route_auth(const char *rest, api_route *out)
{
    static const struct {
        const char *top, *what, *sub, *allow;
        int names; /* path segments after top that are names */
    } shapes[] = {
        {"authenticate", NULL, "authenticate", "POST", 0},
        {"enable", NULL, "enable", "POST", 0},
        {"disable", NULL, "disable", "POST", 0},
        {"users", NULL, "users", "GET, POST", 0},
        {"users", NULL, "user", "GET, DELETE", 1},
        {"users", "password", "user_password", "POST", 1},
        {"users", "roles", "user_roles", "POST", 1},
        {"users", "roles", "user_role", "DELETE", 2},
        {"roles", NULL, "roles", "GET, POST", 0},
        {"roles", NULL, "role", "GET, DELETE", 1},
        {"roles", "permissions", "role_perms", "POST, DELETE", 1},
    };
    const char *seg[5];
    size_t len[5], n = 0;
    for (const char *p = rest; *p == '/' && n < 5; n++) {
        seg[n] = p + 1;
        len[n] = strcspn(seg[n], "/");
        p = seg[n] + len[n];
        if (n == 4 && *p)
            return route_none(out);
    }
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        size_t want = 1 + (size_t)shapes[i].names + (shapes[i].what != NULL);
        if (n != want || strlen(shapes[i].top) != len[0] ||
            memcmp(seg[0], shapes[i].top, len[0]) != 0 ||
            (shapes[i].what && (strlen(shapes[i].what) != len[2] ||
                                memcmp(seg[2], shapes[i].what, len[2]) != 0)))
            continue;
        out->sub = shapes[i].sub;
        out->allow = shapes[i].allow;
        int rc = shapes[i].names >= 1 ? set_key(out, seg[1], len[1]) : 0;
        if (rc == 0 && shapes[i].names == 2)
            rc = api_pct_decode(seg[3], len[3], &out->key2, &out->key2_len);
        return rc;
    }
    return route_none(out);
}

static int route_native(const prefix *p, const char *rest, api_route *out)
{
    out->kind = p->kind;
    out->allow = p->allow;
    switch (p->shape) {
    case SHAPE_KEY:
        /* "/kv" and "/kv/" both name the empty key: the handler refuses it */
        return *rest ? set_key(out, rest + 1, strlen(rest + 1)) : 0;
    case SHAPE_MEMBERS:
        return route_members(rest, out);
    case SHAPE_LEASE:
        return route_lease(rest, out);
    case SHAPE_ELECTION:
        return route_election(rest, out);
    case SHAPE_MAINT:
        return route_maint(rest, out);
    case SHAPE_AUTH:
        return route_auth(rest, out);
    case SHAPE_V3:
        /* the gateway's own table says which paths exist */
        if (!*rest || !(out->sub = api_v3_path(rest + 1)))
            return route_none(out);
        return 0;
    case SHAPE_EXACT:
        break;
    }
    if (*rest) {
        out->kind = ROUTE_NONE;
        out->allow = NULL;
    }
    return 0;
}

/* raftexample: GET/PUT name a key, POST/DELETE a member id. Any other
 * method still routes here so that the 405 lists all four. */
static int route_root(const char *method, const char *path, api_route *out)
{
    out->allow = ROOT_ALLOW;
    if (strcmp(method, "POST") == 0 || strcmp(method, "DELETE") == 0) {
        out->kind = ROUTE_ROOT_MEMBER;
        int rc = set_key(out, path, strlen(path));
        if (rc < 0)
            return rc;
        out->id_ok = api_parse_id((const char *)out->key, out->key_len, API_MAX_ID, &out->id);
        return 0;
    }
    out->kind = ROUTE_ROOT_KEY;
    return set_key(out, path, strlen(path));
}

int api_route_match(const char *method, const char *path, api_route *out)
{
    memset(out, 0, sizeof *out);
    out->kind = ROUTE_NONE;
    if (!method || !path || path[0] != '/')
        return 0;
    const char *seg = path + 1;
    size_t seglen = strcspn(seg, "/");
    const prefix *p = find_prefix(seg, seglen);
    int rc = p ? route_native(p, seg + seglen, out) : route_root(method, seg, out);
    if (rc == 0 && out->allow)
        out->method_ok = method_in(method, out->allow);
    return rc;
}

void api_route_free(api_route *r)
{
    free(r->key);
    free(r->key2);
    r->key = r->key2 = NULL;
    r->key_len = r->key2_len = 0;
}
