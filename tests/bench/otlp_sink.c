/* otlp_sink.c -- a collector that throws spans away, for `make bench-services`'s tracing case.
 *
 *   otlp_sink PORT
 *
 * Answers POST /v1/traces with 200 and "{}" (an OTLP/HTTP export response
 * with nothing rejected) once it has read the whole body, and keeps no span:
 * a service exporting to it pays everything tracing costs it (recording,
 * queueing, encoding, sending) while the collector's own work is next to
 * nothing, so that the cost of the services and the cost of a real collector
 * (Jaeger) sharing their CPUs can be told apart. GET /stats answers
 * "posts N bytes M": the batches and body bytes taken so far.
 */
#include <civetweb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bench_server.h"

static atomic_ullong posts, bytes;

static int take(struct mg_connection *conn, void *data)
{
    (void)data;
    if (strcmp(mg_get_request_info(conn)->request_method, "POST") != 0) {
        mg_send_http_error(conn, 405, "POST only");
        return 405;
    }
    char buf[65536];
    unsigned long long n = 0;
    int got;
    while ((got = mg_read(conn, buf, sizeof buf)) > 0)
        n += (unsigned long long)got;
    atomic_fetch_add(&posts, 1);
    atomic_fetch_add(&bytes, n);
    static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 2\r\nConnection: keep-alive\r\n\r\n{}";
    mg_write(conn, answer, sizeof answer - 1);
    return 200;
}

static int stats(struct mg_connection *conn, void *data)
{
    (void)data;
    char body[80], head[160];
    int n = snprintf(body, sizeof body, "posts %llu bytes %llu\n", atomic_load(&posts),
                     atomic_load(&bytes));
    int h = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %d\r\nConnection: keep-alive\r\n\r\n", n);
    mg_write(conn, head, (size_t)h);
    mg_write(conn, body, (size_t)n);
    return 200;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    static const bench_route routes[] = { { "/v1/traces$", take }, { "/stats$", stats } };
    return bench_serve("otlp_sink", argv[1], "8", routes, sizeof routes / sizeof routes[0]);
}
