/* civetweb_hello.c -- the yardstick for `make bench-services`: the smallest civetweb server answering GET /.
 *
 *   civetweb_hello PORT
 *
 * Same civetweb as a service, keep-alive and TCP_NODELAY, one write per
 * answer, 32 workers (a service's 1024 and its limits made no difference
 * here), no logging: what the hardware and the HTTP library allow, so that
 * a service's GET / can be compared to it.
 */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "bench_server.h"

static int hello(struct mg_connection *conn, void *data)
{
    (void)data;
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                 "Content-Length: 19\r\nConnection: keep-alive\r\n\r\n"
                                 "hello from civetweb";
    mg_write(conn, answer, sizeof answer - 1);
    return 200;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    static const bench_route routes[] = { { "/$", hello } };
    return bench_serve("civetweb_hello", argv[1], "32", routes, sizeof routes / sizeof routes[0]);
}
