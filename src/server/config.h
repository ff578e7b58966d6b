/* config: the command line (README.md, Command line) parsed into one struct.
 * Must never start anything: parsing only, with errors that name the flag. */
#ifndef RAFTKV_CONFIG_H
#define RAFTKV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_PEERS 32

typedef struct {
    uint64_t id;                 /* --id: 1-based index into --cluster */
    size_t n_peers;
    char *peers[CONFIG_MAX_PEERS]; /* --cluster URLs */
    uint16_t port;               /* --port: client HTTP port */
    bool join;                   /* --join */
    char *data_dir;              /* --data-dir (default raftkv-<id>) */
    uint64_t snapshot_count;     /* --snapshot-count (default 100000) */
    uint32_t heartbeat_ms;       /* --heartbeat-ms (default 100) */
    uint32_t election_ms;        /* --election-ms (default 1000) */
    uint64_t max_request_bytes;  /* --max-request-bytes (default 1.5 MiB) */
    int log_level;               /* --log-level (enum log_level) */
    uint64_t quota_bytes;        /* --quota-bytes: NOSPACE past this kv.db size (2 GiB) */
    uint64_t corrupt_check_ms;   /* --corrupt-check-ms: leader compares replicas (0: off) */
    char *client_host;           /* --client-host: client listener address (127.0.0.1) */
    char *cluster_token;         /* --initial-cluster-token, mixed into the cluster id */
    char *cert_file, *key_file;  /* --cert-file/--key-file: client port is HTTPS only */
    char *trusted_ca_file;       /* --trusted-ca-file: CA of client certificates */
    bool client_cert_auth;       /* --client-cert-auth: a client certificate is required */
    bool peer_tls;               /* --cluster URLs are https:// (mutual TLS between peers) */
    char *peer_cert_file, *peer_key_file, *peer_trusted_ca_file; /* --peer-*: all three */
    uint32_t conns_per_address;  /* --max-conns-per-address: client connections (4096; 0 off) */
    uint32_t request_read_ms;    /* --request-read-timeout-ms: to send a request (10000) */
    char *listen_host;           /* host part of this node's peer URL */
    uint16_t listen_port;        /* port part of this node's peer URL */
} config;

/* Returns 0 on success, 1 if --help was printed, -1 on error (message
 * printed to stderr). */
int config_parse(int argc, char **argv, config *out);
void config_free(config *c);
/* Splits "http://host:port[/]" or "https://..." into host and port; 0 on
 * success. */
int config_split_url(const char *url, char *host, size_t hostcap, uint16_t *port);

#endif
