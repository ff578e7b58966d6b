# util module
libraftkv_a_SOURCES += src/util/util.h src/util/logging.c src/util/buf.c src/util/misc.c \
	src/util/fsync_path.c src/util/file_sum.c src/util/net.c src/util/handoff.c \
	src/util/failpoint.h src/util/failpoint.c src/util/json_safe.h src/util/json_safe.c src/util/tls.h src/util/tls.c

check_PROGRAMS += tests/unit/util_test
tests_unit_util_test_SOURCES = tests/unit/util_test.c
TESTS += tests/unit/util_test
