# storage module: sources and tests (see Makefile.am)
libraftkv_a_SOURCES += src/storage/storage.h src/storage/storage_int.h \
	src/storage/storage_open.c src/storage/storage_sql.c src/storage/storage_meta.c \
	src/storage/storage_conf.c src/storage/storage_append.c src/storage/storage_load.c \
	src/storage/storage_snap.c src/storage/storage_file.c

check_PROGRAMS += tests/unit/storage_test
tests_unit_storage_test_SOURCES = tests/unit/storage_test.c tests/unit/sqlite_oom.c \
	tests/unit/sqlite_oom.h
TESTS += tests/unit/storage_test
