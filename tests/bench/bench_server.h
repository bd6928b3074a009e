/* bench_server.h -- the main of the benchmark's small civetweb servers (civetweb_hello.c, otlp_sink.c).
 *
 * bench_serve() listens on port with threads workers, keep-alive and
 * TCP_NODELAY (as a service), serves routes until SIGTERM or SIGINT, then
 * stops. Returns the process's exit code: 0, or 1 when it cannot listen.
 */
#ifndef BENCH_SERVER_H
#define BENCH_SERVER_H

#include <civetweb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

typedef struct bench_route {
    const char *uri;          /* civetweb's pattern, e.g. "/v1/traces$" */
    mg_request_handler handler;
} bench_route;

static inline int bench_serve(const char *name, const char *port, const char *threads,
                              const bench_route *routes, int nroutes)
{
    const char *options[] = { "listening_ports", port, "num_threads", threads,
                              "enable_keep_alive", "yes", "tcp_nodelay", "1", NULL };
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct mg_callbacks callbacks = { 0 };
    struct mg_context *ctx = mg_start(&callbacks, NULL, options);
    if (!ctx) {
        fprintf(stderr, "%s: cannot listen on %s\n", name, port);
        return 1;
    }
    for (int i = 0; i < nroutes; i++)
        mg_set_request_handler(ctx, routes[i].uri, routes[i].handler, NULL);
    int sig;
    sigwait(&set, &sig);
    mg_stop(ctx);
    return 0;
}

#endif
