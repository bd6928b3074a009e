/* logwriter.c -- the log's writer: whole lines from many threads to stdout, in order, in few writes.
 *
 * Every line is formatted whole, then appended to a queue that a writer
 * thread empties into stdout: lines from worker threads never interleave,
 * and under load one write() carries many lines instead of one system call
 * per request (that call cost a tenth of GET /'s throughput).
 *
 * The queue is split in LOG_SHARDS shards, each with its own lock; a thread
 * always appends to the same shard. With one lock, 32 workers and the
 * writer queued on it at 30k lines a second, and whenever the writer was
 * preempted holding it every worker waited: the futex calls of that lock
 * were the largest cost of a logged GET / after the socket. Each line
 * carries a sequence number taken under its shard's lock, and the writer
 * merges the shards by it, so lines leave in the order they were logged
 * (lines logged within microseconds of each other, on either side of the
 * writer taking the shards, may swap).
 *
 * The writer wakes when a line is queued and gathers for a millisecond, so
 * a line reaches stdout within about a millisecond; each write() ends on a
 * line boundary and carries at most PIPE_BUF bytes, so lines from several
 * processes sharing one pipe or terminal (`make run`) stay whole. A full
 * shard makes the logging thread wait: lines are never dropped. The queue
 * is flushed at exit.
 *
 * A line that comes after a quiet millisecond, with the writer idle and
 * nothing queued, is written by its own thread at once instead: a service
 * answering a request every few milliseconds would otherwise wake the
 * writer twice per line. With it, the three services of a chain request at
 * one connection were switched in 14–16 times instead of 21.5 (`perf stat -e
 * context-switches`), and the request spent ~0.07 ms less beyond its
 * database writes. While stdout blocks (a terminal paused), such a write
 * holds the writer's lock, so the services wait sooner than a full queue
 * would make them.
 */
#include "logwriter.h"

#include "monotime.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *log_prefix = ""; /* before every line (LOG_PREFIX) */

/* The queue's shards, and the bytes each holds before a logging thread
 * waits for the writer (a record is a sequence number, a length and the
 * line with its prefix and newline). */
#define LOG_SHARDS      8
#define LOG_SHARD_BYTES (64 * 1024)
#define LOG_REC_HEAD    (sizeof(uint64_t) + sizeof(uint32_t))

/* One shard: the records that threads appended since the writer last took it. */
typedef struct {
    pthread_mutex_t lock;
    char *pending, *spare;  /* LOG_SHARD_BYTES each */
    _Atomic size_t len;     /* bytes queued in pending; written under lock */
    char pad[64];           /* a shard per cache line, or so */
} log_shard;

/* The queue between the threads that log and the writer thread. */
static struct {
    log_shard shard[LOG_SHARDS];
    pthread_mutex_t lock;  /* the writer's state: wake, room, writing */
    pthread_cond_t wake;   /* lines queued, or stop */
    pthread_cond_t room;   /* the writer took the shards, or wrote them */
    atomic_bool idle;      /* the writer waits for a line: wake it */
    bool writing;          /* the writer holds taken lines not yet written */
    atomic_bool running;   /* the writer thread exists */
    atomic_bool stop;
    atomic_uint_fast64_t seq;   /* the next line's sequence number */
    atomic_uint next_shard;     /* the shard the next new thread takes */
    _Atomic int64_t last_ns;    /* CLOCK_MONOTONIC when lines were last taken or written at once */
    char *out;             /* the merged batch: LOG_SHARDS * LOG_SHARD_BYTES */
    pthread_t thread;
} log_q = { .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER,
            .room = PTHREAD_COND_INITIALIZER };

/* How long the writer gathers lines after the first one wakes it. */
#define LOG_GATHER_NS 1000000

/* Writes n bytes of whole lines to stdout, in pieces of at most PIPE_BUF
 * bytes that end on a newline (a longer line goes alone). */
static void log_out(const char *p, size_t n)
{
    while (n > 0) {
        size_t chunk = n;
        if (chunk > PIPE_BUF) {
            chunk = PIPE_BUF;
            while (chunk > 0 && p[chunk - 1] != '\n')
                chunk--;
            if (chunk == 0) {
                const char *nl = memchr(p, '\n', n);
                chunk = nl ? (size_t)(nl - p) + 1 : n;
            }
        }
        ssize_t w = write(STDOUT_FILENO, p, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* stdout is gone: nothing more can be logged */
        p += w;
        n -= (size_t)w;
    }
}

/* Whether any shard holds a line. */
static bool log_any_queued(void)
{
    for (int i = 0; i < LOG_SHARDS; i++)
        if (atomic_load(&log_q.shard[i].len) > 0)
            return true;
    return false;
}

/* Takes every shard's records (each shard's lock held for a pointer swap)
 * and merges them by sequence number into log_q.out. Returns the bytes
 * merged. */
static size_t log_take(void)
{
    const char *at[LOG_SHARDS], *end[LOG_SHARDS];
    for (int i = 0; i < LOG_SHARDS; i++) {
        log_shard *sh = &log_q.shard[i];
        pthread_mutex_lock(&sh->lock);
        char *taken = sh->pending;
        size_t n = atomic_load(&sh->len);
        sh->pending = sh->spare;
        sh->spare = taken;
        atomic_store(&sh->len, 0);
        pthread_mutex_unlock(&sh->lock);
        at[i] = taken;
        end[i] = taken + n;
    }
    size_t out = 0;
    for (;;) {
        int min = -1;
        uint64_t min_seq = 0;
        for (int i = 0; i < LOG_SHARDS; i++) {
            if (at[i] == end[i])
                continue;
            uint64_t seq;
            memcpy(&seq, at[i], sizeof seq);
            if (min < 0 || seq < min_seq) {
                min = i;
                min_seq = seq;
            }
        }
        if (min < 0)
            return out;
        uint32_t len;
        memcpy(&len, at[min] + sizeof(uint64_t), sizeof len);
        memcpy(log_q.out + out, at[min] + LOG_REC_HEAD, len);
        out += len;
        at[min] += LOG_REC_HEAD + len;
    }
}

/* The writer thread: sleeps until a line is queued, gives the others a
 * millisecond to add theirs, then takes the shards and writes the merged
 * batch. Under load that is at most a thousand wake-ups and writes a
 * second, whatever the number of lines. */
static void *log_writer(void *arg)
{
    (void)arg;
    const struct timespec gather = { 0, LOG_GATHER_NS };
    pthread_mutex_lock(&log_q.lock);
    for (;;) {
        if (!log_any_queued()) {
            if (atomic_load(&log_q.stop))
                break;
            /* idle before the second look: a thread that queues after the
             * look sees idle set and signals (under the lock, so not before
             * the wait below has begun). */
            atomic_store(&log_q.idle, true);
            if (!log_any_queued())
                while (atomic_load(&log_q.idle) && !atomic_load(&log_q.stop))
                    pthread_cond_wait(&log_q.wake, &log_q.lock);
            atomic_store(&log_q.idle, false);
            continue;
        }
        bool stopping = atomic_load(&log_q.stop);
        log_q.writing = true;
        pthread_mutex_unlock(&log_q.lock);
        if (!stopping)
            nanosleep(&gather, NULL);
        size_t n = log_take();
        atomic_store(&log_q.last_ns, mono_ns());
        pthread_mutex_lock(&log_q.lock);
        pthread_cond_broadcast(&log_q.room);
        pthread_mutex_unlock(&log_q.lock);
        log_out(log_q.out, n);
        pthread_mutex_lock(&log_q.lock);
        log_q.writing = false;
        pthread_cond_broadcast(&log_q.room);
    }
    pthread_mutex_unlock(&log_q.lock);
    return NULL;
}

/* Writes what is queued and stops the writer (at exit). */
static void log_stop(void)
{
    pthread_mutex_lock(&log_q.lock);
    bool running = atomic_load(&log_q.running);
    atomic_store(&log_q.stop, true);
    pthread_cond_signal(&log_q.wake);
    pthread_mutex_unlock(&log_q.lock);
    if (running)
        pthread_join(log_q.thread, NULL);
    atomic_store(&log_q.running, false);
}

/* Waits, holding log_q.lock, until the writer has written every queued
 * line (at once when there is no writer or it stopped). */
static void log_drain_locked(void)
{
    while (atomic_load(&log_q.running) && !atomic_load(&log_q.stop) &&
           (log_any_queued() || log_q.writing)) {
        atomic_store(&log_q.idle, false);
        pthread_cond_signal(&log_q.wake);
        pthread_cond_wait(&log_q.room, &log_q.lock);
    }
}

void logwriter_flush(void)
{
    pthread_mutex_lock(&log_q.lock);
    log_drain_locked();
    pthread_mutex_unlock(&log_q.lock);
    fflush(stdout);
}

/* Starts the writer thread with every signal blocked (the services take
 * SIGTERM with sigwait() in the main thread). Without it (out of memory),
 * lines are written directly. */
static void log_start(void)
{
    for (int i = 0; i < LOG_SHARDS; i++) {
        log_shard *sh = &log_q.shard[i];
        pthread_mutex_init(&sh->lock, NULL);
        sh->pending = malloc(LOG_SHARD_BYTES);
        sh->spare = malloc(LOG_SHARD_BYTES);
        if (!sh->pending || !sh->spare)
            return;
    }
    log_q.out = malloc((size_t)LOG_SHARDS * LOG_SHARD_BYTES);
    if (!log_q.out)
        return;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    bool ok = pthread_create(&log_q.thread, NULL, log_writer, NULL) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    atomic_store(&log_q.running, ok);
    if (ok)
        atexit(log_stop);
}
void logwriter_init(const char *prefix)
{
    log_prefix = prefix ? prefix : "";
    if (!atomic_load(&log_q.running))
        log_start();
}

/* Writes the prefix, line and a newline straight to stdout, after what is
 * queued so that lines keep their order (no writer thread, a line longer
 * than a shard, or after the writer stopped). */
static void log_write_direct(const char *line)
{
    pthread_mutex_lock(&log_q.lock);
    log_drain_locked();
    fputs(log_prefix, stdout);
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&log_q.lock);
}

/* Waits until shard sh has rec bytes free, waking the writer to take it. */
static void log_wait_room(log_shard *sh, size_t rec)
{
    pthread_mutex_lock(&log_q.lock);
    while (atomic_load(&sh->len) + rec > LOG_SHARD_BYTES && !atomic_load(&log_q.stop)) {
        atomic_store(&log_q.idle, false);
        pthread_cond_signal(&log_q.wake);
        pthread_cond_wait(&log_q.room, &log_q.lock);
    }
    pthread_mutex_unlock(&log_q.lock);
}

/* Writes the prefix, line and a newline at once, from the calling thread,
 * when the log has been quiet for a gathering interval: the writer is idle,
 * nothing is queued, and no line was taken or written within LOG_GATHER_NS.
 * Returns false (nothing written) otherwise, and the line is queued. A
 * service answering a request every few milliseconds then writes each line
 * with one write() of its own, instead of waking the writer, which would
 * sleep the gathering interval and wake again to write it: two wake-ups of
 * another thread per request, on a machine where a wake-up costs tens of
 * microseconds. Under load lines come closer together and are gathered as
 * before; what a line costs then is one load of the idle flag. */
static bool log_write_quiet(const char *line, size_t plen, size_t llen)
{
    if (!atomic_load(&log_q.idle))
        return false;
    int64_t now = mono_ns();
    if (now - atomic_load(&log_q.last_ns) < LOG_GATHER_NS)
        return false;
    char buf[2048];
    if (plen + llen + 1 > sizeof buf)
        return false;
    memcpy(buf, log_prefix, plen);
    memcpy(buf + plen, line, llen);
    buf[plen + llen] = '\n';
    pthread_mutex_lock(&log_q.lock);
    /* Under the writer's lock, with the writer still idle, it holds no taken
     * lines and takes none until this one is out; a line queued before this
     * look, or written at once by another thread since, sends this one to
     * the queue behind it. */
    bool quiet = atomic_load(&log_q.idle) && !log_q.writing && !log_any_queued() &&
                 now - atomic_load(&log_q.last_ns) >= LOG_GATHER_NS;
    if (quiet) {
        log_out(buf, plen + llen + 1);
        atomic_store(&log_q.last_ns, mono_ns());
    }
    pthread_mutex_unlock(&log_q.lock);
    return quiet;
}

/* Queues the prefix, line and a newline as one record in this thread's shard. */
void logwriter_line(const char *line)
{
    static _Thread_local int shard = -1;
    size_t plen = strlen(log_prefix), llen = strlen(line), total = plen + llen + 1;
    size_t rec = LOG_REC_HEAD + total;
    if (!atomic_load(&log_q.running) || atomic_load(&log_q.stop) || rec > LOG_SHARD_BYTES) {
        log_write_direct(line);
        return;
    }
    if (log_write_quiet(line, plen, llen))
        return;
    if (shard < 0)
        shard = (int)(atomic_fetch_add(&log_q.next_shard, 1) % LOG_SHARDS);
    log_shard *sh = &log_q.shard[shard];
    pthread_mutex_lock(&sh->lock);
    while (atomic_load(&sh->len) + rec > LOG_SHARD_BYTES) {
        pthread_mutex_unlock(&sh->lock);
        log_wait_room(sh, rec);
        if (atomic_load(&log_q.stop)) {
            log_write_direct(line);
            return;
        }
        pthread_mutex_lock(&sh->lock);
    }
    uint64_t seq = atomic_fetch_add(&log_q.seq, 1);
    uint32_t len32 = (uint32_t)total;
    char *p = sh->pending + atomic_load(&sh->len);
    memcpy(p, &seq, sizeof seq);
    memcpy(p + sizeof seq, &len32, sizeof len32);
    p += LOG_REC_HEAD;
    memcpy(p, log_prefix, plen);
    memcpy(p + plen, line, llen);
    p[plen + llen] = '\n';
    atomic_store(&sh->len, atomic_load(&sh->len) + rec);
    pthread_mutex_unlock(&sh->lock);
    /* One wake-up per idle spell: the first thread to see the writer idle
     * clears the flag and signals; the others need not. */
    if (atomic_load(&log_q.idle) && atomic_exchange(&log_q.idle, false)) {
        pthread_mutex_lock(&log_q.lock);
        pthread_cond_signal(&log_q.wake);
        pthread_mutex_unlock(&log_q.lock);
    }
}

