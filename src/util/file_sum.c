/* file_sum: the size and CRC-32C of a whole file, optionally making its
 * data durable in the same pass — how snapshot files are sealed and
 * checked (storage on the node thread, kv's background snapshot on its
 * own). Must never keep the descriptor open nor lose the errno of a
 * failure. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int file_sum(const char *path, bool sync, uint64_t *size, uint32_t *crc)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t chunk[64 * 1024];
    *size = 0;
    *crc = 0;
    int rc = 0;
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -1;
            break;
        }
        *crc = crc32c(*crc, chunk, (size_t)got);
        *size += (uint64_t)got;
    }
    if (rc == 0 && sync)
        rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
