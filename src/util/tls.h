/* tls: the TLS credentials of raftkv's two listeners (client and peer),
 * read from PEM files and read again on demand (SIGHUP), with the check of
 * the other side's certificate done inside the handshake. libmicrohttpd
 * runs the handshakes; this module only hands it credentials and verdicts
 * (tls.c). Must never know about HTTP routes or Raft. */
#ifndef RAFTKV_TLS_H
#define RAFTKV_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stddef.h>

/* Which listener: each has one slot, because GnuTLS's certificate callback
 * carries no user pointer. */
enum tls_slot { TLS_SLOT_CLIENT = 0, TLS_SLOT_PEER = 1, TLS_SLOTS };

/* What is asked of the other side's certificate. */
enum tls_verify {
    TLS_VERIFY_NONE = 0,     /* none asked for */
    TLS_VERIFY_OPTIONAL = 1, /* asked for; if sent, it must chain to the CA */
    TLS_VERIFY_REQUIRED = 2, /* the handshake fails without one from the CA */
};

typedef struct {
    const char *cert_file; /* PEM chain, leaf first */
    const char *key_file;  /* PEM private key */
    const char *ca_file;   /* PEM CA bundle; NULL with TLS_VERIFY_NONE */
    enum tls_verify verify;
} tls_files;

/* Loads the files into slot's credentials. 0, or -1 with a message naming
 * the file in err. Fails if the slot is already in use. */
int tls_open(enum tls_slot slot, const tls_files *files, char *err, size_t errlen);
/* Reads the slot's files again; handshakes from now on use the new set.
 * On error (message in err) the old set stays in use. */
int tls_reload(enum tls_slot slot, char *err, size_t errlen);
/* Frees every set the slot ever loaded: call after its listener stopped. */
void tls_close(enum tls_slot slot);

/* The certificate callback to give libmicrohttpd for the slot
 * (MHD_OPTION_HTTPS_CERT_CALLBACK). */
gnutls_certificate_retrieve_function2 *tls_cert_callback(enum tls_slot slot);

/* The common name of the verified certificate the other side sent, copied
 * into out (NUL-terminated). 0, or -1 if the session has none or it does
 * not fit. */
int tls_peer_common_name(gnutls_session_t session, char *out, size_t cap);

#endif
