#!/usr/bin/env python3
"""fsync_latency: median and p99 of write(256 B) + fdatasync on a scratch
file in DIR (default: the temp dir, the disk the benchmarks use). Owns this
measurement only; it must never touch any file but its own scratch file,
which it removes."""
import os
import sys
import tempfile
import time


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    fd, path = tempfile.mkstemp(dir=d, prefix="fsync-latency.")
    try:
        lat = []
        block = b"x" * 256
        for _ in range(n):
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            lat.append((time.perf_counter() - t) * 1000)
        lat.sort()
        print("fdatasync of 256 B appends in %s: median %.3f ms, p99 %.3f ms (%d samples)"
              % (d, lat[len(lat) // 2], lat[int(len(lat) * 0.99)], n))
    finally:
        os.close(fd)
        os.unlink(path)


if __name__ == "__main__":
    main()
