/* Stack-slicing context switch: the bottom layer of stackless_compat.
 *
 * Every context of a thread runs on that thread's own C stack.  A context
 * owns the region [start, stop) of the stack while it is suspended; when
 * another context needs those addresses, the overlapping bytes are copied to
 * a heap buffer, and they are copied back before the owner resumes.
 *
 * The thread's first context (its "main") owns everything from its stack
 * pointer upwards (stop == SLP_STOP_TOP).  Every other context starts at the
 * thread's fixed base (slp_thread.base), chosen the first time a context is
 * started: a new context never starts below the stack of whoever started it,
 * so starting contexts from contexts does not make the stack grow.
 *
 * This file does not include Python.h and has a C-only test (tests/c/).
 */
#ifndef SLP_SWITCH_H
#define SLP_SWITCH_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#  define SLP_NOINLINE __attribute__((noinline))
#  define SLP_NORETURN __attribute__((noreturn))
#  define SLP_HIDDEN __attribute__((visibility("hidden")))
#else
#  error "stackless_compat's switch core needs GCC or clang"
#endif

#define SLP_STOP_TOP ((char *)UINTPTR_MAX)

typedef struct slp_stack slp_stack;
typedef struct slp_thread slp_thread;

struct slp_stack {
    char *start;        /* SP while suspended; NULL when not started or dead */
    char *stop;         /* upper end of the region; NULL when not started */
    char *copy;         /* heap copy of [start, start + saved) */
    /* 32 bits each: a slice is never near 4 GiB (a larger copy fails
     * like an allocation), and every tasklet carries this record */
    uint32_t saved;     /* bytes in copy: always the lowest part of the region */
    uint32_t capacity;  /* allocated size of copy (kept across switches) */
    slp_stack *prev;    /* owner of the stack bytes just above this region */
};

/* Runs a freshly started context on its own part of the stack.  It must never
 * return: it ends with slp_exit(). */
typedef void (*slp_entry_fn)(slp_thread *th);

#define SLP_SITES 16

struct slp_thread {
    slp_stack *current;     /* the running context */
    slp_stack *target;      /* valid during a switch only */
    char *base;             /* where new contexts start; NULL until the first */
    slp_entry_fn entry;     /* run by every newly started context */
    int exiting;            /* the current context is finished: do not save it */
    int failed;             /* the save step could not allocate */
    char *mark;             /* SP estimate given to slp_reserve_switch() */
    int mark_site;          /* its entry in sites[] */
    struct {                /* most bytes seen below an estimate, per call */
        const void *key;    /* site (a return address) */
        size_t slack;
        unsigned int samples;   /* switches measured (the first few) */
    } sites[SLP_SITES];
};

/* Make `main` the running context of `th` (it owns the top of the stack). */
SLP_HIDDEN void slp_thread_init(slp_thread *th, slp_stack *main,
                                slp_entry_fn entry);

/* Reset a stack record to "not started" (its heap copy is kept for reuse). */
SLP_HIDDEN void slp_stack_reset(slp_stack *s);

/* Free the heap copy and reset.  Only for contexts that are not running. */
SLP_HIDDEN void slp_stack_free(slp_stack *s);

static inline int slp_stack_started(const slp_stack *s) { return s->stop != NULL; }

/* Switch from th->current to target.  A target that was never started (or
 * finished) is started: th->entry runs in it.  Returns 0 once the calling
 * context is switched back to, or -1 if the switch could not be made (out
 * of memory; nothing changed). */
SLP_HIDDEN int slp_switch(slp_thread *th, slp_stack *target);

/* The current context is finished: switch to target for good. */
SLP_HIDDEN SLP_NORETURN void slp_exit(slp_thread *th, slp_stack *target);

/* Copy n bytes that a suspended context sees at address src (which lies in
 * its region) into dest, reading the heap copy where the bytes are saved. */
SLP_HIDDEN void slp_stack_read(const slp_stack *s, void *dest,
                               const char *src, size_t n);

/* Bytes of C stack a suspended context occupies (its whole region). */
SLP_HIDDEN size_t slp_stack_size(const slp_stack *s);



/* Fault injection for tests: when > 0, counts allocations down; the one
 * that brings it to 0 fails (stackless_compat._stackless._fault_inject). */
SLP_HIDDEN extern int slp_fault_countdown;
static inline int slp_fault(void)
{
    return slp_fault_countdown > 0 && --slp_fault_countdown == 0;
}

/* Ask the CPU to bring a suspended context's saved bytes into the cache:
 * a scheduler calls it for the context it will most likely switch to
 * next, so that the restore's copy does not wait for memory (with many
 * contexts their copies do not stay in the cache between two turns).
 * Always inlined: GCC drops calls of a function made of prefetches. */
static inline __attribute__((always_inline)) void
slp_stack_prefetch(const slp_stack *s)
{
    const char *p = s->copy, *end = s->copy + s->saved;
    /* every other line: the hardware fetches the pairs of a copy that is
     * read in order */
    for (; p < end; p += 128)
        __builtin_prefetch(p, 0, 3);
}

/* Make sure s can save `bytes` without allocating during a switch.
 * Returns 0, or -1 when out of memory. */
SLP_HIDDEN int slp_stack_reserve(slp_stack *s, size_t bytes);

/* Reserve what the current context will need to save when it switches
 * away soon from a point somewhat below `here` (an address in the caller's
 * frame), its region ending at `stop`.  The bytes below `here` are learned
 * per call site `key` (any address that tells the call paths apart): the
 * most that a switch of this thread took below the estimate made there
 * (a conservative amount until one was seen), so a blocked context's copy
 * is sized to its slice rather than padded.  A switch that goes deeper
 * than ever seen grows the copy in the save step.
 * Returns 0, or -1 when out of memory. */
SLP_HIDDEN int slp_find_site(slp_thread *th, const void *key);
#define SLP_SLACK_FIRST 256
#define SLP_SITE_SAMPLES 64

static inline int
slp_reserve_switch(slp_thread *th, char *here, char *stop, const void *key)
{
    int i = th->mark_site;              /* most switches repeat the last site */
    size_t bytes;
    if (th->sites[i].key != key)
        i = slp_find_site(th, key);
    th->mark_site = i;
    /* measure a site's first switches only: its depth below the estimate
     * is fixed by its code (a deeper one grows the copy in the save) */
    if (th->sites[i].samples < SLP_SITE_SAMPLES) {
        th->sites[i].samples++;
        th->mark = here;
    }
    if (stop == NULL || stop == SLP_STOP_TOP || stop <= here)
        return 0;
    bytes = (size_t)(stop - here) +
            (th->sites[i].slack ? th->sites[i].slack : SLP_SLACK_FIRST);
    if (bytes <= th->current->capacity)
        return 0;
    return slp_stack_reserve(th->current, bytes);
}
#endif /* SLP_SWITCH_H */
