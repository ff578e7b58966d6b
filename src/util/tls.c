/* tls: the credentials of the two TLS listeners, loaded from PEM files and
 * swapped whole on reload, and the check of the other side's certificate,
 * run by GnuTLS inside the handshake so a refused peer never gets a byte
 * of HTTP through. A handshake may still hold a set that a reload
 * replaced, so replaced sets are kept until tls_close (reloads are rare:
 * an operator's SIGHUP). Must never serve a half-loaded set: a set is
 * complete and its key matches its certificate before it is published. */
#include "util/tls.h"

#include "util/util.h"

#include <gnutls/abstract.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TLS_MAX_CHAIN 8

typedef struct tls_set {
    gnutls_pcert_st pcerts[TLS_MAX_CHAIN];
    unsigned n_pcerts;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t trust; /* NULL when nothing is verified */
    struct tls_set *older;          /* replaced sets, freed by tls_close */
} tls_set;

typedef struct {
    pthread_mutex_t mu;
    bool open;
    char *cert_file, *key_file, *ca_file;
    enum tls_verify verify;
    tls_set *cur;
    time_t last_refusal_log;
} tls_state;

static tls_state slots[TLS_SLOTS] = {
    {.mu = PTHREAD_MUTEX_INITIALIZER},
    {.mu = PTHREAD_MUTEX_INITIALIZER},
};

static const char *const slot_names[TLS_SLOTS] = {"client", "peer"};

static void free_set(tls_set *t)
{
    for (unsigned i = 0; i < t->n_pcerts; i++)
        gnutls_pcert_deinit(&t->pcerts[i]);
    if (t->key)
        gnutls_privkey_deinit(t->key);
    if (t->trust)
        gnutls_x509_trust_list_deinit(t->trust, 1);
    free(t);
}

static int load_failed(char *err, size_t errlen, const char *what, const char *file, int rc)
{
    snprintf(err, errlen, "%s %s: %s", what, file, gnutls_strerror(rc));
    return -1;
}

static int load_chain(tls_set *t, const char *file, char *err, size_t errlen)
{
    gnutls_datum_t d = {NULL, 0};
    int rc = gnutls_load_file(file, &d);
    if (rc < 0)
        return load_failed(err, errlen, "cannot read certificate", file, rc);
    t->n_pcerts = TLS_MAX_CHAIN;
    rc = gnutls_pcert_list_import_x509_raw(t->pcerts, &t->n_pcerts, &d, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(d.data);
    if (rc < 0) {
        t->n_pcerts = 0;
        return load_failed(err, errlen, "no usable PEM certificate in", file, rc);
    }
    return 0;
}

static int load_key(tls_set *t, const char *file, char *err, size_t errlen)
{
    gnutls_datum_t d = {NULL, 0};
    int rc = gnutls_load_file(file, &d);
    if (rc < 0)
        return load_failed(err, errlen, "cannot read key", file, rc);
    rc = gnutls_privkey_init(&t->key);
    if (rc == 0)
        rc = gnutls_privkey_import_x509_raw(t->key, &d, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_memset(d.data, 0, d.size); /* the key's bytes do not outlive the import */
    gnutls_free(d.data);
    if (rc < 0)
        return load_failed(err, errlen, "no usable PEM private key in", file, rc);
    return 0;
}

/* A key that does not belong to the certificate would only show as failed
 * handshakes later; say so at load instead. */
static int check_key_matches(tls_set *t, const char *key_file, char *err, size_t errlen)
{
    gnutls_pubkey_t pub;
    unsigned char a[64], b[64];
    size_t al = sizeof a, bl = sizeof b;
    if (gnutls_pubkey_init(&pub) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = gnutls_pubkey_import_privkey(pub, t->key, 0, 0);
    if (rc == 0)
        rc = gnutls_pubkey_get_key_id(pub, 0, a, &al);
    gnutls_pubkey_deinit(pub);
    if (rc == 0)
        rc = gnutls_pubkey_get_key_id(t->pcerts[0].pubkey, 0, b, &bl);
    if (rc < 0)
        return load_failed(err, errlen, "cannot check key", key_file, rc);
    if (al != bl || memcmp(a, b, al) != 0) {
        snprintf(err, errlen, "key %s does not belong to the certificate", key_file);
        return -1;
    }
    return 0;
}

static int load_trust(tls_set *t, const char *file, char *err, size_t errlen)
{
    int rc = gnutls_x509_trust_list_init(&t->trust, 0);
    if (rc < 0)
        return load_failed(err, errlen, "cannot load CA", file, rc);
    rc = gnutls_x509_trust_list_add_trust_file(t->trust, file, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
    if (rc < 0)
        return load_failed(err, errlen, "cannot read CA", file, rc);
    if (rc == 0) {
        snprintf(err, errlen, "no CA certificate in %s", file);
        return -1;
    }
    return 0;
}

static tls_set *load_set(const tls_state *s, char *err, size_t errlen)
{
    tls_set *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (load_chain(t, s->cert_file, err, errlen) < 0 || load_key(t, s->key_file, err, errlen) < 0 ||
        check_key_matches(t, s->key_file, err, errlen) < 0 ||
        (s->verify != TLS_VERIFY_NONE && load_trust(t, s->ca_file, err, errlen) < 0)) {
        free_set(t);
        return NULL;
    }
    return t;
}

/* ---- the handshake's side ---- */

static void log_refusal(tls_state *s, enum tls_slot slot, const char *why)
{
    time_t now = time(NULL);
    pthread_mutex_lock(&s->mu);
    bool say = now != s->last_refusal_log; /* one line a second at most: a scan is not a flood */
    s->last_refusal_log = now;
    pthread_mutex_unlock(&s->mu);
    if (say)
        log_warn("tls: %s listener refused a certificate: %s", slot_names[slot], why);
}

static int verify_chain(gnutls_x509_trust_list_t trust, const gnutls_datum_t *raw, unsigned n,
                        unsigned *status)
{
    gnutls_x509_crt_t crts[TLS_MAX_CHAIN];
    unsigned got = 0;
    int rc = 0;
    for (; got < n && got < TLS_MAX_CHAIN; got++) {
        if ((rc = gnutls_x509_crt_init(&crts[got])) < 0)
            break;
        if ((rc = gnutls_x509_crt_import(crts[got], &raw[got], GNUTLS_X509_FMT_DER)) < 0) {
            gnutls_x509_crt_deinit(crts[got]);
            break;
        }
    }
    if (rc == 0)
        rc = gnutls_x509_trust_list_verify_crt(trust, crts, got, 0, status, NULL);
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(crts[i]);
    return rc;
}

/* Runs inside the handshake when the other side's certificate arrives: a
 * non-zero answer aborts the handshake. */
static int verify_peer(enum tls_slot slot, gnutls_session_t session)
{
    tls_state *s = &slots[slot];
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
    if (!raw || n == 0) {
        if (s->verify != TLS_VERIFY_REQUIRED)
            return 0;
        log_refusal(s, slot, "none sent");
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    gnutls_x509_trust_list_t trust = s->cur ? s->cur->trust : NULL;
    pthread_mutex_unlock(&s->mu);
    unsigned status = 0;
    int rc = trust ? verify_chain(trust, raw, n, &status) : GNUTLS_E_CERTIFICATE_ERROR;
    if (rc < 0 || status != 0) {
        gnutls_datum_t text = {NULL, 0};
        if (rc >= 0 && gnutls_certificate_verification_status_print(
                           status, GNUTLS_CRT_X509, &text, 0) == 0) {
            log_refusal(s, slot, (const char *)text.data);
            gnutls_free(text.data);
        } else {
            log_refusal(s, slot, gnutls_strerror(rc < 0 ? rc : GNUTLS_E_CERTIFICATE_ERROR));
        }
        return -1;
    }
    return 0;
}

static int verify_client(gnutls_session_t session) { return verify_peer(TLS_SLOT_CLIENT, session); }
static int verify_peer_slot(gnutls_session_t session) { return verify_peer(TLS_SLOT_PEER, session); }
static gnutls_certificate_verify_function *const verifiers[TLS_SLOTS] = {verify_client,
                                                                          verify_peer_slot};

/* Called by GnuTLS, early in each handshake, for the server's certificate;
 * it is also where the session learns what to ask of the client, before
 * the server's CertificateRequest goes out. */
static int retrieve(enum tls_slot slot, gnutls_session_t session, gnutls_pcert_st **pcert,
                    unsigned *n_pcert, gnutls_privkey_t *key)
{
    tls_state *s = &slots[slot];
    pthread_mutex_lock(&s->mu);
    tls_set *t = s->cur;
    enum tls_verify v = s->verify;
    pthread_mutex_unlock(&s->mu);
    if (!t)
        return -1;
    *pcert = t->pcerts;
    *n_pcert = t->n_pcerts;
    *key = t->key;
    if (v != TLS_VERIFY_NONE) {
        gnutls_certificate_server_set_request(
            session, v == TLS_VERIFY_REQUIRED ? GNUTLS_CERT_REQUIRE : GNUTLS_CERT_REQUEST);
        gnutls_session_set_verify_function(session, verifiers[slot]);
    }
    return 0;
}

static int retrieve_client(gnutls_session_t s, const gnutls_datum_t *req_ca, int n_req,
                           const gnutls_pk_algorithm_t *algos, int n_algos, gnutls_pcert_st **pc,
                           unsigned *n_pc, gnutls_privkey_t *key)
{
    return retrieve(TLS_SLOT_CLIENT, s, pc, n_pc, key);
}

static int retrieve_peer(gnutls_session_t s, const gnutls_datum_t *req_ca, int n_req,
                         const gnutls_pk_algorithm_t *algos, int n_algos, gnutls_pcert_st **pc,
                         unsigned *n_pc, gnutls_privkey_t *key)
{
    return retrieve(TLS_SLOT_PEER, s, pc, n_pc, key);
}

gnutls_certificate_retrieve_function2 *tls_cert_callback(enum tls_slot slot)
{
    return slot == TLS_SLOT_CLIENT ? retrieve_client : retrieve_peer;
}

/* ---- lifecycle ---- */

static void forget_files(tls_state *s)
{
    free(s->cert_file);
    free(s->key_file);
    free(s->ca_file);
    s->cert_file = s->key_file = s->ca_file = NULL;
}

int tls_open(enum tls_slot slot, const tls_files *files, char *err, size_t errlen)
{
    tls_state *s = &slots[slot];
    if (s->open) {
        snprintf(err, errlen, "the %s TLS credentials are already open", slot_names[slot]);
        return -1;
    }
    s->verify = files->verify;
    s->cert_file = xstrdup(files->cert_file);
    s->key_file = xstrdup(files->key_file);
    s->ca_file = files->ca_file ? xstrdup(files->ca_file) : NULL;
    if (!s->cert_file || !s->key_file || (files->ca_file && !s->ca_file)) {
        forget_files(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    tls_set *t = load_set(s, err, errlen);
    if (!t) {
        forget_files(s);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    s->cur = t;
    s->open = true;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int tls_reload(enum tls_slot slot, char *err, size_t errlen)
{
    tls_state *s = &slots[slot];
    if (!s->open)
        return 0;
    tls_set *t = load_set(s, err, errlen);
    if (!t)
        return -1;
    pthread_mutex_lock(&s->mu);
    t->older = s->cur;
    s->cur = t;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void tls_close(enum tls_slot slot)
{
    tls_state *s = &slots[slot];
    pthread_mutex_lock(&s->mu);
    tls_set *t = s->cur;
    s->cur = NULL;
    s->open = false;
    pthread_mutex_unlock(&s->mu);
    while (t) {
        tls_set *older = t->older;
        free_set(t);
        t = older;
    }
    forget_files(s);
}

int tls_peer_common_name(gnutls_session_t session, char *out, size_t cap)
{
    unsigned n = 0;
    const gnutls_datum_t *raw = gnutls_certificate_get_peers(session, &n);
    gnutls_x509_crt_t crt;
    if (!raw || n == 0 || cap == 0 || gnutls_x509_crt_init(&crt) < 0)
        return -1;
    size_t len = cap;
    int rc = gnutls_x509_crt_import(crt, &raw[0], GNUTLS_X509_FMT_DER);
    if (rc == 0)
        rc = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, 0, out, &len);
    gnutls_x509_crt_deinit(crt);
    if (rc < 0 || len >= cap || memchr(out, '\0', len))
        return -1;
    out[len] = '\0';
    return 0;
}
