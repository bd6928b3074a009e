/* authlimit.h -- how often each client address may try an admin token: a token bucket per address. */
#ifndef SVC_AUTHLIMIT_H
#define SVC_AUTHLIMIT_H

#include <stdbool.h>
#include <stdint.h>

/* Sets the buckets: each address may try burst tokens at once, then rate
 * tries a second. Forgets every address. Not thread-safe with the calls
 * below: call before the server starts. */
void authlimit_init(double rate_per_s, int burst);

/* Takes one try from addr's bucket at now_ns (monotonic). Returns 0 when
 * the try may go on to the token check, else the whole seconds (at least 1)
 * until the next try would be allowed: answer 429 with that Retry-After.
 * *first_refusal is set on the first refusal since addr's last allowed try
 * (log that one, count the rest). Thread-safe; can't fail (a full table
 * forgets its fullest bucket, which loses nothing). */
int authlimit_take(const char *addr, int64_t now_ns, bool *first_refusal);

/* Gives back the try taken for a right token: only failures are limited. Thread-safe. */
void authlimit_refund(const char *addr);

/* Tries that reached the token check and failed, and tries refused with 429, since start. */
uint64_t authlimit_failures(void);
uint64_t authlimit_refusals(void);

/* Counts one failed try (a missing or wrong token). Thread-safe. */
void authlimit_count_failure(void);

#endif
