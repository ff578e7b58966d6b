/* reserve: a few MiB of disk the node holds back (<data-dir>/space.reserve)
 * and gives up when its disk fills. Entries that are committed — durable on
 * a quorum — must still apply to kv.db, or no linearizable read can be
 * answered (they wait for the applied index): when an apply finds no space,
 * the reserve is deleted and the held batch applies on the next turn. It is
 * made again before the node takes writes again: giving it up frees space,
 * and writes let in at once would eat it and leave the next committed
 * entry stuck as before. So the disk counts as full (507 for writes,
 * reads go on) until the reserve can be made again, tried every few
 * seconds (one warning, not one per try). Must never: be counted on — it is a
 * margin for what was committed, not space for new writes (those get 507
 * while the disk is full) — or stop the node when it cannot be made. */
#include "server/node_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define RESERVE_BYTES (4u << 20)
#define RESERVE_RETRY_MS 5000

static void reserve_path(const node *n, char *out, size_t len)
{
    snprintf(out, len, "%s/space.reserve", n->cfg->data_dir);
}

/* Room for the reserve and as much again: taking back the space just
 * given up, while the disk is still full, would only stall the apply
 * that needed it. */
static bool room_for_it(const node *n)
{
    struct statvfs vfs;
    if (statvfs(n->cfg->data_dir, &vfs) != 0)
        return true; /* let fallocate say */
    return (uint64_t)vfs.f_bavail * vfs.f_frsize >= 2ull * RESERVE_BYTES;
}

bool node_reserve_make(node *n)
{
    char path[4096];
    reserve_path(n, path, sizeof path);
    if (!room_for_it(n))
        return false;
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    int rc = fd < 0 ? errno : posix_fallocate(fd, 0, RESERVE_BYTES);
    if (fd >= 0)
        close(fd);
    if (rc != 0) {
        if (fd >= 0)
            unlink(path); /* a partial reserve would only mislead */
        if (!n->reserve_warned)
            log_warn("cannot reserve %u MiB in %s: %s (tried again every %d s)",
                     RESERVE_BYTES >> 20, path, strerror(rc), RESERVE_RETRY_MS / 1000);
        n->reserve_warned = true;
        /* only a lack of space keeps the disk counted full */
        return rc != ENOSPC && rc != EDQUOT;
    }
    if (n->reserve_warned)
        log_info("space reserve %s made again", path);
    n->reserve_warned = false;
    n->reserve_held = true;
    return true;
}

bool node_reserve_ready(node *n)
{
    return n->reserve_held || node_reserve_make(n);
}

void node_reserve_tick(node *n, uint64_t now)
{
    if (n->reserve_held || now < n->next_reserve_ms)
        return;
    n->next_reserve_ms = now + RESERVE_RETRY_MS;
    if (node_reserve_make(n) && atomic_exchange(&n->disk_full, false))
        log_info("disk has space again: writes go on");
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
