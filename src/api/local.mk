# api module: sources and tests (see Makefile.am)
libraftkv_a_SOURCES += src/api/api.h src/api/api_int.h src/api/server.c src/api/reply.c src/api/input.h src/api/input.c src/api/stream.h src/api/stream.c \
	src/api/route.c src/api/pct.c src/api/params.c src/api/json.c src/api/json_out.c src/api/b64.c \
	src/api/h_kv.c src/api/h_txn.c src/api/txn_parse.c src/api/h_cluster.c \
	src/api/h_lease.c src/api/waitline.h src/api/waitline.c src/api/h_lock.c \
	src/api/h_election.c src/api/h_observe.c src/api/h_watch.c

check_PROGRAMS += tests/unit/route_test tests/unit/api_test
tests_unit_route_test_SOURCES = tests/unit/route_test.c
tests_unit_api_test_SOURCES = tests/unit/api_test.c tests/unit/fake_node.c
TESTS += tests/unit/route_test tests/unit/api_test
