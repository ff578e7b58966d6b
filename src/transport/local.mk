# transport module: sources and tests (see Makefile.am)
libraftkv_a_SOURCES += src/transport/transport.h src/transport/transport_int.h \
	src/transport/codec.c src/transport/msg_copy.c src/transport/snap_header.c \
	src/transport/curl_util.c src/transport/snap_send.c src/transport/sender.c \
	src/transport/answers.c src/transport/peer_work.c \
	src/transport/snap_recv.c src/transport/peer_server.c src/transport/info_client.c \
	src/transport/transport.c

check_PROGRAMS += tests/unit/codec_test tests/unit/transport_test
tests_unit_codec_test_SOURCES = tests/unit/codec_test.c tests/unit/msg_eq.h
tests_unit_transport_test_SOURCES = tests/unit/transport_test.c tests/unit/msg_eq.h \
	tests/alloc_wrap.c tests/alloc_wrap.h
# the listeners' out-of-memory sweep fails their allocations one at a time
tests_unit_transport_test_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=malloc -Wl,--wrap=calloc \
	-Wl,--wrap=realloc
TESTS += tests/unit/codec_test tests/unit/transport_test
