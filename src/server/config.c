/* config: parses raftkv's command line and its RAFTKV_<FLAG> environment
 * variables (README.md, Command line). Every error
 * names the flag; nothing is started here. */
#include "server/config.h"
#include "transport/transport.h"

#include "util/util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: raftkv --id N --cluster URL[,URL...] --port PORT [--join] [options]\n"
    "\n"
    "  --id N                 this node's 1-based index into --cluster (its Raft ID)\n"
    "  --cluster URLS         comma-separated peer URLs, e.g.\n"
    "                         http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379\n"
    "                         (https:// URLs: mutual TLS between peers, see --peer-*)\n"
    "  --port PORT            client HTTP port (the peer port is this node's --cluster entry)\n"
    "  --client-host HOST     address the client port listens on (default 127.0.0.1;\n"
    "                         0.0.0.0 or :: for every interface)\n"
    "  --initial-cluster-token T  mixed into the id of a new cluster (default raftkv)\n"
    "  --join                 join an existing cluster instead of bootstrapping one\n"
    "  --data-dir DIR         where the Raft log, snapshots and data live (default raftkv-<id>)\n"
    "  --snapshot-count N     applied entries between snapshots (default 100000)\n"
    "  --heartbeat-ms MS      leader heartbeat interval (default 100)\n"
    "  --election-ms MS       base election timeout (default 1000)\n"
    "  --max-request-bytes N  largest client request body (default 1572864, at most 33554432)\n"
    "  --log-level LEVEL      debug, info, warn or error (default info)\n"
    "  --quota-bytes N        kv.db size that raises the NOSPACE alarm (default 2147483648)\n"
    "  --corrupt-check-ms MS  leader compares the members' hashes this often (default\n"
    "                         300000; 0: only at start)\n"
    "  --max-conns-per-address N  client connections one address may hold (default\n"
    "                         4096, at most half of what ulimit -n allows; 0: no limit)\n"
    "  --request-read-timeout-ms MS  total time a client may take to send one request,\n"
    "                         headers and body (default 10000)\n"
    "  --cert-file FILE       client port certificate (PEM): the client port is HTTPS only\n"
    "  --key-file FILE        its private key (PEM)\n"
    "  --trusted-ca-file FILE CA (PEM) that signs client certificates\n"
    "  --client-cert-auth     require a client certificate signed by --trusted-ca-file\n"
    "  --peer-cert-file FILE  this node's peer certificate (PEM), for https:// --cluster URLs\n"
    "  --peer-key-file FILE   its private key (PEM)\n"
    "  --peer-trusted-ca-file FILE  CA (PEM) every peer certificate must be signed by\n"
    "                         (certificates are read again on SIGHUP)\n"
    "  --help                 print this help\n"
    "\n"
    "Backups: raftkv snapshot save|status|restore ... (raftkv snapshot --help).\n"
    "\n"
    "Every flag may also be set in the environment as RAFTKV_<FLAG>, upper case with\n"
    "dashes as underscores (RAFTKV_DATA_DIR=/var/lib/raftkv, RAFTKV_JOIN=1); a flag\n"
    "on the command line wins over its variable.\n"
    "\n"
    "exit status: 0 stopped by SIGTERM/SIGINT or removed from the cluster;\n"
    "  1 could not start (data dir refused, port taken, no peer answered);\n"
    "  2 bad command line; 3 a write or fsync of the data dir failed;\n"
    "  4 an internal error applying a committed entry; 5 the log lost entries\n"
    "  it had acknowledged (rolled-back disk); 6 out of memory or a bug.\n";

static int parse_u64(const char *flag, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr, "raftkv: %s: expected a number from %llu to %llu, got \"%s\"\n",
                flag, (unsigned long long)min, (unsigned long long)max, s);
        return -1;
    }
    *out = v;
    return 0;
}

int config_split_url(const char *url, char *host, size_t hostcap, uint16_t *port)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncmp(p, "https://", 8) == 0)
        p += 8;
    else
        return -1;
    const char *colon = strrchr(p, ':');
    if (!colon || colon == p || (size_t)(colon - p) >= hostcap)
        return -1;
    memcpy(host, p, (size_t)(colon - p));
    host[colon - p] = '\0';
    char *end;
    errno = 0;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (errno || end == colon + 1 || v == 0 || v > 65535 || (*end && strcmp(end, "/") != 0))
        return -1;
    *port = (uint16_t)v;
    return 0;
}

static int parse_cluster(const char *list, config *c)
{
    char *copy = xstrdup(list);
    if (!copy)
        return -1;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char host[256];
        uint16_t port;
        if (c->n_peers == CONFIG_MAX_PEERS) {
            fprintf(stderr, "raftkv: --cluster: at most %d peers\n", CONFIG_MAX_PEERS);
            goto fail;
        }
        if (config_split_url(tok, host, sizeof host, &port) < 0) {
            fprintf(stderr, "raftkv: --cluster: \"%s\" is not http(s)://host:port\n", tok);
            goto fail;
        }
        bool tls = strncmp(tok, "https://", 8) == 0;
        if (c->n_peers > 0 && tls != c->peer_tls) {
            fprintf(stderr, "raftkv: --cluster: mixes http:// and https:// URLs\n");
            goto fail;
        }
        c->peer_tls = tls;
        size_t n = strlen(tok);
        if (tok[n - 1] == '/')
            tok[n - 1] = '\0';
        if (!(c->peers[c->n_peers++] = xstrdup(tok)))
            goto fail;
    }
    free(copy);
    if (c->n_peers == 0) {
        fprintf(stderr, "raftkv: --cluster: no peer URL given\n");
        return -1;
    }
    return 0;
fail:
    free(copy);
    return -1;
}

static void set_defaults(config *c)
{
    memset(c, 0, sizeof *c);
    c->snapshot_count = 100000;
    c->heartbeat_ms = 100;
    c->election_ms = 1000;
    c->max_request_bytes = 1572864;
    c->log_level = LOG_INFO;
    c->quota_bytes = 2ull << 30;
    c->corrupt_check_ms = 300000;
    c->conns_per_address = 4096;
    c->request_read_ms = 10000;
}

/* Defaults that are strings, set after parsing so a flag never leaks one. */
static int default_string(char **field, const char *value)
{
    if (*field)
        return 0;
    return (*field = xstrdup(value)) ? 0 : -1;
}

static int tls_refused(const char *why)
{
    fprintf(stderr, "raftkv: %s\n", why);
    return -1;
}

/* TLS flags come in sets: a half-configured listener would silently serve
 * plain HTTP, so every incomplete set is an error. */
static int check_tls(const config *c)
{
    if (!c->cert_file != !c->key_file)
        return tls_refused("--cert-file and --key-file go together");
    if (c->trusted_ca_file && !c->cert_file)
        return tls_refused("--trusted-ca-file needs --cert-file and --key-file");
    if (c->client_cert_auth && !c->trusted_ca_file)
        return tls_refused("--client-cert-auth needs --trusted-ca-file");
    bool any_peer = c->peer_cert_file || c->peer_key_file || c->peer_trusted_ca_file;
    bool all_peer = c->peer_cert_file && c->peer_key_file && c->peer_trusted_ca_file;
    if (c->peer_tls && !all_peer)
        return tls_refused("https:// --cluster URLs need --peer-cert-file, --peer-key-file "
                           "and --peer-trusted-ca-file");
    if (any_peer && !c->peer_tls)
        return tls_refused("--peer-cert-file, --peer-key-file and --peer-trusted-ca-file "
                           "need https:// --cluster URLs");
    return 0;
}

static int check_required(config *c, bool have_port)
{
    if (c->id == 0 || c->n_peers == 0 || !have_port) {
        fprintf(stderr, "raftkv: --id, --cluster and --port are required (see --help)\n");
        return -1;
    }
    if (c->id > c->n_peers) {
        fprintf(stderr, "raftkv: --id %llu: --cluster lists only %zu peers\n",
                (unsigned long long)c->id, c->n_peers);
        return -1;
    }
    if (c->election_ms < 2 * c->heartbeat_ms) {
        fprintf(stderr, "raftkv: --election-ms must be at least twice --heartbeat-ms\n");
        return -1;
    }
    char host[256];
    if (config_split_url(c->peers[c->id - 1], host, sizeof host, &c->listen_port) < 0 ||
        !(c->listen_host = xstrdup(host)))
        return -1;
    if (check_tls(c) < 0 || default_string(&c->client_host, "127.0.0.1") < 0 ||
        default_string(&c->cluster_token, "raftkv") < 0)
        return -1;
    if (!c->data_dir) {
        char dir[64];
        snprintf(dir, sizeof dir, "raftkv-%llu", (unsigned long long)c->id);
        if (!(c->data_dir = xstrdup(dir)))
            return -1;
    }
    return 0;
}

enum { OPT_ID = 1, OPT_CLUSTER, OPT_PORT, OPT_JOIN, OPT_DATA_DIR, OPT_SNAP, OPT_HB,
       OPT_ELECTION, OPT_MAXREQ, OPT_LOG, OPT_QUOTA, OPT_CORRUPT, OPT_CLIENT_HOST, OPT_TOKEN,
       OPT_CERT, OPT_KEY, OPT_CA, OPT_CLIENT_CERT_AUTH, OPT_PEER_CERT, OPT_PEER_KEY, OPT_PEER_CA,
       OPT_CONNS_PER_ADDR, OPT_READ_TIMEOUT, OPT_HELP };

/* A string flag given twice keeps the last value, as getopt users expect. */
static int set_string(char **field, const char *flag, const char *arg)
{
    if (!*arg) {
        fprintf(stderr, "raftkv: %s: empty value\n", flag);
        return -1;
    }
    free(*field);
    return (*field = xstrdup(arg)) ? 0 : -1;
}

static int apply_tls_option(config *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_CERT: return set_string(&c->cert_file, "--cert-file", arg);
    case OPT_KEY: return set_string(&c->key_file, "--key-file", arg);
    case OPT_CA: return set_string(&c->trusted_ca_file, "--trusted-ca-file", arg);
    case OPT_CLIENT_CERT_AUTH: c->client_cert_auth = true; return 0;
    case OPT_PEER_CERT: return set_string(&c->peer_cert_file, "--peer-cert-file", arg);
    case OPT_PEER_KEY: return set_string(&c->peer_key_file, "--peer-key-file", arg);
    case OPT_PEER_CA: return set_string(&c->peer_trusted_ca_file, "--peer-trusted-ca-file", arg);
    default: return -1;
    }
}

static int apply_option(config *c, int opt, const char *arg, bool *have_port)
{
    uint64_t v;
    enum log_level lvl;
    switch (opt) {
    case OPT_ID: return parse_u64("--id", arg, 1, CONFIG_MAX_PEERS, &c->id);
    case OPT_CLUSTER: return parse_cluster(arg, c);
    case OPT_PORT:
        if (parse_u64("--port", arg, 1, 65535, &v) < 0)
            return -1;
        c->port = (uint16_t)v;
        *have_port = true;
        return 0;
    case OPT_JOIN: c->join = true; return 0;
    case OPT_DATA_DIR: return set_string(&c->data_dir, "--data-dir", arg);
    case OPT_CLIENT_HOST: return set_string(&c->client_host, "--client-host", arg);
    case OPT_TOKEN: return set_string(&c->cluster_token, "--initial-cluster-token", arg);
    case OPT_SNAP: return parse_u64("--snapshot-count", arg, 1, UINT32_MAX, &c->snapshot_count);
    case OPT_HB:
        if (parse_u64("--heartbeat-ms", arg, 1, 60000, &v) < 0)
            return -1;
        c->heartbeat_ms = (uint32_t)v;
        return 0;
    case OPT_ELECTION:
        if (parse_u64("--election-ms", arg, 2, 600000, &v) < 0)
            return -1;
        c->election_ms = (uint32_t)v;
        return 0;
    case OPT_MAXREQ: /* a larger entry could not cross the peer transport */
        return parse_u64("--max-request-bytes", arg, 1, TRANSPORT_MAX_REQUEST_BYTES, &c->max_request_bytes);
    case OPT_CONNS_PER_ADDR:
        if (parse_u64("--max-conns-per-address", arg, 0, 1000000, &v) < 0)
            return -1;
        c->conns_per_address = (uint32_t)v;
        return 0;
    case OPT_READ_TIMEOUT:
        if (parse_u64("--request-read-timeout-ms", arg, 100, 3600000, &v) < 0)
            return -1;
        c->request_read_ms = (uint32_t)v;
        return 0;
    case OPT_QUOTA: return parse_u64("--quota-bytes", arg, 1, 1ull << 50, &c->quota_bytes);
    case OPT_CORRUPT:
        return parse_u64("--corrupt-check-ms", arg, 0, 7ull * 24 * 3600 * 1000, &c->corrupt_check_ms);
    case OPT_LOG:
        if (log_parse_level(arg, &lvl) < 0) {
            fprintf(stderr, "raftkv: --log-level: expected debug, info, warn or error, got \"%s\"\n", arg);
            return -1;
        }
        c->log_level = lvl;
        return 0;
    default: return apply_tls_option(c, opt, arg);
    }
}

/* RAFTKV_DATA_DIR for "data-dir". */
static void env_name(const char *flag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "RAFTKV_");
    for (const char *p = flag; *p && n + 1 < cap; p++)
        out[n++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    out[n] = '\0';
}

/* A switch from the environment: 1/true/yes on, 0/false/no off. */
static int env_switch(const char *var, const char *v, bool *on)
{
    static const char *const yes[] = {"1", "true", "yes"}, *const no[] = {"0", "false", "no", ""};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(v, yes[i]) == 0)
            return (*on = true), 0;
    for (size_t i = 0; i < 4; i++)
        if (strcmp(v, no[i]) == 0)
            return (*on = false), 0;
    fprintf(stderr, "raftkv: %s: expected 1, true, yes, 0, false or no, got \"%s\"\n", var, v);
    return -1;
}

/* Every flag not on the command line, from RAFTKV_<FLAG> if set. */
static int apply_env(config *c, const struct option *opts, const bool *given, bool *have_port)
{
    for (const struct option *o = opts; o->name; o++) {
        char var[64];
        env_name(o->name, var, sizeof var);
        const char *v = getenv(var);
        if (!v || given[o->val] || o->val == OPT_HELP)
            continue;
        bool on = true;
        if (o->has_arg == no_argument && env_switch(var, v, &on) < 0)
            return -1;
        if (on && apply_option(c, o->val, v, have_port) < 0) {
            fprintf(stderr, "raftkv: (that value came from the environment: %s)\n", var);
            return -1;
        }
    }
    return 0;
}

int config_parse(int argc, char **argv, config *c)
{
    static const struct option opts[] = {
        {"id", required_argument, NULL, OPT_ID},
        {"cluster", required_argument, NULL, OPT_CLUSTER},
        {"port", required_argument, NULL, OPT_PORT},
        {"join", no_argument, NULL, OPT_JOIN},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"snapshot-count", required_argument, NULL, OPT_SNAP},
        {"heartbeat-ms", required_argument, NULL, OPT_HB},
        {"election-ms", required_argument, NULL, OPT_ELECTION},
        {"max-request-bytes", required_argument, NULL, OPT_MAXREQ},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"quota-bytes", required_argument, NULL, OPT_QUOTA},
        {"corrupt-check-ms", required_argument, NULL, OPT_CORRUPT},
        {"client-host", required_argument, NULL, OPT_CLIENT_HOST},
        {"initial-cluster-token", required_argument, NULL, OPT_TOKEN},
        {"max-conns-per-address", required_argument, NULL, OPT_CONNS_PER_ADDR},
        {"request-read-timeout-ms", required_argument, NULL, OPT_READ_TIMEOUT},
        {"cert-file", required_argument, NULL, OPT_CERT},
        {"key-file", required_argument, NULL, OPT_KEY},
        {"trusted-ca-file", required_argument, NULL, OPT_CA},
        {"client-cert-auth", no_argument, NULL, OPT_CLIENT_CERT_AUTH},
        {"peer-cert-file", required_argument, NULL, OPT_PEER_CERT},
        {"peer-key-file", required_argument, NULL, OPT_PEER_KEY},
        {"peer-trusted-ca-file", required_argument, NULL, OPT_PEER_CA},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    set_defaults(c);
    bool have_port = false, given[OPT_HELP + 1] = {false};
    int opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long_only(argc, argv, "", opts, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(usage, stdout);
            config_free(c);
            return 1;
        }
        if (opt == '?') {
            fprintf(stderr, "raftkv: unknown or incomplete option \"%s\" (see --help)\n",
                    argv[optind - 1]);
            goto fail;
        }
        if (apply_option(c, opt, optarg, &have_port) < 0)
            goto fail;
        given[opt] = true;
    }
    if (optind < argc) {
        fprintf(stderr, "raftkv: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        goto fail;
    }
    if (apply_env(c, opts, given, &have_port) < 0)
        goto fail;
    if (check_required(c, have_port) < 0)
        goto fail;
    return 0;
fail:
    config_free(c);
    return -1;
}

void config_free(config *c)
{
    for (size_t i = 0; i < c->n_peers; i++)
        free(c->peers[i]);
    free(c->data_dir);
    free(c->listen_host);
    char **strings[] = {&c->client_host, &c->cluster_token, &c->cert_file, &c->key_file,
                        &c->trusted_ca_file, &c->peer_cert_file, &c->peer_key_file,
                        &c->peer_trusted_ca_file};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(*strings[i]);
    memset(c, 0, sizeof *c);
}
