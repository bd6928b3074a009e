/* logwriter.h -- the log's writer: whole lines to stdout from any thread, in the order they came (logwriter.c). Internal to log.c. */
#ifndef SVC_LOGWRITER_H
#define SVC_LOGWRITER_H

/* Sets the prefix written before every line (NULL = none; it must outlive
 * the writer) and starts the writer thread if it is not running; without
 * one (out of memory) lines are written directly. Call before any other
 * logwriter_ function. This function can't fail. */
void logwriter_init(const char *prefix);

/* Writes the prefix, line and a newline to stdout, whole and after every
 * line written before it: queued for the writer thread, or at once when
 * the log has been quiet. Waits while the queue is full (never drops a
 * line). Thread-safe. */
void logwriter_line(const char *line);

/* Returns once every line written before the call is on stdout.
 * Thread-safe; at once when the writer thread is not running. */
void logwriter_flush(void);

#endif
