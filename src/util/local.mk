# util module
libraftkv_a_SOURCES += src/util/util.h src/util/log.c src/util/buf.c src/util/misc.c \
	src/util/fsync_path.c
