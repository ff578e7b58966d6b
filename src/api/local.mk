# api module: sources and tests (see Makefile.am)
# core: listener and request life, replies, JSON, reading requests, streams
libraftkv_a_SOURCES += src/api/api.h src/api/api_int.h src/api/server.c src/api/route.c \
	src/api/reply.c src/api/json.c src/api/json_out.c src/api/b64.c src/api/pct.c \
	src/api/input.h src/api/input.c src/api/params.c src/api/stream.h src/api/stream.c \
	src/api/txn_parse.c src/api/conn_guard.c
# handlers of the kv, lease, watch and cluster routes
libraftkv_a_SOURCES += src/api/h_kv.c src/api/h_txn.c src/api/h_lease.c src/api/h_watch.c \
	src/api/h_cluster.c src/api/h_maint.c src/api/h_auth.c src/api/h_backup.c src/api/offthread.c src/api/auth_gate.c src/api/auth_parse.c
# etcd's v3 JSON gateway over the same store
libraftkv_a_SOURCES += src/api/v3/gw.h src/api/v3/gw.c src/api/v3/gw_kv.c src/api/v3/gw_lease.c \
	src/api/v3/gw_cluster.c src/api/v3/gw_watch.c src/api/v3/gw_lock.c src/api/v3/gw_auth.c src/api/v3/gw_election.c src/api/v3/gw_maint.c
# recipes: lock and election (etcd's v3lock, v3election) on a wait line
libraftkv_a_SOURCES += src/api/recipes/waitline.h src/api/recipes/waitline.c \
	src/api/recipes/h_lock.c src/api/recipes/h_election.c src/api/recipes/h_observe.c

check_PROGRAMS += tests/unit/route_test tests/unit/api_test
tests_unit_route_test_SOURCES = tests/unit/route_test.c
tests_unit_api_test_SOURCES = tests/unit/api_test.c tests/unit/fake_node.c tests/alloc_wrap.c \
	tests/alloc_wrap.h
# the out-of-memory sweep fails the server's allocations one at a time
tests_unit_api_test_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
TESTS += tests/unit/route_test tests/unit/api_test
