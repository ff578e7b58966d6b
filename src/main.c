/* main: parses the command line, starts the node and the client API, and
 * runs until SIGTERM/SIGINT or until the node is removed from the cluster.
 * It lives above the modules it wires (src/server/ never includes api/).
 * Owns process-wide set-up only (signals, log level); no logic of its own.
 * libcurl's global state belongs to the transport, which sets it up before
 * its first request and cleans it up at exit. */
#include "api/api.h"
#include "util/json_safe.h"
#include "server/backup_cli.h"
#include "server/config.h"
#include "server/node.h"
#include "transport/transport.h"
#include "util/failpoint.h"
#include "util/tls.h"
#include "util/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static node *the_node;

static void on_signal(int sig)
{
    (void)sig;
    if (the_node)
        node_request_stop(the_node);
}

/* SIGHUP reads every certificate file again. It is blocked in every thread
 * (the mask is set before any exists) and taken by this one with sigwait,
 * so the reload runs as ordinary code, not in a signal handler. */
static pthread_t hup_thread;
static volatile sig_atomic_t hup_stop;

static void *hup_main(void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    int sig;
    while (sigwait(&set, &sig) == 0 && !hup_stop) {
        char err[256] = "";
        if (tls_reload(TLS_SLOT_CLIENT, err, sizeof err) < 0 ||
            tls_reload(TLS_SLOT_PEER, err, sizeof err) < 0)
            log_error("SIGHUP: certificates not reloaded, the old ones stay in use: %s", err);
        else
            log_info("SIGHUP: certificates reloaded");
    }
    return NULL;
}

static int start_hup_thread(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return pthread_create(&hup_thread, NULL, hup_main, NULL) == 0 ? 0 : -1;
}

static void stop_hup_thread(void)
{
    hup_stop = 1;
    pthread_kill(hup_thread, SIGHUP);
    pthread_join(hup_thread, NULL);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    json_safe_install(); /* before any thread, and before anything uses jansson */
    if (argc >= 2 && strcmp(argv[1], "snapshot") == 0)
        return backup_cli_main(argc - 1, argv + 1);
    config cfg;
    int rc = config_parse(argc, argv, &cfg);
    if (rc != 0)
        return rc > 0 ? NODE_EXIT_OK : NODE_EXIT_USAGE;
    const char *fp = getenv("RAFTKV_FAILPOINTS");
    if (fp && *fp && failpoint_init(fp) < 0) {
        fprintf(stderr, "raftkv: bad RAFTKV_FAILPOINTS \"%s\" (name=ERRNO[@N],...)\n", fp);
        config_free(&cfg);
        return NODE_EXIT_USAGE;
    }
    log_set_level((enum log_level)cfg.log_level);
    log_set_node(cfg.id);
    install_signals();
    if (start_hup_thread() < 0 ||
        transport_client_tls(cfg.peer_cert_file, cfg.peer_key_file, cfg.peer_trusted_ca_file) < 0) {
        log_error("cannot start: out of resources");
        config_free(&cfg);
        return NODE_EXIT_START;
    }
    node *n = NULL;
    api *a = NULL;
    char err[256] = "";
    int exit_code = NODE_EXIT_START;
    if (node_create(&cfg, &n) < 0)
        goto out;
    the_node = n;
    api_config ac = {.host = cfg.client_host, .port = cfg.port, .cert_file = cfg.cert_file,
                     .key_file = cfg.key_file, .ca_file = cfg.trusted_ca_file,
                     .client_cert_auth = cfg.client_cert_auth, .peer_tls = cfg.peer_tls,
                     .max_conns_per_address = cfg.conns_per_address,
                     .request_read_ms = cfg.request_read_ms,
                     .max_request_bytes = cfg.max_request_bytes, .threads = 2, .node = n,
                     .kv = node_kv(n), .hub = node_watch_hub(n)};
    if (!(a = api_start(&ac, err, sizeof err))) {
        log_error("client listener on %s:%u: %s", cfg.client_host, cfg.port, err);
        goto out;
    }
    log_info("serving clients on %s://%s:%u, peers on %s", cfg.cert_file ? "https" : "http",
             cfg.client_host, cfg.port, cfg.peers[cfg.id - 1]);
    exit_code = node_run(n);
out:
    if (a)
        api_stop(a);
    the_node = NULL;
    node_destroy(n);
    stop_hup_thread();
    config_free(&cfg);
    log_info("stopped");
    return exit_code;
}
