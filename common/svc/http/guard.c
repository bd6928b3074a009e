/* guard.c -- the accept-time connection cap in front of civetweb.
 *
 * civetweb 1.15 serves a connection on one worker thread from accept to
 * close. When every worker is held (slow clients, a flood), its master
 * thread waits for queue space and stops accepting, and a new client waits
 * in the kernel's backlog with no answer at all. civetweb has no hook at
 * accept time, so this file defines accept() itself: civetweb's call to
 * accept() binds to the executable's definition first (the ordinary ELF
 * lookup order), which takes the connection with accept4() and counts it.
 * Past the cap it answers 503 with Retry-After in one non-blocking send,
 * closes, and reports EAGAIN, which civetweb's accept loop ignores. The
 * count goes down in civetweb's connection_closed callback, which runs for
 * every connection a worker took (process_new_connection always ends in
 * close_connection), so it cannot drift while the server runs.
 *
 * At the cap, a slow client gives way first: when wire.c finds a connection
 * that has kept its worker waiting for the rest of a head or body (the
 * longest waiting one, cut by wire_cut_slowest()), the new connection is
 * taken in its place, and the count runs over the cap by the cut ones until
 * their workers close them (a few milliseconds: they are woken at once).
 *
 * The services accept nothing else; libcurl and libmongoc only connect.
 */
#include "guard.h"
#include "wire.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int guard_max;
static atomic_int guard_count;
static atomic_long guard_refusals;
static char guard_answer[512];
static size_t guard_answer_len;

void guard_init(int max, int retry_after_s, const char *service)
{
    char body[256];
    int blen = snprintf(body, sizeof body,
                        "{\"error\":\"%s is at its connection limit (%d); try again\","
                        "\"status\":503,\"service\":\"%s\"}",
                        service, max, service);
    int n = snprintf(guard_answer, sizeof guard_answer,
                     "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\nRetry-After: %d\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n%s",
                     blen, retry_after_s, body);
    guard_answer_len = n > 0 && (size_t)n < sizeof guard_answer ? (size_t)n : 0;
    atomic_store(&guard_count, 0);
    atomic_store(&guard_refusals, 0);
    atomic_store(&guard_max, max);
}

void guard_closed(const struct mg_connection *conn)
{
    (void)conn;
    if (atomic_load(&guard_max) > 0)
        atomic_fetch_sub(&guard_count, 1);
}

int guard_open(void)
{
    return atomic_load(&guard_count);
}

long guard_refused(void)
{
    return atomic_load(&guard_refusals);
}

/* Answers fd 503 and closes it. Whatever the client already sent is read
 * first, without waiting, so that the close does not turn into a reset that
 * could destroy the answer before the client reads it. */
static void guard_refuse(int fd)
{
    if (guard_answer_len)
        (void)send(fd, guard_answer, guard_answer_len, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(fd, SHUT_WR);
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0; i++)
        ;
    close(fd);
    atomic_fetch_add(&guard_refusals, 1);
}

/* See the top of the file: civetweb's accept() lands here. Returns the new
 * descriptor, or -1 with errno (EAGAIN for a refused connection). */
int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int c = accept4(fd, addr, len, 0);
    int max = atomic_load(&guard_max);
    if (c < 0)
        return c;
    if (max <= 0) {
        wire_accepted(c);
        return c;
    }
    if (atomic_fetch_add(&guard_count, 1) >= max && !wire_cut_slowest(false)) {
        atomic_fetch_sub(&guard_count, 1);
        guard_refuse(c);
        errno = EAGAIN;
        return -1;
    }
    wire_accepted(c);
    return c;
}
