/* sqlite_oom: SQLite's allocator for a test program, failing one chosen
 * allocation, and a whole-file copy for starting each try from the same
 * database. Shared by kv_oom_test and storage_test. Never asserts. */
#ifndef RAFTKV_SQLITE_OOM_H
#define RAFTKV_SQLITE_OOM_H

#include <stdbool.h>

/* Puts the failing allocator under SQLite; must run before SQLite starts
 * (before any database is opened). False if SQLite refuses. */
bool sqlite_oom_install(void);

/* From now on the n-th allocation (or reallocation) fails, once; n = 0
 * fails none. */
void sqlite_oom_arm(long n);

/* Stops failing; whether the n-th allocation was reached since arming
 * (when it was not, every allocation of the tried operation succeeded). */
bool sqlite_oom_disarm(long n);

/* dst = src, byte for byte (dst replaced). */
bool sqlite_oom_copy_file(const char *src, const char *dst);

/* Copies the database file src to dst, first removing dst's -wal and -shm
 * files, so that a log left by the previous try never meets the copy. */
bool sqlite_oom_copy_db(const char *src, const char *dst);

#endif
