# raft module: the pure consensus core and its deterministic tests
libraftkv_a_SOURCES += src/raft/raft.h

check_PROGRAMS += tests/raft/features_test tests/raft/sim_test
tests_raft_features_test_SOURCES = tests/raft/features_test.c tests/raft/fixture.c tests/raft/fixture.h
tests_raft_sim_test_SOURCES = tests/raft/sim_test.c tests/raft/fixture.c tests/raft/fixture.h
TESTS += tests/raft/features_test tests/raft/sim_test
