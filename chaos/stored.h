/* stored.h -- the documents-stored probe (stored.c). */
#ifndef CHAOS_STORED_H
#define CHAOS_STORED_H

#include "common.h"

/* Checks, after the load, every 200 answer's documents against the database
 * at r->mongo_url: each stored once in its service's collection with the
 * request's id and the outcome answered. Fills r->stored; a database that
 * does not answer makes it skipped (result -1) with the reason. */
void chaos_stored_check(chaos_run *r);

/* Counts, after the load, every request's duplicates: the documents stored
 * beyond one per hop under its trace id (the runner's traceparent), in every
 * service's collection, into each request's duplicates and r->stored's
 * duplicates and counted. A database that does not answer leaves them
 * uncounted, with the reason in r->stored.count_error. */
void chaos_duplicates_count(chaos_run *r);

#endif
