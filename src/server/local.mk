# server module: command line, node loop, recovery (main is src/main.c, above the modules)
libraftkv_a_SOURCES += src/server/config.h src/server/config.c \
	src/server/node.h src/server/node_int.h src/server/node.c \
	src/server/requests.h src/server/requests.c src/server/membership.h src/server/membership.c \
	src/server/reads.h src/server/reads.c src/server/apply.h src/server/apply.c src/server/flush.c \
	src/server/snapshot.h src/server/snapshot.c src/server/peers.h src/server/peers.c \
	src/server/status.h src/server/status.c src/server/node_err.c src/server/alarms.h src/server/alarms.c \
	src/server/corrupt_check.h src/server/corrupt_check.c \
	src/server/inbox.h src/server/inbox.c src/server/waiters.h src/server/waiters.c \
	src/server/envelope.h src/server/envelope.c src/server/backup_cli.h src/server/backup_cli.c \
	src/server/failover.h src/server/failover.c src/server/reserve.c src/server/trace.h src/server/trace.c src/server/peer_order.h src/server/peer_order.c \
	src/server/recovery.c src/server/removed.c src/server/lease_clock.h src/server/lease_clock.c src/server/lease_expiry.c

check_PROGRAMS += tests/unit/config_test tests/unit/inbox_test tests/unit/waiters_test \
	tests/unit/envelope_test tests/unit/peer_order_test
tests_unit_config_test_SOURCES = tests/unit/config_test.c
tests_unit_inbox_test_SOURCES = tests/unit/inbox_test.c
tests_unit_waiters_test_SOURCES = tests/unit/waiters_test.c
tests_unit_envelope_test_SOURCES = tests/unit/envelope_test.c
tests_unit_peer_order_test_SOURCES = tests/unit/peer_order_test.c
TESTS += tests/unit/config_test tests/unit/inbox_test tests/unit/waiters_test \
	tests/unit/envelope_test tests/unit/peer_order_test
# the apply path against a real kv (node_apply_batch, no Raft core needed)
check_PROGRAMS += tests/unit/apply_test
tests_unit_apply_test_SOURCES = tests/unit/apply_test.c tests/unit/kv_fixture.c tests/unit/kv_fixture.h
TESTS += tests/unit/apply_test

check_PROGRAMS += tests/unit/corrupt_check_test
tests_unit_corrupt_check_test_SOURCES = tests/unit/corrupt_check_test.c
TESTS += tests/unit/corrupt_check_test
