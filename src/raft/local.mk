# raft module: the pure consensus core and its deterministic tests
libraftkv_a_SOURCES += src/raft/raft.h src/raft/raft_int.h src/raft/raft.c src/raft/ready.c \
	src/raft/query.c src/raft/log.c src/raft/progress.c src/raft/msg.c \
	src/raft/election.c src/raft/replication.c src/raft/read_index.c \
	src/raft/transfer.c src/raft/membership.c

check_PROGRAMS += tests/raft/features_test tests/raft/sim_test
# the fixture: fixture.h is its public header, fx_int.h its private one
RAFT_FIXTURE = tests/raft/fixture.h tests/raft/fx_int.h tests/raft/fixture.c \
	tests/raft/fx_node.c tests/raft/fx_disk.c tests/raft/fx_net.c \
	tests/raft/fx_check.c tests/raft/fx_schedule.c tests/raft/fx_byzantine.c \
	tests/raft/fx_nomem.c
tests_raft_features_test_SOURCES = tests/raft/features_test.c $(RAFT_FIXTURE)
tests_raft_sim_test_SOURCES = tests/raft/sim_test.c $(RAFT_FIXTURE) tests/alloc_wrap.c \
	tests/alloc_wrap.h
# out of memory in the core (fx_nomem.c): the sim routes allocations through it
tests_raft_sim_test_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc -Wl,--wrap=calloc -Wl,--wrap=realloc
TESTS += tests/raft/features_test tests/raft/sim_test

check_PROGRAMS += tests/raft/peer_input_test
tests_raft_peer_input_test_SOURCES = tests/raft/peer_input_test.c
TESTS += tests/raft/peer_input_test

check_PROGRAMS += tests/raft/ready_test
tests_raft_ready_test_SOURCES = tests/raft/ready_test.c
TESTS += tests/raft/ready_test
