/* reserve: a few MiB of disk the node holds back (<data-dir>/space.reserve)
 * and gives up when its disk fills. Entries that are committed — durable on
 * a quorum — must still apply to kv.db, or no linearizable read can be
 * answered (they wait for the applied index): when an apply finds no space,
 * the reserve is deleted and the held batch applies on the next turn. It is
 * made again once writes succeed. Must never: be counted on — it is a
 * margin for what was committed, not space for new writes (those get 507
 * while the disk is full) — or stop the node when it cannot be made. */
#include "server/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RESERVE_BYTES (4u << 20)

static void reserve_path(const node *n, char *out, size_t len)
{
    snprintf(out, len, "%s/space.reserve", n->cfg->data_dir);
}

void node_reserve_make(node *n)
{
    char path[4096];
    reserve_path(n, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_warn("cannot make %s: %s (running without a space reserve)", path, strerror(errno));
        return;
    }
    int rc = posix_fallocate(fd, 0, RESERVE_BYTES);
    close(fd);
    if (rc != 0) {
        unlink(path); /* a partial reserve would only mislead */
        log_warn("cannot reserve %u MiB in %s: %s (running without)", RESERVE_BYTES >> 20, path,
                 strerror(rc));
        return;
    }
    n->reserve_held = true;
}

bool node_reserve_release(node *n)
{
    if (!n->reserve_held)
        return false;
    char path[4096];
    reserve_path(n, path, sizeof path);
    n->reserve_held = false;
    if (unlink(path) != 0 && errno != ENOENT) {
        log_warn("cannot delete %s: %s", path, strerror(errno));
        return false;
    }
    log_warn("disk full: gave up the %u MiB space reserve so that committed entries apply",
             RESERVE_BYTES >> 20);
    return true;
}
