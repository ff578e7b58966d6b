/* http_floor: the cheapest HTTP/1.1 server this machine can run, to measure
 * the ceiling any key-value server's GET throughput and latency sit under
 * here (loopback TCP, wrk on the same cores). It owns nothing of raftkv and
 * must never be used for anything but that measurement: it answers every
 * request, whatever it asks, with the same 200 and a fixed JSON body of
 * about the size of a raftkv GET answer, and stores nothing.
 *
 * usage: http_floor PORT [THREADS]   (THREADS epoll loops, default 2,
 * each with its own SO_REUSEPORT listener; connections stay open, pipelined
 * requests are answered in one write, bodies sized by Content-Length are
 * read and discarded). Runs until killed. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define IN_CAP 16384

typedef struct {
    int fd;
    size_t len;  /* bytes buffered in in[] */
    size_t skip; /* body bytes of the current request still to discard */
    char in[IN_CAP];
} conn;

static char answer[1024];
static size_t answer_len;
static int port;

static void make_answer(void)
{
    char body[512];
    int blen = snprintf(body, sizeof body,
                        "{\"header\":{\"revision\":10001,\"raft_term\":2,\"member_id\":1,"
                        "\"cluster_id\":5717461856437064},\"kvs\":[{\"key\":\"bench-1\","
                        "\"create_revision\":2,\"mod_revision\":2,\"version\":1,\"value\":\"%0256d\"}],"
                        "\"count\":1}",
                        0);
    answer_len = (size_t)snprintf(answer, sizeof answer,
                                  "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %d\r\n\r\n%s",
                                  blen, body);
}

/* Content-Length of the head in [p, end), 0 if none. */
static size_t body_length(const char *p, const char *end)
{
    static const char name[] = "\r\ncontent-length:";
    size_t nl = sizeof name - 1;
    for (; p + nl < end; p++) {
        if (strncasecmp(p, name, nl) == 0)
            return strtoul(p + nl, NULL, 10);
    }
    return 0;
}

/* Answers every whole request in c->in; returns -1 if the peer must go. */
static int serve(conn *c)
{
    char out[64 * 1024];
    size_t olen = 0, off = 0;
    for (;;) {
        if (c->skip) {
            size_t take = c->len - off < c->skip ? c->len - off : c->skip;
            off += take;
            c->skip -= take;
            if (c->skip)
                break;
        }
        char *head = c->in + off;
        char *eoh = memmem(head, c->len - off, "\r\n\r\n", 4);
        if (!eoh)
            break;
        c->skip = body_length(head, eoh + 2);
        off = (size_t)(eoh + 4 - c->in);
        if (olen + answer_len > sizeof out)
            return -1; /* more pipelined requests than one write holds */
        memcpy(out + olen, answer, answer_len);
        olen += answer_len;
    }
    memmove(c->in, c->in + off, c->len - off);
    c->len -= off;
    if (c->len == sizeof c->in)
        return -1; /* a head larger than the buffer */
    if (olen && send(c->fd, out, olen, MSG_NOSIGNAL) != (ssize_t)olen)
        return -1; /* a client that does not read its answers is dropped */
    return 0;
}

static int listen_on(void)
{
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0) {
        perror("http_floor: listen");
        exit(1);
    }
    return fd;
}

static void drop(int ep, conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void accept_all(int ep, int lfd)
{
    int fd, one = 1;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        conn *c = calloc(1, sizeof *c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (!c || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            free(c);
            close(fd);
            continue;
        }
        c->fd = fd;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
}

static void *loop(void *arg)
{
    (void)arg;
    int lfd = listen_on(), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("http_floor: epoll");
        exit(1);
    }
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c) {
                accept_all(ep, lfd);
                continue;
            }
            ssize_t got = recv(c->fd, c->in + c->len, sizeof c->in - c->len, 0);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                drop(ep, c);
                continue;
            }
            if (got > 0) {
                c->len += (size_t)got;
                if (serve(c) < 0)
                    drop(ep, c);
            }
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (port = atoi(argv[1])) <= 0 || port > 65535) {
        fprintf(stderr, "usage: http_floor PORT [THREADS]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : 2;
    if (threads < 1 || threads > 64)
        threads = 2;
    make_answer();
    pthread_t t;
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&t, NULL, loop, NULL) != 0) {
            perror("http_floor: thread");
            return 1;
        }
    }
    loop(NULL);
    return 0;
}
