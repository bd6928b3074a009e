/* stacktrim.c -- a worker thread gives back the stack pages its last connection touched (see stacktrim.h). */
#include "stacktrim.h"

#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(__SANITIZE_THREAD__)

/* The calling thread's stack: its lowest address and one past its highest
 * address in use at the time of the first call; 0 until found, 1 when it
 * cannot be. */
static __thread uintptr_t stack_low;

/* Finds the lowest usable address of the calling thread's stack. */
static uintptr_t stack_low_find(void)
{
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0, guard = 0;
    if (pthread_getattr_np(pthread_self(), &attr) != 0)
        return 1;
    int rc = pthread_attr_getstack(&attr, &addr, &size);
    pthread_attr_getguardsize(&attr, &guard);
    pthread_attr_destroy(&attr);
    return rc == 0 && addr ? (uintptr_t)addr + guard : 1;
}

void stack_trim(void)
{
    if (!stack_low)
        stack_low = stack_low_find();
    if (stack_low <= 1)
        return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    volatile char here = 0;
    /* The stack grows down: everything below this frame, less a margin for
     * the calls madvise() itself makes, is dead. */
    uintptr_t top = ((uintptr_t)&here - 16 * 1024) & ~(page - 1);
    if (top > stack_low + page)
        madvise((void *)stack_low, top - stack_low, MADV_DONTNEED);
    (void)here;
}

#else /* ThreadSanitizer keeps its own view of every thread's stack: leave it be. */

void stack_trim(void)
{
}

#endif
