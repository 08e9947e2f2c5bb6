/* Stack-slicing context switch (see switch.h for the model).
 *
 * A switch from `current` to `target`:
 *
 *   save     Every context whose bytes lie below target's `stop` is about to
 *            be overwritten, so its bytes are copied to its heap buffer (only
 *            the part not already copied).  The walk follows `prev` from the
 *            current context upwards: regions are nested, lowest first.
 *   move     The raw switch moves SP to the target's saved SP (or to the
 *            thread's base for a context that was never started).
 *   restore  The target's heap bytes are copied back and its `prev` is
 *            repaired; a new context instead starts running th->entry.
 *
 *   high addresses
 *   +-------------------+ <- main.stop (top of the thread's stack)
 *   | main              |
 *   +-------------------+ <- main.start  (main suspended above the base)
 *   |   (unused)        |
 *   +-------------------+ <- th->base == stop of every other context
 *   | running context   |
 *   +-------------------+ <- SP
 *   low addresses
 *
 * No Python here.  Allocation failure in the save step leaves everything as
 * it was and makes slp_switch() return -1.
 */
#include "switch.h"

#include <stdlib.h>
#include <string.h>

#include "platform/select.h"

/* The most bytes below a reservation's estimate a measurement may count (a
 * stale estimate from another frame gives nonsense); SLP_SLACK_FIRST
 * (switch.h) is what a site assumes before its first switch. */
#define SLP_SLACK_MAX 4096
/* the most a copy holds (slp_stack's 32-bit sizes) */
#define SLP_COPY_MAX ((size_t)UINT32_MAX)

extern int slp_switch_raw(char *(*save)(void *, char *),
                          void (*restore)(void *, char *), void *ctx)
    SLP_HIDDEN;

/* ------------------------------------------------------------------------
 * Copying stack bytes.  Under AddressSanitizer the stack holds poisoned
 * redzones of frames that belong to other contexts; the copies must not be
 * checked, and the restored slice is unpoisoned (its frames' redzones are
 * not re-created: overflows inside restored frames go undetected).
 */
#if defined(SLP_ASAN)
#include <sanitizer/asan_interface.h>

__attribute__((no_sanitize_address, noinline)) static void
slp_copy(char *dst, const char *src, size_t n)
{
    /* volatile keeps the compiler from turning this into a memcpy call,
     * which the sanitizer would intercept and check. */
    volatile uintptr_t *d = (volatile uintptr_t *)dst;
    const volatile uintptr_t *s = (const volatile uintptr_t *)src;
    size_t i, words = n / sizeof(uintptr_t);
    for (i = 0; i < words; i++)
        d[i] = s[i];
    for (i = words * sizeof(uintptr_t); i < n; i++)
        ((volatile char *)dst)[i] = ((const volatile char *)src)[i];
}
#define slp_unpoison(p, n) __asan_unpoison_memory_region((p), (n))
#else
#define slp_copy(d, s, n) memcpy((d), (s), (n))
#define slp_unpoison(p, n) ((void)0)
#endif

/* Under valgrind memcheck (a build with SLP_VALGRIND=1), the stack below
 * SP is tracked by memcheck itself: SP moves on every switch, so frames
 * abandoned there are forgotten automatically.  What it cannot know is when
 * a heap copy stops being valid: once a context is restored, its copy is
 * stale until the next save, so it is marked undefined and a read of it
 * (slp_stack_read on a running context, a restore of bytes that were never
 * saved) is reported instead of silently returning old data. */
#if defined(SLP_VALGRIND)
#include <valgrind/memcheck.h>
#define slp_forget(p, n) ((void)VALGRIND_MAKE_MEM_UNDEFINED((p), (n)))
#else
#define slp_forget(p, n) ((void)0)
#endif

/* Make sure `s` has the bytes [start, upto) in its heap copy.
 * Returns 0, or -1 when out of memory (nothing changed). */
static int
slp_save_upto(slp_stack *s, char *upto)
{
    size_t need = (size_t)(upto - s->start);
    if (need <= s->saved)
        return 0;
    if (need > s->capacity) {
        /* Grow by at least half so that a context whose depth creeps up
         * does not reallocate on every switch. */
        size_t cap = s->capacity + s->capacity / 2;
        char *p;
        if (cap < need)
            cap = need;
        if (cap > SLP_COPY_MAX)
            cap = SLP_COPY_MAX;
        if (need > cap)
            return -1;
        p = realloc(s->copy, cap);
        if (p == NULL)
            return -1;
        s->copy = p;
        s->capacity = (uint32_t)cap;
    }
    slp_copy(s->copy + s->saved, s->start + s->saved, need - s->saved);
    s->saved = (uint32_t)need;
    return 0;
}

static SLP_NOINLINE char *
slp_save_cb(void *ctx, char *sp)
{
    slp_thread *th = (slp_thread *)ctx;
    slp_stack *cur = th->current, *target = th->target, *owner;
    char *stop;

    if (slp_stack_started(target)) {
        stop = target->stop;
    }
    else {
        if (th->base == NULL)
            th->base = (char *)((uintptr_t)sp & ~(uintptr_t)15);
        stop = th->base;
    }
    /* A finishing context records its SP too (nothing reads it but the
     * ASan unpoisoning in slp_restore_cb; restore clears it). */
    cur->start = sp;
    if (th->mark != NULL) {
        /* learn how far below the reservation's estimate switches save */
        size_t below = (size_t)(th->mark - sp);
        size_t *slack = &th->sites[th->mark_site].slack;
        if (th->mark > sp && below > *slack && below < SLP_SLACK_MAX)
            *slack = below;
        th->mark = NULL;
    }
    owner = th->exiting ? cur->prev : cur;
    for (; owner != NULL && owner != target; owner = owner->prev) {
        char *upto;
        if (owner->start == NULL)
            continue;           /* finished: its bytes are garbage */
        upto = owner->stop < stop ? owner->stop : stop;
        if (owner->start < upto && slp_save_upto(owner, upto) < 0) {
            th->failed = 1;
            return NULL;
        }
        if (owner->stop >= stop)
            break;              /* everything above is out of reach */
    }
    return slp_stack_started(target) ? target->start : stop;
}

static SLP_NOINLINE void
slp_restore_cb(void *ctx, char *sp)
{
    slp_thread *th = (slp_thread *)ctx;
    slp_stack *target = th->target, *old = th->current, *owner;
    int is_new = !slp_stack_started(target);

    (void)sp;
#if defined(SLP_ASAN)
    {
        /* Frames of the context we come from (and of contexts abandoned
         * there) leave poisoned redzones in the shadow of the stack between
         * its SP and where the target resumes.  That memory now lies below
         * the target's SP, where ASan expects clean shadow: a function
         * prologue re-poisons its own static frame, but dynamic allocas
         * (VLAs, alloca) only poison their redzones, so the stale poison
         * would be reported as overflows.  Below the old SP the shadow is
         * clean already (returns unpoison their frames). */
        char *lo = old->start;
        char *hi = is_new ? th->base : target->start;
        if (lo != NULL && lo < hi)
            slp_unpoison(lo, (size_t)(hi - lo));
    }
#endif
    if (is_new) {
        target->stop = th->base;
        target->start = NULL;
        target->saved = 0;
    }
    else {
        slp_copy(target->start, target->copy, target->saved);
        slp_unpoison(target->start, target->saved);
        slp_forget(target->copy, target->capacity);
        target->saved = 0;
    }
    /* The first context whose region lies above target's owns the bytes
     * just above it. */
    owner = th->exiting ? old->prev : old;
    while (owner != NULL &&
           (owner == target || owner->start == NULL ||
            owner->stop <= target->stop))
        owner = owner->prev;
    target->prev = owner;
    if (th->exiting) {
        if (old->copy != NULL)
            slp_forget(old->copy, old->capacity);
        old->start = NULL;
        old->stop = NULL;
        old->prev = NULL;
        old->saved = 0;
        th->exiting = 0;
    }
    th->current = target;
    th->target = NULL;
    if (is_new)
        th->entry(th);          /* never returns; a tail call keeps this
                                   frame off the new context's stack */
}

void
slp_thread_init(slp_thread *th, slp_stack *main, slp_entry_fn entry)
{
    memset(th, 0, sizeof(*th));
    memset(main, 0, sizeof(*main));
    main->start = (char *)1;    /* running: the real value is set on save */
    main->stop = SLP_STOP_TOP;
    th->current = main;
    th->entry = entry;
}

void
slp_stack_reset(slp_stack *s)
{
    s->start = NULL;
    s->stop = NULL;
    s->saved = 0;
    s->prev = NULL;
}

void
slp_stack_free(slp_stack *s)
{
    free(s->copy);
    s->copy = NULL;
    s->capacity = 0;
    slp_stack_reset(s);
}

SLP_NOINLINE int
slp_switch(slp_thread *th, slp_stack *target)
{
    if (target == th->current)
        return 0;
    th->target = target;
    th->failed = 0;
    if (slp_switch_raw(slp_save_cb, slp_restore_cb, th) != 0) {
        th->target = NULL;
        return th->failed ? -1 : 0;
    }
    return 0;
}

SLP_NOINLINE void
slp_exit(slp_thread *th, slp_stack *target)
{
    th->target = target;
    th->exiting = 1;
    th->failed = 0;
    th->mark = NULL;            /* nothing is saved for the finished one */
    /* Nothing is saved for the finished context, and the saves of the
     * others only grow buffers that already fit in steady state. */
    slp_switch_raw(slp_save_cb, slp_restore_cb, th);
    abort();                    /* out of memory on a context's last switch */
}

void
slp_stack_read(const slp_stack *s, void *dest, const char *src, size_t n)
{
    char *d = (char *)dest;
    while (n > 0) {
        size_t off = (size_t)(src - s->start);
        if (s->start != NULL && src >= s->start && off < s->saved) {
            size_t k = s->saved - off;
            if (k > n)
                k = n;
            slp_copy(d, s->copy + off, k);
            d += k;
            src += k;
            n -= k;
        }
        else {
            slp_copy(d, src, n);
            return;
        }
    }
}

size_t
slp_stack_size(const slp_stack *s)
{
    if (s->start == NULL || s->stop == NULL || s->stop == SLP_STOP_TOP)
        return 0;
    return (size_t)(s->stop - s->start);
}

int slp_fault_countdown;


int
slp_stack_reserve(slp_stack *s, size_t bytes)
{
    char *p;
    if (bytes <= s->capacity)
        return 0;
    if (slp_fault())
        return -1;
    /* The first copy is exact (most contexts never grow); a growing one
     * gets room to creep. */
    if (s->capacity > 0 && bytes < s->capacity + (size_t)s->capacity / 4)
        bytes = s->capacity + (size_t)s->capacity / 4;
    if (bytes > SLP_COPY_MAX)
        return -1;
    p = realloc(s->copy, bytes);
    if (p == NULL)
        return -1;
    s->copy = p;
    s->capacity = (uint32_t)bytes;
    return 0;
}

int
slp_find_site(slp_thread *th, const void *key)
{
    int i;
    for (i = 0; i < SLP_SITES - 1; i++) {
        if (th->sites[i].key == key)
            return i;
        if (th->sites[i].key == NULL) {
            th->sites[i].key = key;
            return i;
        }
    }
    /* the last entry is shared by every site beyond the table */
    return SLP_SITES - 1;
}
