/* logging: one line per event on stderr, with a level and the node id, so the
 * logs of a whole local cluster can be merged and grepped. Never allocates,
 * never blocks on anything but the write itself. */
#include "util/util.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level min_level = LOG_INFO;
static uint64_t log_node;

void log_set_level(enum log_level lvl) { min_level = lvl; }
void log_set_node(uint64_t node_id) { log_node = node_id; }

int log_parse_level(const char *s, enum log_level *out)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    if (lvl < min_level)
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld %-5s node=%llu ",
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
                     tags[lvl], (unsigned long long)log_node);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one write per line keeps lines whole when threads log together */
    size_t len = strnlen(line, sizeof line - 2);
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}

#define LOG_LIMITED_EVERY_MS 1000

void log_limited_va(void *cls, const char *fmt, va_list ap)
{
    log_limited *l = cls;
    uint64_t now = now_ms(), due = atomic_load(&l->next_ms);
    if (now < due ||
        !atomic_compare_exchange_strong(&l->next_ms, &due, now + LOG_LIMITED_EVERY_MS)) {
        atomic_fetch_add(&l->skipped, 1);
        return;
    }
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    unsigned n = atomic_exchange(&l->skipped, 0);
    if (n)
        log_warn("%s: %s (and %u more messages)", l->what, line, n);
    else
        log_warn("%s: %s", l->what, line);
}
