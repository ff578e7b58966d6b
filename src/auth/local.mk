# auth module: password hashes, tokens, failed-login limits (see auth.h)
libraftkv_a_SOURCES += src/auth/auth.h src/auth/auth_pass.c src/auth/auth_token.c \
	src/auth/auth_limit.c
check_PROGRAMS += tests/unit/auth_test
tests_unit_auth_test_SOURCES = tests/unit/auth_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/auth_test
