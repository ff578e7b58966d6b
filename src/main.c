/* main: parses the command line, starts the node and the client API, and
 * runs until SIGTERM/SIGINT or until the node is removed from the cluster.
 * It lives above the modules it wires (src/server/ never includes api/).
 * Owns process-wide set-up only (signals, log level); no logic of its own.
 * libcurl's global state belongs to the transport, which sets it up before
 * its first request and cleans it up at exit. */
#include "api/api.h"
#include "server/config.h"
#include "server/node.h"
#include "util/failpoint.h"
#include "util/util.h"

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
    node *n = NULL;
    api *a = NULL;
    char err[256] = "";
    int exit_code = NODE_EXIT_START;
    if (node_create(&cfg, &n) < 0)
        goto out;
    the_node = n;
    api_config ac = {.port = cfg.port, .max_request_bytes = cfg.max_request_bytes,
                     .threads = 2, .node = n, .kv = node_kv(n), .hub = node_watch_hub(n)};
    if (!(a = api_start(&ac, err, sizeof err))) {
        log_error("client listener on port %u: %s", cfg.port, err);
        goto out;
    }
    log_info("serving clients on port %u, peers on %s:%u", cfg.port, cfg.listen_host,
             cfg.listen_port);
    exit_code = node_run(n);
out:
    if (a)
        api_stop(a);
    the_node = NULL;
    node_destroy(n);
    config_free(&cfg);
    log_info("stopped");
    return exit_code;
}
