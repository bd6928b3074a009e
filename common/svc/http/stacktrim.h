/* stacktrim.h -- a worker thread gives back the stack pages its last connection touched. */
#ifndef SVC_STACKTRIM_H
#define SVC_STACKTRIM_H

/* Returns to the kernel the pages of the calling thread's stack below its
 * current frame (less a margin), which hold nothing once its connection is
 * closed. civetweb hands connections to its workers (THREADS) in turn, so
 * without this every worker keeps the deepest stack any connection ever
 * touched in it, and a service's RSS climbs for as long as new connections
 * come (~100 KB per worker; docs/database.md, "Memory"). Costs one
 * madvise() per closed connection, and the page faults of touching the
 * stack again on the next one. A no-op under ThreadSanitizer and where the
 * thread's stack cannot be found. This function can't fail. */
void stack_trim(void);

#endif
