/* clock.c -- the breaker's clocks: the system's monotonic clock (read through
 * the invariant TSC where the CPU has one, because clock_gettime costs ~30 ns
 * under a hypervisor and a call reads the clock twice) and a manual clock for tests.
 *
 * The TSC's rate is calibrated against CLOCK_MONOTONIC once per process (over
 * ~10 ms). Each thread keeps its own anchor, a (TSC, CLOCK_MONOTONIC) pair,
 * and reads the time as anchor + ticks since it. A thread re-anchors with one
 * clock_gettime whenever more than TSC_RESYNC_NS of ticks passed since its
 * anchor, or the TSC went backwards. So a TSC that jumps (a virtual machine
 * restored from a snapshot or migrated, a kernel that marked the TSC
 * unstable) misleads the breaker by at most TSC_RESYNC_NS, never for longer:
 * an open timer can never be pushed out of reach. A busy thread pays one
 * clock_gettime per millisecond; an idle one pays it on every read, when it
 * does not matter. Readings never go backwards within a thread. Where the CPU
 * does not advertise an invariant TSC (constant_tsc and nonstop_tsc),
 * clock_gettime is used.
 */
#include "cb_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define CB_HAVE_TSC 1
#endif

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t clock_gettime_now(void *ctx)
{
    (void)ctx;
    return mono_ns();
}

#ifdef CB_HAVE_TSC
/* How long a thread trusts its anchor before it reads CLOCK_MONOTONIC again. */
#define TSC_RESYNC_NS 1000000LL

static struct {
    double ns_per_tick;
    uint64_t resync_ticks;      /* TSC_RESYNC_NS in ticks */
    bool usable;
} tsc;

/* A thread's anchor: the TSC and CLOCK_MONOTONIC read together, and the last
 * time it returned (readings never go backwards). ticks == 0: not anchored. */
static _Thread_local struct {
    uint64_t ticks;
    int64_t mono;
    int64_t last;
} anchor;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

/* True when /proc/cpuinfo advertises an invariant TSC. */
static bool tsc_invariant(void)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return false;
    char line[4096];
    bool constant = false, nonstop = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "flags", 5) != 0)
            continue;
        constant = strstr(line, " constant_tsc") != NULL;
        nonstop = strstr(line, " nonstop_tsc") != NULL;
        break;
    }
    fclose(f);
    return constant && nonstop && getenv("CB_NO_TSC") == NULL;
}

/* Reads CLOCK_MONOTONIC and the TSC as close together as possible. */
static void paired_read(int64_t *mono, uint64_t *ticks)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < 5; i++) {
        int64_t a = mono_ns();
        uint64_t t = __rdtsc();
        int64_t c = mono_ns();
        if (c - a < best) {
            best = c - a;
            *mono = a + (c - a) / 2;
            *ticks = t;
        }
    }
}

static void tsc_calibrate(void)
{
    if (!tsc_invariant())
        return;
    int64_t m0, m1;
    uint64_t t0, t1;
    paired_read(&m0, &t0);
    while (mono_ns() - m0 < 10 * 1000000LL) {
    }
    paired_read(&m1, &t1);
    if (t1 <= t0 || m1 <= m0)
        return;
    tsc.ns_per_tick = (double)(m1 - m0) / (double)(t1 - t0);
    tsc.resync_ticks = (uint64_t)((double)TSC_RESYNC_NS / tsc.ns_per_tick);
    tsc.usable = tsc.resync_ticks > 0;
}

/* CLOCK_MONOTONIC in ns, from the thread's anchor and the TSC; re-anchors when
 * the anchor is older than TSC_RESYNC_NS of ticks or the TSC went backwards
 * (the unsigned difference then wraps past resync_ticks). */
static int64_t tsc_now(void *ctx)
{
    (void)ctx;
    uint64_t t = __rdtsc();
    uint64_t since = t - anchor.ticks;
    int64_t now;
    if (anchor.ticks == 0 || since > tsc.resync_ticks) {
        now = mono_ns();
        anchor.ticks = t;
        anchor.mono = now;
    } else {
        now = anchor.mono + (int64_t)((double)since * tsc.ns_per_tick);
    }
    if (now < anchor.last)
        now = anchor.last;
    anchor.last = now;
    return now;
}
#endif

/* The system's monotonic clock: CLOCK_MONOTONIC, read through the invariant
 * TSC when the CPU has one (set CB_NO_TSC in the environment to force
 * clock_gettime). The first call may take ~10 ms (calibration). Can't fail. */
cb_clock cb_clock_system(void)
{
    cb_clock c = { clock_gettime_now, NULL };
#ifdef CB_HAVE_TSC
    pthread_once(&tsc_once, tsc_calibrate);
    if (tsc.usable)
        c.now_ns = tsc_now;
#endif
    return c;
}

struct cb_manual_clock {
    _Atomic int64_t now_ns;
};

static int64_t manual_now(void *ctx)
{
    return atomic_load_explicit(&((cb_manual_clock *)ctx)->now_ns, memory_order_acquire);
}

/* Creates a manual clock reading start_ns; NULL when out of memory. */
cb_manual_clock *cb_manual_clock_new(int64_t start_ns)
{
    cb_manual_clock *mc = malloc(sizeof *mc);
    if (mc)
        atomic_init(&mc->now_ns, start_ns);
    return mc;
}

/* A cb_clock reading mc. */
cb_clock cb_manual_clock_get(cb_manual_clock *mc)
{
    cb_clock c = { manual_now, mc };
    return c;
}

/* Moves mc forward by ms milliseconds; negative values are ignored. */
void cb_manual_clock_advance_ms(cb_manual_clock *mc, int64_t ms)
{
    cb_manual_clock_advance_ns(mc, ms * 1000000LL);
}

/* Moves mc forward by ns nanoseconds; negative values are ignored. */
void cb_manual_clock_advance_ns(cb_manual_clock *mc, int64_t ns)
{
    if (mc && ns > 0)
        atomic_fetch_add_explicit(&mc->now_ns, ns, memory_order_acq_rel);
}

/* Frees mc. NULL is a no-op. */
void cb_manual_clock_free(cb_manual_clock *mc)
{
    free(mc);
}
