/* route_test: api_route_match as a pure function — every route and method,
 * 405 Allow lists, root keys with percent-encoding, member ids, and native
 * prefixes never being keys. */
#include "api/api.h"
#include "../test.h"

#include <string.h>

static api_route rt;

static int match(const char *method, const char *path)
{
    api_route_free(&rt);
    return api_route_match(method, path, &rt);
}

static bool key_is(const char *want, size_t len)
{
    return rt.key_len == len && rt.key && memcmp(rt.key, want, len) == 0;
}

static void test_root_key(void)
{
    CHECK(match("PUT", "/my-key") == 0);
    CHECK(rt.kind == ROUTE_ROOT_KEY && rt.method_ok);
    CHECK(key_is("my-key", 6));
    CHECK(match("GET", "/a/b/c") == 0);
    CHECK(rt.kind == ROUTE_ROOT_KEY && key_is("a/b/c", 5));
    CHECK(match("GET", "/") == 0);
    CHECK(rt.kind == ROUTE_ROOT_KEY && rt.key_len == 0);
}

static void test_root_percent(void)
{
    CHECK(match("GET", "/a%20b%2Fc") == 0);
    CHECK(key_is("a b/c", 5));
    CHECK(match("PUT", "/%00x%fF") == 0);
    CHECK(key_is("\0x\xff", 3));
    CHECK(match("GET", "/bad%2") == -1);
    CHECK(match("GET", "/bad%") == -1);
    CHECK(match("GET", "/bad%zz") == -1);
    CHECK(match("GET", "/bad%g0x") == -1);
}

static void test_root_member(void)
{
    CHECK(match("POST", "/4") == 0);
    CHECK(rt.kind == ROUTE_ROOT_MEMBER && rt.method_ok && rt.id_ok && rt.id == 4);
    CHECK(match("DELETE", "/3") == 0);
    CHECK(rt.kind == ROUTE_ROOT_MEMBER && rt.id_ok && rt.id == 3);
    CHECK(match("POST", "/abc") == 0);
    CHECK(rt.kind == ROUTE_ROOT_MEMBER && !rt.id_ok);
    CHECK(match("POST", "/0") == 0 && !rt.id_ok);
    CHECK(match("POST", "/-1") == 0 && !rt.id_ok);
    CHECK(match("POST", "/9007199254740992") == 0 && rt.id_ok);  /* 2^53 */
    CHECK(match("POST", "/9007199254740993") == 0 && !rt.id_ok); /* 2^53+1 */
    CHECK(match("POST", "/99999999999999999999") == 0 && !rt.id_ok);
    CHECK(match("DELETE", "/") == 0 && !rt.id_ok);
}

static void test_root_405(void)
{
    CHECK(match("PATCH", "/k") == 0);
    CHECK(rt.kind == ROUTE_ROOT_KEY && !rt.method_ok);
    CHECK(rt.allow && strcmp(rt.allow, "GET, PUT, POST, DELETE") == 0);
    CHECK(match("PU", "/k") == 0 && !rt.method_ok);
}

static void test_kv(void)
{
    CHECK(match("GET", "/kv/foo%2Fbar") == 0);
    CHECK(rt.kind == ROUTE_KV && rt.method_ok && key_is("foo/bar", 7));
    CHECK(match("PUT", "/kv/a/b") == 0 && key_is("a/b", 3));
    CHECK(match("DELETE", "/kv/x") == 0 && rt.method_ok);
    CHECK(match("POST", "/kv/x") == 0 && rt.kind == ROUTE_KV && !rt.method_ok);
    CHECK(strcmp(rt.allow, "GET, PUT, DELETE") == 0);
    CHECK(match("GET", "/kv") == 0 && rt.kind == ROUTE_KV && rt.key_len == 0);
    CHECK(match("GET", "/kv/") == 0 && rt.kind == ROUTE_KV && rt.key_len == 0);
    CHECK(match("GET", "/kv/%zz") == -1);
    CHECK(match("GET", "/kvx") == 0 && rt.kind == ROUTE_ROOT_KEY && key_is("kvx", 3));
}

static void test_exact_routes(void)
{
    static const struct {
        const char *path;
        int kind;
        const char *method, *allow;
    } cases[] = {
        {"/txn", ROUTE_TXN, "POST", "POST"},
        {"/compact", ROUTE_COMPACT, "POST", "POST"},
        {"/status", ROUTE_STATUS, "GET", "GET"},
        {"/health", ROUTE_HEALTH, "GET", "GET"},
        {"/metrics", ROUTE_METRICS, "GET", "GET"},
        {"/members", ROUTE_MEMBERS, "GET", "GET, POST"},
        {"/lease", ROUTE_LEASE, "POST", "GET, POST"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK(match(cases[i].method, cases[i].path) == 0);
        CHECK_MSG(rt.kind == cases[i].kind && rt.method_ok, "%s", cases[i].path);
        CHECK(match("PATCH", cases[i].path) == 0);
        CHECK_MSG(rt.kind == cases[i].kind && !rt.method_ok && strcmp(rt.allow, cases[i].allow) == 0,
                  "%s", cases[i].path);
    }
    CHECK(match("GET", "/txn") == 0 && rt.kind == ROUTE_TXN && !rt.method_ok);
    CHECK(match("GET", "/status/x") == 0 && rt.kind == ROUTE_NONE && !rt.allow);
    CHECK(match("POST", "/txn/1") == 0 && rt.kind == ROUTE_NONE);
}

static void test_prefix_not_key(void)
{
    CHECK(match("PUT", "/members") == 0);
    CHECK(rt.kind == ROUTE_MEMBERS && !rt.method_ok && rt.key == NULL);
    CHECK(match("PUT", "/status") == 0 && rt.kind == ROUTE_STATUS && !rt.method_ok);
    CHECK(match("DELETE", "/health") == 0 && rt.kind == ROUTE_HEALTH && !rt.method_ok);
    CHECK(match("POST", "/metrics") == 0 && rt.kind == ROUTE_METRICS && !rt.method_ok);
    CHECK(match("PUT", "/watch/k") == 0 && rt.kind == ROUTE_WATCH && !rt.method_ok);
}

static void test_members(void)
{
    CHECK(match("DELETE", "/members/7") == 0);
    CHECK(rt.kind == ROUTE_MEMBER && rt.method_ok && rt.id_ok && rt.id == 7);
    CHECK(match("GET", "/members/7") == 0 && !rt.method_ok && strcmp(rt.allow, "DELETE") == 0);
    CHECK(match("DELETE", "/members/x7") == 0 && rt.kind == ROUTE_MEMBER && !rt.id_ok);
    CHECK(match("POST", "/members/7/promote") == 0);
    CHECK(rt.kind == ROUTE_MEMBER_PROMOTE && rt.method_ok && rt.id == 7);
    CHECK(match("POST", "/members/7/demote") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("POST", "/members/7/promote/x") == 0 && rt.kind == ROUTE_NONE);
}

static void test_maintenance(void)
{
    CHECK(match("GET", "/maintenance/alarms") == 0);
    CHECK(rt.kind == ROUTE_MAINT && rt.method_ok && strcmp(rt.sub, "alarms") == 0);
    CHECK(match("POST", "/maintenance/alarms/disarm") == 0);
    CHECK(rt.kind == ROUTE_MAINT && rt.method_ok && strcmp(rt.sub, "disarm") == 0);
    CHECK(match("GET", "/maintenance/alarms/disarm") == 0 && !rt.method_ok &&
          strcmp(rt.allow, "POST") == 0);
    CHECK(match("GET", "/maintenance/hash") == 0);
    CHECK(rt.kind == ROUTE_MAINT && rt.method_ok && strcmp(rt.sub, "hash") == 0);
    CHECK(match("GET", "/maintenance") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "/maintenance/defrag/x") == 0 && rt.kind == ROUTE_NONE);
    /* wave 2's other native prefixes are never keys, even before they exist */
    const char *reserved[] = {"/auth/nothing", "/auth", "/v3beta/x", "/v3alpha"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        CHECK(match("PUT", reserved[i]) == 0);
        CHECK_MSG(rt.kind == ROUTE_NONE && rt.key == NULL, "%s", reserved[i]);
    }
}

static void test_auth(void)
{
    CHECK(match("POST", "/auth/authenticate") == 0);
    CHECK(rt.kind == ROUTE_AUTH && rt.method_ok && strcmp(rt.sub, "authenticate") == 0);
    CHECK(match("GET", "/auth/users") == 0 && rt.kind == ROUTE_AUTH && rt.method_ok &&
          strcmp(rt.sub, "users") == 0 && rt.key == NULL);
    CHECK(match("DELETE", "/auth/users/al%69ce") == 0 && rt.method_ok &&
          strcmp(rt.sub, "user") == 0 && key_is("alice", 5));
    CHECK(match("POST", "/auth/users/alice/password") == 0 && rt.method_ok &&
          strcmp(rt.sub, "user_password") == 0 && key_is("alice", 5));
    CHECK(match("DELETE", "/auth/users/alice/roles/app") == 0 && rt.method_ok &&
          strcmp(rt.sub, "user_role") == 0 && key_is("alice", 5) && rt.key2_len == 3 &&
          memcmp(rt.key2, "app", 3) == 0);
    CHECK(match("POST", "/auth/users/alice/roles/app") == 0 && !rt.method_ok &&
          strcmp(rt.allow, "DELETE") == 0);
    CHECK(match("POST", "/auth/roles/app/permissions") == 0 && rt.method_ok &&
          strcmp(rt.sub, "role_perms") == 0 && key_is("app", 3));
    CHECK(match("GET", "/auth/roles/app/permissions/x") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "/auth/users/a/b/c/d/e/f") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "/auth/enable") == 0 && rt.kind == ROUTE_AUTH && !rt.method_ok);
}

static void test_gateway(void)
{
    CHECK(match("POST", "/v3/kv/range") == 0);
    CHECK(rt.kind == ROUTE_V3 && rt.method_ok && rt.key == NULL);
    CHECK(match("POST", "/v3beta/lease/grant") == 0 && rt.kind == ROUTE_V3 && rt.method_ok);
    CHECK(match("GET", "/v3/kv/range") == 0 && rt.kind == ROUTE_V3 && !rt.method_ok &&
          strcmp(rt.allow, "POST") == 0);
    CHECK(match("PUT", "/version") == 0 && rt.kind == ROUTE_VERSION && !rt.method_ok);
    CHECK(match("GET", "/version") == 0 && rt.kind == ROUTE_VERSION && rt.method_ok);
}

static void test_lock_election(void)
{
    CHECK(match("POST", "/lock/my%2Flock") == 0);
    CHECK(rt.kind == ROUTE_LOCK && rt.method_ok && key_is("my/lock", 7));
    CHECK(match("DELETE", "/lock/jobs/1f") == 0);
    CHECK(rt.kind == ROUTE_LOCK && rt.method_ok && key_is("jobs/1f", 7));
    CHECK(match("GET", "/lock/x") == 0 && rt.kind == ROUTE_LOCK && !rt.method_ok);
    CHECK(match("POST", "/election/svc/campaign") == 0);
    CHECK(rt.kind == ROUTE_ELECTION && rt.method_ok && key_is("svc", 3) &&
          strcmp(rt.sub, "campaign") == 0);
    CHECK(match("GET", "/election/a/b/leader") == 0);
    CHECK(rt.kind == ROUTE_ELECTION && rt.method_ok && key_is("a/b", 3) &&
          strcmp(rt.sub, "leader") == 0);
    CHECK(match("GET", "/election/svc/campaign") == 0 && !rt.method_ok &&
          strcmp(rt.allow, "POST") == 0);
    CHECK(match("GET", "/election/svc/observe") == 0 && rt.method_ok &&
          rt.kind == ROUTE_ELECTION_OBSERVE && key_is("svc", 3));
    CHECK(match("POST", "/election/svc/observe") == 0 && rt.kind == ROUTE_ELECTION_OBSERVE &&
          !rt.method_ok && strcmp(rt.allow, "GET") == 0);
    CHECK(match("POST", "/election/svc/resign") == 0 && rt.method_ok);
    CHECK(match("POST", "/election/svc/proclaim") == 0 && rt.method_ok);
    CHECK(match("POST", "/election/svc/vote") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("POST", "/election/campaign") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("POST", "/election") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "/election//leader") == 0 && rt.kind == ROUTE_ELECTION && rt.key_len == 0);
}

static void test_watch_lease(void)
{
    CHECK(match("GET", "/watch/a%2Fb") == 0);
    CHECK(rt.kind == ROUTE_WATCH && rt.method_ok && key_is("a/b", 3));
    CHECK(match("GET", "/lease/12") == 0);
    CHECK(rt.kind == ROUTE_LEASE && rt.method_ok && rt.id_ok && rt.id == 12 && !rt.sub);
    CHECK(match("DELETE", "/lease/12") == 0 && rt.method_ok);
    CHECK(match("POST", "/lease/12") == 0 && !rt.method_ok);
    CHECK(match("POST", "/lease/12/keepalive") == 0);
    CHECK(rt.kind == ROUTE_LEASE && rt.method_ok && rt.sub && strcmp(rt.sub, "keepalive") == 0);
    CHECK(match("GET", "/lease/12/keepalive") == 0 && !rt.method_ok && strcmp(rt.allow, "POST") == 0);
    CHECK(match("POST", "/lease/12/other") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "/lease/abc") == 0 && rt.kind == ROUTE_LEASE && !rt.id_ok);
}

static void test_garbage(void)
{
    CHECK(match("GET", "") == 0 && rt.kind == ROUTE_NONE);
    CHECK(match("GET", "nokey") == 0 && rt.kind == ROUTE_NONE);
    CHECK(api_route_match(NULL, "/x", &rt) == 0 && rt.kind == ROUTE_NONE);
    CHECK(api_route_match("GET", NULL, &rt) == 0 && rt.kind == ROUTE_NONE);
}

int main(void)
{
    RUN(test_root_key);
    RUN(test_root_percent);
    RUN(test_root_member);
    RUN(test_root_405);
    RUN(test_kv);
    RUN(test_exact_routes);
    RUN(test_prefix_not_key);
    RUN(test_members);
    RUN(test_maintenance);
    RUN(test_gateway);
    RUN(test_auth);
    RUN(test_watch_lease);
    RUN(test_lock_election);
    RUN(test_garbage);
    api_route_free(&rt);
    TEST_MAIN_END();
}
