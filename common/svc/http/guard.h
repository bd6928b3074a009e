/* guard.h -- the accept-time connection cap in front of civetweb. */
#ifndef SVC_GUARD_H
#define SVC_GUARD_H

#include <civetweb.h>

/* Arms the cap: from now on, a connection accepted while max connections
 * are open is answered 503 with Retry-After: retry_after_s and a JSON error
 * naming service, then closed, without reaching civetweb's queue. max <= 0
 * disarms it. service must outlive the guard. Call before mg_start2(). */
void guard_init(int max, int retry_after_s, const char *service);

/* civetweb's connection_closed callback: counts a connection out. */
void guard_closed(const struct mg_connection *conn);

/* Connections accepted and not yet closed. */
int guard_open(void);

/* Connections refused with 503 since guard_init(). */
long guard_refused(void);

#endif
