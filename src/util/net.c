/* net: turning a listen host from the command line into a socket address,
 * for the client and the peer listeners alike. Must never open a socket. */
#include "util/util.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* "[::1]" as written in URLs is "::1" to getaddrinfo. */
static void strip_brackets(const char *host, char *out, size_t cap)
{
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']')
        snprintf(out, cap, "%.*s", (int)(n - 2), host + 1);
    else
        snprintf(out, cap, "%s", host);
}

int net_listen_addr(const char *host, uint16_t port, struct sockaddr_storage *ss, char *err,
                    size_t errlen)
{
    char name[256] = "";
    if (host)
        strip_brackets(host, name, sizeof name);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(name[0] ? name : NULL, "0", &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve listen address %s: %s", name, gai_strerror(rc));
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    freeaddrinfo(res);
    return 0;
}
