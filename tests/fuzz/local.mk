# fuzz: libFuzzer harnesses, one per parser of outside input (see
# docs/TESTING.md, "Fuzzing"). Built only by configure --enable-fuzzing
# (CC=clang), which also instruments the library; scripts/fuzz builds them
# into build-fuzz/ with `make fuzz-build` and runs each over its corpus.
FUZZ_PROGS = tests/fuzz/fuzz_codec tests/fuzz/fuzz_snap_header tests/fuzz/fuzz_pct \
	tests/fuzz/fuzz_query tests/fuzz/fuzz_b64 tests/fuzz/fuzz_txn \
	tests/fuzz/fuzz_envelope tests/fuzz/fuzz_kv_cmd \
	tests/fuzz/fuzz_raft tests/fuzz/fuzz_auth tests/fuzz/fuzz_body
EXTRA_DIST += tests/fuzz/corpus tests/fuzz/regress tests/fuzz/fuzz.h tests/fuzz/stubs.h

if FUZZING
noinst_PROGRAMS = $(FUZZ_PROGS) tests/fuzz/gen_corpus
fuzz-build: libraftkv.a $(FUZZ_PROGS)
else
fuzz-build:
	@echo "fuzz-build: configure with --enable-fuzzing (CC=clang)" >&2; exit 1
endif
.PHONY: fuzz-build

FUZZ_LINK = $(AM_LDFLAGS) $(FUZZ_LDFLAGS)
tests_fuzz_fuzz_codec_SOURCES = tests/fuzz/fuzz_codec.c
tests_fuzz_fuzz_codec_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_snap_header_SOURCES = tests/fuzz/fuzz_snap_header.c
tests_fuzz_fuzz_snap_header_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_pct_SOURCES = tests/fuzz/fuzz_pct.c
tests_fuzz_fuzz_pct_LDFLAGS = $(FUZZ_LINK)
# stubs.c: libmicrohttpd and the node stubbed for the api's reply path
tests_fuzz_fuzz_query_SOURCES = tests/fuzz/fuzz_query.c tests/fuzz/stubs.c
tests_fuzz_fuzz_query_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_b64_SOURCES = tests/fuzz/fuzz_b64.c
tests_fuzz_fuzz_b64_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_txn_SOURCES = tests/fuzz/fuzz_txn.c
tests_fuzz_fuzz_txn_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_envelope_SOURCES = tests/fuzz/fuzz_envelope.c
tests_fuzz_fuzz_envelope_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_kv_cmd_SOURCES = tests/fuzz/fuzz_kv_cmd.c
tests_fuzz_fuzz_kv_cmd_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_raft_SOURCES = tests/fuzz/fuzz_raft.c
tests_fuzz_fuzz_raft_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_auth_SOURCES = tests/fuzz/fuzz_auth.c
tests_fuzz_fuzz_auth_LDFLAGS = $(FUZZ_LINK)
tests_fuzz_fuzz_body_SOURCES = tests/fuzz/fuzz_body.c tests/fuzz/stubs.c
tests_fuzz_fuzz_body_LDFLAGS = $(FUZZ_LINK)
# writes the seed corpus (scripts/fuzz --seed-corpus); a plain program
tests_fuzz_gen_corpus_SOURCES = tests/fuzz/gen_corpus.c
