/* failpoint: named points in the code where a test can make an operation
 * fail with a chosen errno, armed once from a spec string (the node's
 * main passes the environment variable RAFTKV_FAILPOINTS).
 *
 * Spec: "name=ERRNO[@N][,name=ERRNO[@N]...]": from the N-th hit of the
 * point on (N >= 1; default 1: every hit), failpoint_hit(name) returns that
 * errno. ERRNO is one of EIO, ENOSPC, EROFS, ENOMEM, EACCES, EDQUOT.
 * Example: "kv.commit=EIO@3,kv.write=ENOSPC".
 *
 * Points: kv.apply (each command applied), kv.commit (each batch's end),
 * kv.flush (each commit of the applied batches, kv_visible.c), kv.reload
 * (reading kv.db's state back after a rollback), kv.write (each row kv
 * writes), peer.run (each run of the loop-driven peer listener),
 * conf.apply (each membership change the node follows as it applies),
 * removed.load (each read of the removed ids: at start, then after each
 * snapshot installed), peers.sync (each pointing of the transport at the
 * members' peer URLs: at start, then after each snapshot installed),
 * api.request (each client request's context: a hit answers it 500 out of
 * memory, as a failed allocation does), auth.user (each read of a user's
 * password hash: logins and client certificates), auth.list (each listing
 * of users or roles: the auth reads, and the gateway's wording of a refused
 * grant). Storage adds its own
 * (storage.commit, storage.lock, storage.snapshot).
 *
 * Must never cost more than one relaxed atomic load when nothing is armed,
 * and never allocate or lock on a hit. */
#ifndef RAFTKV_FAILPOINT_H
#define RAFTKV_FAILPOINT_H

#define FAILPOINT_MAX 16
#define FAILPOINT_NAME_MAX 32

/* Replaces the whole configuration (NULL or "" disarms every point).
 * 0, or -1 for a malformed spec (then nothing is armed). Not safe against
 * concurrent failpoint_hit callers: call it before threads start (or in a
 * test, while no other thread runs kv). */
int failpoint_init(const char *spec);

/* 0, or the errno the point is armed to fail with (counts the hit). Any
 * thread. */
int failpoint_hit(const char *name);

#endif
