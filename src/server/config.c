/* config: parses raftkv's command line (README.md, Command line). Every error
 * names the flag; nothing is started here. */
#include "server/config.h"

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
    "  --port PORT            client HTTP port (the peer port is this node's --cluster entry)\n"
    "  --join                 join an existing cluster instead of bootstrapping one\n"
    "  --data-dir DIR         where the Raft log, snapshots and data live (default raftkv-<id>)\n"
    "  --snapshot-count N     applied entries between snapshots (default 10000)\n"
    "  --heartbeat-ms MS      leader heartbeat interval (default 100)\n"
    "  --election-ms MS       base election timeout (default 1000)\n"
    "  --max-request-bytes N  largest client request body (default 1572864)\n"
    "  --log-level LEVEL      debug, info, warn or error (default info)\n"
    "  --quota-bytes N        kv.db size that raises the NOSPACE alarm (default 2147483648)\n"
    "  --corrupt-check-ms MS  leader compares the members' hashes this often (default\n"
    "                         300000; 0: only at start)\n"
    "  --help                 print this help\n"
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
    if (strncmp(p, "http://", 7) != 0)
        return -1;
    p += 7;
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
            fprintf(stderr, "raftkv: --cluster: \"%s\" is not http://host:port\n", tok);
            goto fail;
        }
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
    c->snapshot_count = 10000;
    c->heartbeat_ms = 100;
    c->election_ms = 1000;
    c->max_request_bytes = 1572864;
    c->log_level = LOG_INFO;
    c->quota_bytes = 2ull << 30;
    c->corrupt_check_ms = 300000;
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
    if (!c->data_dir) {
        char dir[64];
        snprintf(dir, sizeof dir, "raftkv-%llu", (unsigned long long)c->id);
        if (!(c->data_dir = xstrdup(dir)))
            return -1;
    }
    return 0;
}

enum { OPT_ID = 1, OPT_CLUSTER, OPT_PORT, OPT_JOIN, OPT_DATA_DIR, OPT_SNAP, OPT_HB,
       OPT_ELECTION, OPT_MAXREQ, OPT_LOG, OPT_QUOTA, OPT_CORRUPT, OPT_HELP };

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
    case OPT_DATA_DIR:
        free(c->data_dir);
        return (c->data_dir = xstrdup(arg)) ? 0 : -1;
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
    case OPT_MAXREQ: return parse_u64("--max-request-bytes", arg, 1, 1ull << 30, &c->max_request_bytes);
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
    default: return -1;
    }
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
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    set_defaults(c);
    bool have_port = false;
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
    }
    if (optind < argc) {
        fprintf(stderr, "raftkv: unexpected argument \"%s\" (see --help)\n", argv[optind]);
        goto fail;
    }
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
    memset(c, 0, sizeof *c);
}
