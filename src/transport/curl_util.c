/* curl_util: the libcurl settings every transport request shares, in one
 * place so the sender, the snapshot streamer and the cluster-id probe
 * behave alike. Must never perform a request itself. */
#include "transport/transport_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

/* The one curl_global_init of the process, paired with one
 * curl_global_cleanup at exit: by then every transport thread has been
 * joined (transport_stop), as curl_global_cleanup requires. */
static void curl_init_once(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK)
        atexit(curl_global_cleanup);
}

/* curl_global_init is not thread-safe on every libcurl build: run it once,
 * before any transport thread exists. Every path to a curl handle (the
 * sender's start, the cluster-id probe) calls this first. */
void transport_curl_global_init(void) { pthread_once(&curl_once, curl_init_once); }

/* Outgoing peer connections leave from this node's own peer address, so
 * that a firewall rule on (source, destination) cuts exactly one link of
 * the cluster — the fault harness partitions loopback clusters this way.
 * Set once by transport_start, before any request thread runs. */
static char source_addr[64];

void transport_curl_set_source(const char *host)
{
    struct in_addr a;
    source_addr[0] = '\0';
    if (host && inet_pton(AF_INET, host, &a) == 1 && a.s_addr != htonl(INADDR_ANY))
        snprintf(source_addr, sizeof source_addr, "host!%s", host);
}

/* The files of the peer TLS client side, set once before any request. */
static char *client_cert, *client_key, *client_ca;

int transport_client_tls(const char *cert_file, const char *key_file, const char *ca_file)
{
    if (!cert_file)
        return 0;
    client_cert = xstrdup(cert_file);
    client_key = xstrdup(key_file);
    client_ca = xstrdup(ca_file);
    return client_cert && client_key && client_ca ? 0 : -1;
}

/* Mutual TLS with every peer: our certificate, and theirs checked against
 * the cluster's CA and the host name of their URL. */
static void set_tls(CURL *e)
{
    if (!client_cert)
        return;
    curl_easy_setopt(e, CURLOPT_SSLCERT, client_cert);
    curl_easy_setopt(e, CURLOPT_SSLKEY, client_key);
    curl_easy_setopt(e, CURLOPT_CAINFO, client_ca);
    curl_easy_setopt(e, CURLOPT_CAPATH, NULL); /* that CA only, not the system's */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
}

static size_t discard_body(char *p, size_t size, size_t nmemb, void *ud)
{
    return size * nmemb; /* peers answer 204; anything else is not needed */
}

void transport_curl_common(CURL *e, long connect_ms)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* we run in threads */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, NULL);
    if (source_addr[0])
        curl_easy_setopt(e, CURLOPT_INTERFACE, source_addr);
    set_tls(e);
    /* peer URLs come from membership changes: never follow them into
     * file:// or anything else */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
}

char *transport_url_join(const char *base, const char *path)
{
    size_t bl = strlen(base), pl = strlen(path);
    while (bl && base[bl - 1] == '/')
        bl--;
    char *u = malloc(bl + pl + 1);
    if (!u)
        return NULL;
    memcpy(u, base, bl);
    memcpy(u + bl, path, pl + 1);
    return u;
}

/* The failures a retry cannot mend: the TLS handshake itself went wrong
 * (a certificate that does not match the URL or is not from our CA, or a
 * peer that refuses ours), as opposed to a peer that is down or slow. */
bool transport_curl_tls_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        return true;
    default:
        return false;
    }
}

bool transport_curl_ok(CURL *e, CURLcode rc)
{
    long code = 0;
    if (rc != CURLE_OK)
        return false;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    return code >= 200 && code < 300;
}

struct curl_slist *transport_slist_add(struct curl_slist *l, const char *line)
{
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n)
        curl_slist_free_all(l);
    return n;
}
