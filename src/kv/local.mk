# kv module: sources and tests (see Makefile.am)
libraftkv_a_SOURCES += src/kv/kv.h src/kv/kv_internal.h src/kv/kv_db.c src/kv/kv_schema.c \
	src/kv/kv_span.c src/kv/kv_cmd.c src/kv/kv_lists.c src/kv/kv_read.c src/kv/kv_txn.c \
	src/kv/kv_compact.c src/kv/kv_err.c src/kv/kv_apply.c src/kv/kv_members.c src/kv/kv_history.c \
	src/kv/kv_pool.c src/kv/kv_store.c src/kv/kv_flusher.c src/kv/kv_snapshot.c \
	src/kv/lease_apply.c src/kv/lease_read.c src/kv/kv_row.c src/kv/kv_alarm.c src/kv/kv_auth.c src/kv/kv_backup.c src/kv/kv_defrag.c src/kv/kv_once.c src/kv/kv_idem.c \
	src/kv/kv_visible.c
check_PROGRAMS += tests/unit/kv_test
tests_unit_kv_test_SOURCES = tests/unit/kv_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/kv_test
check_PROGRAMS += tests/unit/lease_test
tests_unit_lease_test_SOURCES = tests/unit/lease_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/lease_test
# the watch hub (docs/API.md section 5)
libraftkv_a_SOURCES += src/kv/watch_int.h src/kv/watch_hub.c src/kv/watch_tree.c \
	src/kv/watch_heap.c src/kv/watch_fetch.c src/kv/watch_memo.c
check_PROGRAMS += tests/unit/watch_test
tests_unit_watch_test_SOURCES = tests/unit/watch_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/watch_test
# integrity and alarms (checksums, kv_hash, alarms, NOSPACE, failpoints)
check_PROGRAMS += tests/unit/kv_integrity_test
tests_unit_kv_integrity_test_SOURCES = tests/unit/kv_integrity_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/kv_integrity_test
# readers and the writer's open transaction (kv_visible.c)
check_PROGRAMS += tests/unit/kv_visible_test
tests_unit_kv_visible_test_SOURCES = tests/unit/kv_visible_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/kv_visible_test
# reads and applies with each of SQLite's allocations failed in turn
check_PROGRAMS += tests/unit/kv_oom_test
tests_unit_kv_oom_test_SOURCES = tests/unit/kv_oom_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h \
	tests/unit/sqlite_oom.c tests/unit/sqlite_oom.h
TESTS += tests/unit/kv_oom_test
