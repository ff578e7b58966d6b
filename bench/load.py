#!/usr/bin/env python3
"""load: writes COUNT keys PREFIX0..PREFIX<COUNT-1> of SIZE bytes each to an
etcd v2 or raftkv endpoint, as fast as CONNS keep-alive connections allow,
reports every failed write and exits non-zero if more than 0.1% failed. Owns bulk loading for
scripts/bench-vs-etcd only; it measures nothing and must never retry a write
silently (a failed write is reported)."""
import argparse
import http.client
import multiprocessing
import os
import ssl
import sys
import threading


def put_path(kind, key):
    return ("/v2/keys/" if kind == "etcd" else "/") + key


def body_for(kind, value):
    if kind == "etcd":
        return b"value=" + value, {"Content-Type": "application/x-www-form-urlencoded"}
    return value, {}


def connection(host, port):
    """HTTPS trusting $BENCH_CA when it is set (scripts/bench-vs-etcd --tls)."""
    ca = os.environ.get("BENCH_CA")
    if ca:
        return http.client.HTTPSConnection(host, port, timeout=60,
                                           context=ssl.create_default_context(cafile=ca))
    return http.client.HTTPConnection(host, port, timeout=60)


def worker(args, keys, errors):
    host, port = args.endpoint.split(":")
    conn = connection(host, int(port))
    value = b"x" * args.size
    body, headers = body_for(args.kind, value)
    for i in keys:
        try:
            conn.request("PUT", put_path(args.kind, "%s%d" % (args.prefix, i)), body, headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status >= 300:
                errors.append("%d: HTTP %d %s" % (i, resp.status, answer[:200].decode("utf-8", "replace")))
        except (OSError, http.client.HTTPException) as e:
            errors.append("%d: %s" % (i, e))
            conn.close()
            conn = connection(host, int(port))
    conn.close()


def process_main(args, keys):
    """One process: a thread per connection, keys dealt round-robin."""
    errors = []
    threads = [threading.Thread(target=worker, args=(args, keys[t::args.threads], errors))
               for t in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors[:5]:
        print("load: write %s" % e, file=sys.stderr)
    return len(errors)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("kind", choices=["etcd", "raftkv"])
    p.add_argument("endpoint", help="host:port")
    p.add_argument("--prefix", default="bench-")
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--threads", type=int, default=8, help="connections per process")
    args = p.parse_args()
    keys = list(range(args.count))
    with multiprocessing.Pool(args.procs) as pool:
        failed = sum(pool.starmap(process_main, [(args, keys[i::args.procs]) for i in range(args.procs)]))
    if failed:
        print("load: %d of %d writes failed" % (failed, args.count), file=sys.stderr)
    # A handful of refused writes (e.g. 503 during an election on a loaded
    # machine) do not change what the load is for; more than 0.1% does.
    if failed * 1000 > args.count:
        sys.exit(1)


if __name__ == "__main__":
    main()
