/* util: small shared helpers — logging, growable byte buffers, CRC-32C,
 * monotonic time, checked allocation. Must never know about Raft, SQLite
 * or HTTP: every other module may include this, so it includes nothing of
 * theirs. */
#ifndef RAFTKV_UTIL_H
#define RAFTKV_UTIL_H

#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdbool.h>

/* ---- logging: one line per event, "ts LEVEL node=N msg" on stderr ---- */
enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };
void log_set_level(enum log_level lvl);
int log_parse_level(const char *s, enum log_level *out); /* 0 ok, -1 unknown */
void log_set_node(uint64_t node_id);
void log_msg(enum log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

/* A library's own error lines (libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER,
 * cls a log_limited): one WARN line a second at most, prefixed with what,
 * the ones left out counted — a flood of bad connections must not become a
 * flood of log lines, nor lines without a level and a node id. */
typedef struct {
    const char *what;
    _Atomic uint64_t next_ms;
    _Atomic unsigned skipped;
} log_limited;
void log_limited_va(void *cls, const char *fmt, va_list ap);

/* ---- growable buffer; all functions return 0 or -1 on allocation failure
 * (the buffer is then left as it was). ---- */
typedef struct {
    uint8_t *data;
    size_t len;
    size_t cap;
} buf;
void buf_init(buf *b);
void buf_free(buf *b);
void buf_reset(buf *b); /* len = 0, keeps memory */
int buf_reserve(buf *b, size_t extra);
int buf_append(buf *b, const void *p, size_t n);
int buf_put_u8(buf *b, uint8_t v);
int buf_put_u32(buf *b, uint32_t v); /* little endian */
int buf_put_u64(buf *b, uint64_t v); /* little endian */
int buf_put_bytes(buf *b, const void *p, uint32_t n); /* u32 length + bytes */
int buf_put_u64s(buf *b, const uint64_t *v, uint32_t n); /* u32 count + n u64 */

/* ---- bounds-checked reader over untrusted bytes: every get returns -1
 * instead of reading past the end, and leaves the reader failed. ---- */
typedef struct {
    const uint8_t *p;
    size_t len;
    size_t off;
    bool failed;
} reader;
void reader_init(reader *r, const void *p, size_t len);
int rd_u8(reader *r, uint8_t *v);
int rd_u32(reader *r, uint32_t *v);
int rd_u64(reader *r, uint64_t *v);
/* u32 length + bytes; *p points into the input (not copied) */
int rd_bytes(reader *r, const uint8_t **p, uint32_t *n);
size_t rd_left(const reader *r);
/* u32 count + that many u64 into v; fails if count > max */
int rd_u64s(reader *r, uint64_t *v, uint32_t *n, uint32_t max);

/* ---- numbers in text ---- */
int hex_digit(char c); /* 0..15, or -1 if c is not a hex digit */
/* s[0..n) as a decimal number: one digit at least, digits only, no
 * overflow (leading zeros allowed). */
bool parse_decimal(const char *s, size_t n, uint64_t *out);

/* ---- CRC-32C (Castagnoli), incremental: start with crc = 0 ---- */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* ---- durability ---- */
/* fsync of the file or directory at path (a directory: its entries, e.g. a
 * rename into it). 0, or -1 with errno set. */
int fsync_path(const char *path);
/* Size and CRC-32C of the whole file at path; with sync, also fsyncs its
 * data. 0, or -1 with errno set. */
int file_sum(const char *path, bool sync, uint64_t *size, uint32_t *crc);

/* ---- time ---- */
uint64_t now_ms(void); /* monotonic milliseconds */
uint64_t now_wall_ms(void); /* wall-clock milliseconds since the epoch (token expiry) */

/* ---- net.c: a listen host ("127.0.0.1", "::", "[::1]", a name; NULL or
 * "" for every interface) and port as a socket address. 0, or -1 with a
 * message in err. ---- */
struct sockaddr_storage;
int net_listen_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, char *err,
                    size_t errlen);
/* The CLOCK_MONOTONIC time wait_ms from now, for pthread_cond_timedwait on
 * a condition variable made with that clock. */
struct timespec;
void monotonic_after(uint64_t wait_ms, struct timespec *ts);
/* glibc keeps freed heap (e.g. after 10 000 watch connections closed) for
 * reuse; when at least min_free bytes are free, hands the unused pages back
 * (malloc_trim). Returns the free bytes seen if it trimmed, else 0. */
size_t mem_release_free(size_t min_free);

/* ---- checked allocation helpers: NULL on failure, never abort ---- */
void *xmemdup(const void *p, size_t n); /* n == 0 gives a valid 1-byte block */
char *xstrdup(const char *s);
/* Room for item n of a growable array: when n has reached *cap, doubles
 * the array (16 items at first). `arrayp` is the address of the array
 * pointer (e.g. &v->items), `size` one item's size. 0, or -1 on
 * allocation failure or overflow, the array then left as it was. */
int xgrow(void *arrayp, size_t *cap, size_t n, size_t size);

/* ---- handoff.c: thread hand-offs on the request path, counted ---- */
enum handoff_kind {
    HANDOFF_LOOP,        /* an event pushed into the node loop's inbox */
    HANDOFF_CLIENT,      /* a client connection resumed with its answer */
    HANDOFF_PEER_ANSWER, /* a peer's request resumed with our answer */
    HANDOFF_SENDER,      /* the sender thread woken (not loop-driven) */
    HANDOFF_KINDS
};
void handoff_count(int kind);
uint64_t handoff_total(int kind);
const char *handoff_name(int kind);

/* ---- FNV-1a 64, for IDs derived from strings (cluster ID) ---- */
uint64_t fnv64(const void *data, size_t len);
/* FNV-1a continued over more bytes, from FNV64_INIT or an earlier hash. */
#define FNV64_INIT 14695981039346656037ull
uint64_t fnv64_more(uint64_t h, const void *data, size_t len);

#endif
