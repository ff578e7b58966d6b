/* config_test: raftkv's command line — every flag lands in its field,
 * the defaults are the README's, --help prints the usage and nothing else,
 * and every bad flag is refused with a message that names it (and leaves
 * nothing allocated). config_parse prints to stderr/stdout: each parse
 * here captures both so the test can read what the user would see. */
#include "../test.h"
#include "server/config.h"
#include "util/util.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    int rc;
    char err[4096]; /* what config_parse wrote to stderr */
    char out[4096]; /* ... and to stdout */
    config c;
} parsed;

/* Points fd at a fresh temp file; returns the saved original. */
static int capture_begin(int fd, FILE **tmp)
{
    *tmp = tmpfile();
    int saved = dup(fd);
    if (!*tmp || saved < 0 || dup2(fileno(*tmp), fd) < 0) {
        perror("capture");
        exit(1);
    }
    return saved;
}

static void capture_end(int fd, int saved, FILE *tmp, char *into, size_t cap)
{
    dup2(saved, fd);
    close(saved);
    rewind(tmp);
    size_t n = fread(into, 1, cap - 1, tmp);
    into[n] = '\0';
    fclose(tmp);
}

/* Parses "raftkv" followed by the NULL-terminated arguments. */
static void parse(parsed *p, const char *first, ...)
{
    char *argv[96];
    int argc = 0;
    va_list ap;
    argv[argc++] = xstrdup("raftkv");
    va_start(ap, first);
    for (const char *a = first; a && argc < 95; a = va_arg(ap, const char *))
        argv[argc++] = xstrdup(a);
    va_end(ap);
    argv[argc] = NULL;
    char *owned[96];
    memcpy(owned, argv, sizeof owned); /* getopt may permute argv */
    FILE *terr, *tout;
    fflush(stdout);
    int serr = capture_begin(2, &terr), sout = capture_begin(1, &tout);
    p->rc = config_parse(argc, argv, &p->c);
    fflush(stdout);
    fflush(stderr);
    capture_end(1, sout, tout, p->out, sizeof p->out);
    capture_end(2, serr, terr, p->err, sizeof p->err);
    for (int i = 0; i < argc; i++)
        free(owned[i]);
}

#define BASE "--id", "1", "--cluster", "http://127.0.0.1:1001", "--port", "2379"

static void test_every_flag(void)
{
    parsed p;
    parse(&p, "--id", "2", "--cluster", "http://127.0.0.1:1001,http://127.0.0.1:1002/,http://h:1003",
          "--port", "8080", "--join", "--data-dir", "/tmp/somewhere", "--snapshot-count", "50",
          "--heartbeat-ms", "20", "--election-ms", "200", "--max-request-bytes", "4096",
          "--log-level", "debug", "--quota-bytes", "1048576", "--corrupt-check-ms", "0", NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(p.err[0] == '\0' && p.out[0] == '\0');
    CHECK(p.c.quota_bytes == 1048576 && p.c.corrupt_check_ms == 0);
    CHECK(p.c.id == 2 && p.c.n_peers == 3 && p.c.port == 8080 && p.c.join);
    CHECK(p.c.peers[0] && strcmp(p.c.peers[0], "http://127.0.0.1:1001") == 0);
    CHECK(p.c.peers[1] && strcmp(p.c.peers[1], "http://127.0.0.1:1002") == 0); /* '/' dropped */
    CHECK(p.c.peers[2] && strcmp(p.c.peers[2], "http://h:1003") == 0);
    CHECK(p.c.data_dir && strcmp(p.c.data_dir, "/tmp/somewhere") == 0);
    CHECK(p.c.snapshot_count == 50 && p.c.heartbeat_ms == 20 && p.c.election_ms == 200);
    CHECK(p.c.max_request_bytes == 4096 && p.c.log_level == LOG_DEBUG);
    /* this node's peer address is its own --cluster entry */
    CHECK(p.c.listen_host && strcmp(p.c.listen_host, "127.0.0.1") == 0 && p.c.listen_port == 1002);
    config_free(&p.c);
    CHECK(p.c.n_peers == 0 && !p.c.data_dir && !p.c.listen_host);
}

static void test_environment(void)
{
    parsed p;
    /* a node configured by its environment alone */
    setenv("RAFTKV_ID", "2", 1);
    setenv("RAFTKV_CLUSTER", "http://127.0.0.1:1001,http://127.0.0.1:1002", 1);
    setenv("RAFTKV_PORT", "8080", 1);
    setenv("RAFTKV_DATA_DIR", "/tmp/envdir", 1);
    setenv("RAFTKV_JOIN", "yes", 1);
    setenv("RAFTKV_CLIENT_CERT_AUTH", "0", 1);
    setenv("RAFTKV_SNAPSHOT_COUNT", "77", 1);
    parse(&p, NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(p.c.id == 2 && p.c.n_peers == 2 && p.c.port == 8080 && p.c.join);
    CHECK(!p.c.client_cert_auth && p.c.snapshot_count == 77);
    CHECK(p.c.data_dir && strcmp(p.c.data_dir, "/tmp/envdir") == 0);
    config_free(&p.c);
    /* a flag wins over its variable; the others still come from the environment */
    parse(&p, "--data-dir", "/tmp/flagdir", "--snapshot-count", "5", NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(p.c.data_dir && strcmp(p.c.data_dir, "/tmp/flagdir") == 0 && p.c.snapshot_count == 5);
    CHECK(p.c.id == 2 && p.c.port == 8080);
    config_free(&p.c);
    /* a bad value names its variable */
    setenv("RAFTKV_JOIN", "maybe", 1);
    parse(&p, NULL);
    CHECK(p.rc == -1 && strstr(p.err, "RAFTKV_JOIN"));
    setenv("RAFTKV_JOIN", "0", 1);
    setenv("RAFTKV_HEARTBEAT_MS", "0", 1);
    parse(&p, NULL);
    CHECK(p.rc == -1 && strstr(p.err, "--heartbeat-ms") && strstr(p.err, "RAFTKV_HEARTBEAT_MS"));
    const char *vars[] = {"RAFTKV_ID", "RAFTKV_CLUSTER", "RAFTKV_PORT", "RAFTKV_DATA_DIR",
                          "RAFTKV_JOIN", "RAFTKV_CLIENT_CERT_AUTH", "RAFTKV_SNAPSHOT_COUNT",
                          "RAFTKV_HEARTBEAT_MS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        unsetenv(vars[i]);
    parse(&p, NULL);
    CHECK(p.rc == -1); /* nothing left to configure it */
}

static void test_defaults(void)
{
    parsed p;
    parse(&p, "--id", "3", "--cluster", "http://a:1,http://b:2,http://c:3", "--port", "9", NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(!p.c.join && p.c.snapshot_count == 100000 && p.c.heartbeat_ms == 100);
    CHECK(p.c.election_ms == 1000 && p.c.max_request_bytes == 1572864);
    CHECK(p.c.log_level == LOG_INFO);
    CHECK(p.c.quota_bytes == 2ull << 30 && p.c.corrupt_check_ms == 300000);
    CHECK(p.c.data_dir && strcmp(p.c.data_dir, "raftkv-3") == 0);
    CHECK(p.c.listen_host && strcmp(p.c.listen_host, "c") == 0 && p.c.listen_port == 3);
    CHECK(p.c.client_host && strcmp(p.c.client_host, "127.0.0.1") == 0);
    CHECK(p.c.cluster_token && strcmp(p.c.cluster_token, "raftkv") == 0);
    CHECK(!p.c.peer_tls && !p.c.cert_file && !p.c.client_cert_auth);
    CHECK(p.c.conns_per_address == 4096 && p.c.request_read_ms == 10000);
    config_free(&p.c);
}

static void expect_refused(parsed *p, const char *want);

static void test_tls_flags(void)
{
    parsed p;
    parse(&p, "--id", "1", "--cluster", "https://a:1,https://b:2", "--port", "9",
          "--client-host", "0.0.0.0", "--initial-cluster-token", "t1", "--cert-file", "c.pem",
          "--key-file", "k.pem", "--trusted-ca-file", "ca.pem", "--client-cert-auth",
          "--peer-cert-file", "pc.pem", "--peer-key-file", "pk.pem", "--peer-trusted-ca-file",
          "pca.pem", "--max-conns-per-address", "0", "--request-read-timeout-ms", "500", NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(p.c.conns_per_address == 0 && p.c.request_read_ms == 500);
    CHECK(p.c.peer_tls && p.c.client_cert_auth);
    CHECK(strcmp(p.c.client_host, "0.0.0.0") == 0 && strcmp(p.c.cluster_token, "t1") == 0);
    CHECK(strcmp(p.c.cert_file, "c.pem") == 0 && strcmp(p.c.key_file, "k.pem") == 0);
    CHECK(strcmp(p.c.trusted_ca_file, "ca.pem") == 0);
    CHECK(strcmp(p.c.peer_cert_file, "pc.pem") == 0 && strcmp(p.c.peer_key_file, "pk.pem") == 0);
    CHECK(strcmp(p.c.peer_trusted_ca_file, "pca.pem") == 0);
    CHECK(strcmp(p.c.listen_host, "a") == 0 && p.c.listen_port == 1);
    config_free(&p.c);
}

/* Half a TLS set would serve plain HTTP where the operator asked for TLS. */
static void test_tls_sets_refused(void)
{
    parsed p;
#define TLS_REFUSED(want, ...)                                                   \
    do {                                                                         \
        parse(&p, "--id", "1", "--port", "9", __VA_ARGS__, NULL);                \
        expect_refused(&p, want);                                                \
    } while (0)
    TLS_REFUSED("--cert-file and --key-file go together", "--cluster", "http://a:1",
                "--cert-file", "c");
    TLS_REFUSED("--client-cert-auth needs --trusted-ca-file", "--cluster", "http://a:1",
                "--cert-file", "c", "--key-file", "k", "--client-cert-auth");
    TLS_REFUSED("--trusted-ca-file needs --cert-file", "--cluster", "http://a:1",
                "--trusted-ca-file", "ca");
    TLS_REFUSED("https:// --cluster URLs need", "--cluster", "https://a:1", "--peer-cert-file",
                "c", "--peer-key-file", "k");
    TLS_REFUSED("need https:// --cluster URLs", "--cluster", "http://a:1", "--peer-cert-file",
                "c", "--peer-key-file", "k", "--peer-trusted-ca-file", "ca");
    TLS_REFUSED("mixes http:// and https://", "--cluster", "http://a:1,https://b:2");
    TLS_REFUSED("--client-host: empty value", "--cluster", "http://a:1", "--client-host", "");
#undef TLS_REFUSED
}

/* getopt_long_only: one dash and --flag=value are the same flags. */
static void test_other_spellings(void)
{
    parsed p;
    parse(&p, "-id", "1", "--cluster=http://127.0.0.1:1001", "-port=7", "-join", NULL);
    CHECK_MSG(p.rc == 0, "rc %d: %s", p.rc, p.err);
    CHECK(p.c.id == 1 && p.c.port == 7 && p.c.join && p.c.n_peers == 1);
    config_free(&p.c);
}

static void test_help(void)
{
    parsed p;
    parse(&p, "--help", NULL);
    CHECK(p.rc == 1);
    CHECK(strstr(p.out, "usage: raftkv") != NULL && strstr(p.out, "--snapshot-count") != NULL);
    CHECK(p.err[0] == '\0');
    CHECK(p.c.n_peers == 0 && !p.c.data_dir);
}

/* One refused command line: rc -1, a message naming what is wrong, and
 * a config left empty (nothing to free). */
static void expect_refused(parsed *p, const char *want)
{
    CHECK_MSG(p->rc == -1, "rc %d, wanted a refusal mentioning \"%s\"", p->rc, want);
    CHECK_MSG(strstr(p->err, "raftkv: ") && strstr(p->err, want),
              "wanted \"%s\" in the message, got \"%s\"", want, p->err);
    CHECK(p->c.n_peers == 0 && !p->c.data_dir && !p->c.listen_host);
    if (p->rc == 0)
        config_free(&p->c);
}

#define REFUSED(want, ...)                                                   \
    do {                                                                     \
        parsed p_;                                                           \
        parse(&p_, __VA_ARGS__, NULL);                                       \
        expect_refused(&p_, want);                                           \
    } while (0)

static void test_bad_numbers_refused(void)
{
    REFUSED("--id: expected a number from 1 to 32", BASE, "--id", "0");
    REFUSED("--id: expected a number from 1 to 32", BASE, "--id", "33");
    REFUSED("--id: expected a number", BASE, "--id", "one");
    REFUSED("--id: expected a number", BASE, "--id", "-1");
    REFUSED("--id: expected a number", BASE, "--id", "");
    REFUSED("--id: expected a number", BASE, "--id", "1x");
    REFUSED("--port: expected a number from 1 to 65535", BASE, "--port", "0");
    REFUSED("--port: expected a number", BASE, "--port", "65536");
    REFUSED("--port: expected a number", BASE, "--port", "http");
    REFUSED("--snapshot-count: expected a number from 1", BASE, "--snapshot-count", "0");
    REFUSED("--snapshot-count: expected a number", BASE, "--snapshot-count", "4294967296");
    REFUSED("--heartbeat-ms: expected a number from 1 to 60000", BASE, "--heartbeat-ms", "0");
    REFUSED("--heartbeat-ms: expected a number", BASE, "--heartbeat-ms", "60001");
    REFUSED("--election-ms: expected a number from 2 to 600000", BASE, "--election-ms", "1");
    REFUSED("--election-ms: expected a number", BASE, "--election-ms", "600001");
    REFUSED("--max-request-bytes: expected a number from 1", BASE, "--max-request-bytes", "0");
    REFUSED("--max-request-bytes: expected a number", BASE, "--max-request-bytes", "1073741825");
    /* an entry over the peer body cap could never reach a follower */
    REFUSED("--max-request-bytes: expected a number from 1 to 33554432", BASE, "--max-request-bytes",
            "33554433");
    REFUSED("--quota-bytes: expected a number from 1", BASE, "--quota-bytes", "0");
    REFUSED("--corrupt-check-ms: expected a number", BASE, "--corrupt-check-ms", "-5");
    REFUSED("--log-level: expected debug, info, warn or error", BASE, "--log-level", "loud");
}

static void test_bad_cluster_refused(void)
{
    const char *bad[] = {"ftp://a:1", "http://a", "http://a:0", "http://a:65536", "http://:5",
                         "http://a:5/x", "127.0.0.1:5", "http://a:port"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char want[128];
        snprintf(want, sizeof want, "--cluster: \"%s\" is not http(s)://host:port", bad[i]);
        REFUSED(want, "--id", "1", "--port", "2", "--cluster", bad[i]);
    }
    REFUSED("--cluster: \"nope\" is not http(s)://host:port", "--id", "1", "--port", "2",
            "--cluster", "http://a:1,nope");
    REFUSED("--cluster: no peer URL given", "--id", "1", "--port", "2", "--cluster", ",");
    char many[40 * 33];
    many[0] = '\0';
    for (int i = 0; i < 33; i++) /* one more than CONFIG_MAX_PEERS */
        snprintf(many + strlen(many), sizeof many - strlen(many), "%shttp://h:%d",
                 i ? "," : "", 1000 + i);
    REFUSED("--cluster: at most 32 peers", "--id", "1", "--port", "2", "--cluster", many);
}

static void test_bad_usage_refused(void)
{
    REFUSED("unknown or incomplete option \"--bogus\"", BASE, "--bogus");
    REFUSED("unknown or incomplete option \"--port\"", "--id", "1", "--cluster",
            "http://a:1", "--port");
    REFUSED("unexpected argument \"extra\"", BASE, "extra");
    REFUSED("--id, --cluster and --port are required", "--cluster", "http://a:1", "--port", "2");
    REFUSED("--id, --cluster and --port are required", "--id", "1", "--port", "2");
    REFUSED("--id, --cluster and --port are required", "--id", "1", "--cluster", "http://a:1");
    REFUSED("--id 3: --cluster lists only 2 peers", "--id", "3", "--cluster",
            "http://a:1,http://b:2", "--port", "2");
    REFUSED("--election-ms must be at least twice --heartbeat-ms", BASE, "--heartbeat-ms",
            "100", "--election-ms", "199");
}

static void test_split_url(void)
{
    char host[16];
    uint16_t port = 0;
    CHECK(config_split_url("http://10.0.0.1:2380/", host, sizeof host, &port) == 0);
    CHECK(strcmp(host, "10.0.0.1") == 0 && port == 2380);
    CHECK(config_split_url("http://[::1]:80", host, sizeof host, &port) == 0);
    CHECK(strcmp(host, "[::1]") == 0 && port == 80);
    CHECK(config_split_url("http://a-very-long-host-name:1", host, sizeof host, &port) < 0);
    CHECK(config_split_url("https://a:1", host, sizeof host, &port) == 0);
    CHECK(strcmp(host, "a") == 0 && port == 1);
    CHECK(config_split_url("ftp://a:1", host, sizeof host, &port) < 0);
}

int main(void)
{
    RUN(test_every_flag);
    RUN(test_defaults);
    RUN(test_environment);
    RUN(test_tls_flags);
    RUN(test_tls_sets_refused);
    RUN(test_other_spellings);
    RUN(test_help);
    RUN(test_bad_numbers_refused);
    RUN(test_bad_cluster_refused);
    RUN(test_bad_usage_refused);
    RUN(test_split_url);
    TEST_MAIN_END();
}
