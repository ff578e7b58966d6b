/* fsync_path: makes a file's data, or a directory's entries (a rename, a
 * new file), durable by path. Shared by storage, transport and kv, which
 * each used to carry their own open+fsync+close. Must never keep the
 * descriptor open nor lose the errno of the failure. */
#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
