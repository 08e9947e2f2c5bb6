/* C-only torture test of the stack-slicing switch core (csrc/switch.[ch]).
 *
 *   torture [contexts [switches [seed]]]      defaults: 200 40000 1
 *
 * Context 0 is the thread's main context; contexts 1..N-1 are started by
 * switching to them.  One deterministic pseudo-random stream (seeded, never
 * derived from an address) drives everything, so every build (gcc/clang,
 * -O0/-O2, sanitizers, AArch64) follows the same schedule and prints the same
 * "schedule" checksum.  What is exercised:
 *
 *  - recursion to random C depths (0..40 levels, sometimes 150..300), each
 *    level with a variable-length stack buffer filled with a pattern keyed by
 *    (context, generation, level) and verified on the way back up, plus local
 *    doubles and integers that must survive the nested calls: a corrupted
 *    slice of any suspended context is detected when it unwinds;
 *  - switches at random levels to random contexts: suspended ones, never
 *    started ones and finished ones (both start the entry function afresh),
 *    and main; main itself recurses to random depths (above and below the
 *    thread's base) before switching out;
 *  - floating point control state per context: rounding mode, and on x86-64
 *    MXCSR FTZ/DAZ and the x87 precision control, on AArch64 FPCR.FZ; checked
 *    (register value and an actual rounded division) after every resume, and
 *    local doubles live across every switch (callee-saved d8-d15 on AArch64);
 *  - contexts that finish with slp_exit() to a random target (another
 *    suspended context, main, or a new one), and get restarted later;
 *  - suspended contexts abandoned with slp_stack_reset() and restarted;
 *  - slp_stack_read() of random live buffers of suspended contexts (main's
 *    buffers may straddle its saved/live boundary) and slp_stack_size();
 *  - out-of-memory in the save step (realloc wrapped with -Wl,--wrap=realloc):
 *    slp_switch() returns -1 and the caller carries on unharmed;
 *  - at the end every suspended context is verified once more through
 *    slp_stack_read, then resumed and unwound to completion.
 *
 * Exit status 0 only if every check passed; the totals are printed.
 */
#include "switch.h"

#include <fenv.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(SLP_VALGRIND)
#include <valgrind/memcheck.h>
#endif

#define MAXLEVEL 320
#define MAXBUF 1024

/* ------------------------------------------------------------------------ */

struct livebuf {
    unsigned char *addr;
    size_t size;
    uint64_t key;
};

struct cstate {
    uint32_t gen;               /* times started */
    int nbufs;                  /* live recursion levels */
    uint32_t fp_expected[2];    /* FP control registers for this context */
    double quot_expected;       /* 1/3 rounded in this context's mode */
    double sw_d[4];             /* doubles live across the current switch */
    uint64_t sw_i[8];           /* integers live across the current switch */
    struct livebuf bufs[MAXLEVEL];
    double lvl_d[MAXLEVEL];
    uint64_t lvl_i[MAXLEVEL];
};

static slp_thread th;
static slp_stack *stacks;
static struct cstate *cst;
static int nctx;
static long ops_left;
static int draining;

static uint64_t rng_state;
static uint64_t sched_hash = 1469598103934665603ULL;

static struct {
    unsigned long switches, starts, restarts, finishes, abandoned;
    unsigned long levels, buffers_verified, peeks, peek_bytes, straddles;
    unsigned long oom_injected, main_below_base, main_above_base, self_switches;
    unsigned long drained, final_reads, regchecks, stale_copies;
    int max_level;
    size_t max_stack;
    unsigned long errors;
} st;

/* Switch attempts are numbered; the realloc wrapper fails only during the
 * attempt that armed it. */
static unsigned long serial, oom_at;
static int oom_fired;

void *__real_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n);

void *
__wrap_realloc(void *p, size_t n)
{
    if (oom_at != 0 && oom_at == serial) {
        oom_fired = 1;
        return NULL;
    }
    return __real_realloc(p, n);
}

static uint64_t
rng(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void
hash_event(int a, int b, int c)
{
    uint64_t v = ((uint64_t)(uint32_t)a << 40) ^ ((uint64_t)(uint32_t)b << 16)
                 ^ (uint64_t)(uint32_t)c;
    sched_hash = (sched_hash ^ v) * 1099511628211ULL;
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
fail(const char *fmt, ...)
{
    va_list ap;
    st.errors++;
    fprintf(stderr, "torture: FAIL: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (st.errors > 20) {
        fprintf(stderr, "torture: too many errors, giving up\n");
        exit(1);
    }
}

/* ------------------------------------------------------------------------
 * regcheck_switch(th, target, in, out): load every callee-saved register
 * from in[], call slp_switch(th, target), store the registers to out[] once
 * switched back to, return slp_switch's result.  Whatever the compiler's
 * register allocation, every callee-saved register then holds a distinct
 * value across the switch.  x86-64: rbx rbp r12-r15 (6 values); AArch64:
 * x19-x28 and d8-d15 (18 values).
 */
#if defined(__x86_64__)
#define NREGS 6
__asm__(
    "    .text\n"
    "    .p2align 4\n"
    "    .type regcheck_switch, @function\n"
    "regcheck_switch:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    movq %rcx, (%rsp)\n"
    "    movq 0(%rdx), %rbx\n"
    "    movq 8(%rdx), %rbp\n"
    "    movq 16(%rdx), %r12\n"
    "    movq 24(%rdx), %r13\n"
    "    movq 32(%rdx), %r14\n"
    "    movq 40(%rdx), %r15\n"
    "    call slp_switch\n"
    "    movq (%rsp), %rcx\n"
    "    movq %rbx, 0(%rcx)\n"
    "    movq %rbp, 8(%rcx)\n"
    "    movq %r12, 16(%rcx)\n"
    "    movq %r13, 24(%rcx)\n"
    "    movq %r14, 32(%rcx)\n"
    "    movq %r15, 40(%rcx)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    "    .size regcheck_switch, .-regcheck_switch\n"
    "    .section .note.GNU-stack,\"\",@progbits\n"
    "    .text\n"
);
#elif defined(__aarch64__)
#define NREGS 18
__asm__(
    "    .text\n"
    "    .p2align 4\n"
    "    .type regcheck_switch, %function\n"
    "regcheck_switch:\n"
    "    stp x29, x30, [sp, #-176]!\n"
    "    mov x29, sp\n"
    "    stp x19, x20, [sp, #16]\n"
    "    stp x21, x22, [sp, #32]\n"
    "    stp x23, x24, [sp, #48]\n"
    "    stp x25, x26, [sp, #64]\n"
    "    stp x27, x28, [sp, #80]\n"
    "    stp d8, d9, [sp, #96]\n"
    "    stp d10, d11, [sp, #112]\n"
    "    stp d12, d13, [sp, #128]\n"
    "    stp d14, d15, [sp, #144]\n"
    "    str x3, [sp, #160]\n"
    "    ldp x19, x20, [x2, #0]\n"
    "    ldp x21, x22, [x2, #16]\n"
    "    ldp x23, x24, [x2, #32]\n"
    "    ldp x25, x26, [x2, #48]\n"
    "    ldp x27, x28, [x2, #64]\n"
    "    ldp d8, d9, [x2, #80]\n"
    "    ldp d10, d11, [x2, #96]\n"
    "    ldp d12, d13, [x2, #112]\n"
    "    ldp d14, d15, [x2, #128]\n"
    "    bl slp_switch\n"
    "    ldr x3, [sp, #160]\n"
    "    stp x19, x20, [x3, #0]\n"
    "    stp x21, x22, [x3, #16]\n"
    "    stp x23, x24, [x3, #32]\n"
    "    stp x25, x26, [x3, #48]\n"
    "    stp x27, x28, [x3, #64]\n"
    "    stp d8, d9, [x3, #80]\n"
    "    stp d10, d11, [x3, #96]\n"
    "    stp d12, d13, [x3, #112]\n"
    "    stp d14, d15, [x3, #128]\n"
    "    ldp x19, x20, [sp, #16]\n"
    "    ldp x21, x22, [sp, #32]\n"
    "    ldp x23, x24, [sp, #48]\n"
    "    ldp x25, x26, [sp, #64]\n"
    "    ldp x27, x28, [sp, #80]\n"
    "    ldp d8, d9, [sp, #96]\n"
    "    ldp d10, d11, [sp, #112]\n"
    "    ldp d12, d13, [sp, #128]\n"
    "    ldp d14, d15, [sp, #144]\n"
    "    ldp x29, x30, [sp], #176\n"
    "    ret\n"
    "    .size regcheck_switch, .-regcheck_switch\n"
    "    .section .note.GNU-stack,\"\",%progbits\n"
    "    .text\n"
);
#endif
#ifdef NREGS
int regcheck_switch(slp_thread *th, slp_stack *target, const uint64_t *in,
                    uint64_t *out);
#endif

/* ------------------------------------------------------------------------
 * Floating point control state.
 */
static void
fp_read(uint32_t out[2])
{
#if defined(__x86_64__)
    uint32_t mx;
    uint16_t cw;
    __asm__ volatile("stmxcsr %0" : "=m"(mx));
    __asm__ volatile("fnstcw %0" : "=m"(cw));
    out[0] = mx & ~(uint32_t)0x3f;      /* drop the sticky exception flags */
    out[1] = cw;
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    out[0] = (uint32_t)v;
    out[1] = 0;
#else
    out[0] = (uint32_t)fegetround();
    out[1] = 0;
#endif
}

static double
third(void)
{
    volatile double one = 1.0, three = 3.0;
    return one / three;
}

static void
fp_setup(int self, uint32_t gen)
{
    static const int modes[4] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD,
                                 FE_TOWARDZERO};
    unsigned k = (unsigned)self + gen;
    struct cstate *c = &cst[self];

    fesetround(modes[k % 4]);
#if defined(__x86_64__)
    {
        uint32_t mx;
        uint16_t cw;
        __asm__ volatile("stmxcsr %0" : "=m"(mx));
        mx &= ~((1u << 15) | (1u << 6));            /* FTZ, DAZ */
        if ((k / 4) & 1)
            mx |= 1u << 15;
        if ((k / 8) & 1)
            mx |= 1u << 6;
        __asm__ volatile("ldmxcsr %0" : : "m"(mx));
        __asm__ volatile("fnstcw %0" : "=m"(cw));
        cw = (uint16_t)((cw & ~0x300u) | (((k / 16) & 1) ? 0x200u : 0x300u));
        __asm__ volatile("fldcw %0" : : "m"(cw));
    }
#elif defined(__aarch64__)
    {
        uint64_t v;
        __asm__ volatile("mrs %0, fpcr" : "=r"(v));
        v &= ~((uint64_t)1 << 24);                  /* FZ */
        if ((k / 4) & 1)
            v |= (uint64_t)1 << 24;
        __asm__ volatile("msr fpcr, %0" : : "r"(v));
    }
#endif
    fp_read(c->fp_expected);
    c->quot_expected = third();
}

static void
fp_check(int self, int where)
{
    uint32_t now[2];
    double q;
    fp_read(now);
    if (now[0] != cst[self].fp_expected[0] || now[1] != cst[self].fp_expected[1])
        fail("context %d: FP control state not restored (got %#x, expected %#x) at %d",
             self, (unsigned)now[0], (unsigned)cst[self].fp_expected[0], where);
    q = third();
    if (memcmp(&q, &cst[self].quot_expected, sizeof q) != 0)
        fail("context %d: rounding differs after resume (%d)", self,
             where);
}

/* ------------------------------------------------------------------------
 * Stack buffers.
 */
static void
pattern_fill(unsigned char *p, size_t n, uint64_t key)
{
    size_t i;
    for (i = 0; i < n; i++)
        p[i] = (unsigned char)((key >> ((i & 7) * 8)) ^ (i * 131u));
}

static int
pattern_ok(const unsigned char *p, size_t n, uint64_t key)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != (unsigned char)((key >> ((i & 7) * 8)) ^ (i * 131u)))
            return 0;
    return 1;
}

static int
pick_other(int self)
{
    int t = (int)(rng() % (uint64_t)nctx);
    if (t == self)
        t = (t + 1) % nctx;
    return t;
}

/* Read one live buffer of suspended context v through slp_stack_read. */
static void
read_buffer(int v, int level)
{
    static unsigned char tmp[MAXBUF];
    const slp_stack *s = &stacks[v];
    const struct livebuf *b = &cst[v].bufs[level];
    size_t size = slp_stack_size(s);

    if (v == 0) {
        if (size != 0)
            fail("main: slp_stack_size %zu, expected 0", size);
        if ((char *)b->addr < s->start + s->saved &&
            (char *)b->addr + b->size > s->start + s->saved)
            st.straddles++;
    }
    else {
        if (size == 0 || (char *)b->addr < s->start ||
            (char *)b->addr + b->size > s->start + size)
            fail("context %d: buffer of level %d outside its region (size %zu)",
                 v, level, size);
        if (s->saved != size)
            fail("context %d: suspended but only partly saved (%zu of %zu)", v,
                 (size_t)s->saved, size);
        if (size > st.max_stack)
            st.max_stack = size;
    }
    memset(tmp, 0xAA, sizeof tmp);
    slp_stack_read(s, tmp, (const char *)b->addr, b->size);
    if (!pattern_ok(tmp, b->size, b->key))
        fail("context %d: slp_stack_read of level %d wrong (gen %u)", v, level,
             cst[v].gen);
    st.peeks++;
    st.peek_bytes += b->size;
}

static void
peek_other(int self)
{
    int v = pick_other(self);
    if (v == self || !slp_stack_started(&stacks[v]) || cst[v].nbufs == 0)
        return;
    read_buffer(v, (int)(rng() % (uint64_t)cst[v].nbufs));
}

static void
abandon_other(int self)
{
    int v = pick_other(self);
    if (v == 0 || v == self || !slp_stack_started(&stacks[v]))
        return;
    slp_stack_reset(&stacks[v]);
    if (slp_stack_started(&stacks[v]) || slp_stack_size(&stacks[v]) != 0)
        fail("context %d: still started after slp_stack_reset", v);
    cst[v].nbufs = 0;
    st.abandoned++;
    hash_event(3, self, v);
}

/* ------------------------------------------------------------------------
 * Switching.
 */
static SLP_NOINLINE void
switch_point(int self, int level)
{
    struct cstate *c = &cst[self];
    int target, rc, inject;
    double d0, d1, d2, d3;
    uint64_t i0, i1, i2, i3, i4, i5, i6, i7;
    char here;

    if (draining)
        return;
    if (ops_left <= 0) {
        if (self == 0)
            return;
        target = 0;
    }
    else {
        target = pick_other(self);
    }
    ops_left--;
    if (th.current != &stacks[self])
        fail("context %d: th.current wrong before switching (level %d)",
             self, level);
    if (rng() % 2)
        peek_other(self);
    if (rng() % 256 == 0)
        abandon_other(self);
    if (rng() % 64 == 0) {
        serial++;
        if (slp_switch(&th, &stacks[self]) != 0)
            fail("context %d: switch to itself failed", self);
        st.self_switches++;
    }
    if (self == 0 && th.base != NULL) {
        if (&here < th.base)
            st.main_below_base++;
        else
            st.main_above_base++;
    }
    inject = rng() % 6 == 0;

    /* Values live across the switch, in callee-saved registers or spilled. */
    d0 = (double)(rng() % 1000003) / 7.0;
    d1 = d0 * 3.25 + self;
    d2 = (double)level / 3.0 - d0;
    d3 = d1 * d2 + 0.1;
    i0 = rng();
    i1 = i0 ^ (uint64_t)self;
    i2 = i0 * 31 + (uint64_t)level;
    i3 = i1 + i2;
    i4 = rng();
    i5 = i4 ^ i0;
    i6 = i4 * 7 + i5;
    i7 = i6 - i1;
    c->sw_d[0] = d0; c->sw_d[1] = d1; c->sw_d[2] = d2; c->sw_d[3] = d3;
    c->sw_i[0] = i0; c->sw_i[1] = i1; c->sw_i[2] = i2; c->sw_i[3] = i3;
    c->sw_i[4] = i4; c->sw_i[5] = i5; c->sw_i[6] = i6; c->sw_i[7] = i7;

    hash_event(1, self, target);
    st.switches++;
    serial++;
    if (inject) {
        oom_at = serial;
        oom_fired = 0;
        rc = slp_switch(&th, &stacks[target]);
        if (oom_fired) {
            oom_fired = 0;
            oom_at = 0;
            if (rc != -1)
                fail("context %d: failed allocation but switch returned %d",
                     self, rc);
            if (th.current != &stacks[self] || th.target != NULL)
                fail("context %d: state changed by a failed switch", self);
            fp_check(self, 1);
            st.oom_injected++;
            serial++;
            rc = slp_switch(&th, &stacks[target]);
        }
    }
#ifdef NREGS
    else if (rng() % 4 == 0) {
        /* 18 draws whatever NREGS is: the schedule stays the same on
         * every architecture. */
        uint64_t in[18], out[18];
        int k;
        for (k = 0; k < 18; k++)
            in[k] = rng();
        rc = regcheck_switch(&th, &stacks[target], in, out);
        for (k = 0; k < NREGS; k++)
            if (in[k] != out[k])
                fail("context %d: callee-saved register #%d changed across a "
                     "switch (level %d)", self, k, level);
        st.regchecks++;
    }
#endif
    else {
        rc = slp_switch(&th, &stacks[target]);
    }
    if (rc != 0)
        fail("context %d: slp_switch returned %d at level %d", self, rc, level);

    /* Resumed. */
    if (th.current != &stacks[self] || th.target != NULL || th.exiting)
        fail("context %d: thread state wrong after resume (level %d)",
             self, level);
#if defined(SLP_VALGRIND)
    /* The core told memcheck that our heap copy is stale now: every byte
     * of it must read as undefined (checked without reporting). */
    if (RUNNING_ON_VALGRIND && stacks[self].copy != NULL) {
        static unsigned char vbits[1 << 16];
        size_t n = stacks[self].capacity, k;
        if (n > sizeof(vbits))
            n = sizeof(vbits);
        if (VALGRIND_GET_VBITS(stacks[self].copy, vbits, n) != 1)
            fail("context %d: VALGRIND_GET_VBITS failed", self);
        for (k = 0; k < n; k++)
            if (vbits[k] != 0xff)
                fail("context %d: byte %zu of the stale copy is defined",
                     self, k);
        st.stale_copies++;
    }
#endif
    fp_check(self, 2);
    if (d0 != c->sw_d[0] || d1 != c->sw_d[1] || d2 != c->sw_d[2] ||
        d3 != c->sw_d[3])
        fail("context %d: local doubles changed across a switch (level %d)",
             self, level);
    if (i0 != c->sw_i[0] || i1 != c->sw_i[1] || i2 != c->sw_i[2] ||
        i3 != c->sw_i[3] || i4 != c->sw_i[4] || i5 != c->sw_i[5] ||
        i6 != c->sw_i[6] || i7 != c->sw_i[7])
        fail("context %d: local integers changed across a switch (level %d)",
             self, level);
}

static int
pick_depth(void)
{
    if (rng() % 100 < 3)
        return 150 + (int)(rng() % 150);
    return (int)(rng() % 41);
}

static SLP_NOINLINE uint64_t
recurse(int self, int level, int depth)
{
    struct cstate *c = &cst[self];
    size_t size = 16 + (size_t)(rng() % (MAXBUF / 16 - 1)) * 16 - (size_t)(rng() % 16);
    unsigned char buf[size];
    uint64_t key = rng() ^ ((uint64_t)(uint32_t)self << 32) ^ c->gen;
    double dl = (double)(key >> 11) / 3.0;
    uint64_t il = key * 0x9E3779B97F4A7C15ULL + (uint64_t)level;
    uint64_t r = 0;

    pattern_fill(buf, size, key);
    c->bufs[level].addr = buf;
    c->bufs[level].size = size;
    c->bufs[level].key = key;
    c->lvl_d[level] = dl;
    c->lvl_i[level] = il;
    c->nbufs = level + 1;
    st.levels++;
    if (level > st.max_level)
        st.max_level = level;

    if (rng() % 4 == 0)
        switch_point(self, level);
    if (level < depth && level + 1 < MAXLEVEL)
        r = recurse(self, level + 1, depth);
    else
        switch_point(self, level);
    if (rng() % 4 == 0)
        switch_point(self, level);

    if (!pattern_ok(buf, size, key))
        fail("context %d: stack buffer of level %d corrupted (gen %u)", self,
             level, c->gen);
    if (dl != c->lvl_d[level] || il != c->lvl_i[level])
        fail("context %d: locals of level %d corrupted (gen %u)", self, level,
             c->gen);
    if (c->nbufs != level + 1 || c->bufs[level].addr != buf)
        fail("context %d: bookkeeping of level %d wrong (%d)", self, level,
             c->nbufs);
    st.buffers_verified++;
    c->nbufs = level;
    return r + size + (uint64_t)dl + il;
}

static void
entry(slp_thread *t)
{
    int self = (int)(t->current - stacks);
    struct cstate *c = &cst[self];
    int rounds, k, target;

    if (self <= 0 || self >= nctx)
        abort();
    c->gen++;
    c->nbufs = 0;
    st.starts++;
    if (c->gen > 1)
        st.restarts++;
    hash_event(2, self, (int)c->gen);
    fp_setup(self, c->gen);
    rounds = 1 + (int)(rng() % 6);
    for (k = 0; k < rounds && !draining; k++) {
        recurse(self, 0, pick_depth());
        fp_check(self, 3);
    }
    if (c->nbufs != 0)
        fail("context %d: finished with %d live levels", self, c->nbufs);
    st.finishes++;
    if (draining || ops_left <= 0) {
        target = 0;
    }
    else {
        target = pick_other(self);
        ops_left--;
    }
    hash_event(4, self, target);
    serial++;
    slp_exit(t, &stacks[target]);
}

static SLP_NOINLINE void
main_driver(void)
{
    /* The first start happens somewhere inside a 16-level descent, so main
     * later runs both above and below the thread's base. */
    recurse(0, 0, 16);
    while (ops_left > 0) {
        if (rng() % 8 == 0)
            switch_point(0, -1);
        recurse(0, 0, pick_depth());
        fp_check(0, 4);
    }
}

/* Verify every live buffer of every suspended context, then resume each one
 * and let it unwind to completion. */
static SLP_NOINLINE void
drain(void)
{
    int v, l;
    for (v = 1; v < nctx; v++) {
        if (!slp_stack_started(&stacks[v]))
            continue;
        if (cst[v].nbufs == 0)
            fail("context %d: suspended without live levels", v);
        for (l = 0; l < cst[v].nbufs; l++) {
            read_buffer(v, l);
            st.final_reads++;
        }
    }
    draining = 1;
    for (v = 1; v < nctx; v++) {
        if (!slp_stack_started(&stacks[v]))
            continue;
        serial++;
        if (slp_switch(&th, &stacks[v]) != 0)
            fail("context %d: could not resume it to drain", v);
        fp_check(0, 5);
        if (slp_stack_started(&stacks[v]) || cst[v].nbufs != 0)
            fail("context %d: did not finish when drained (%d levels)", v,
                 cst[v].nbufs);
        st.drained++;
    }
}

int
main(int argc, char **argv)
{
    long switches = argc > 2 ? atol(argv[2]) : 40000;
    uint64_t seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 1;
    int v;
    char *base;

    nctx = argc > 1 ? atoi(argv[1]) : 200;
    if (nctx < 2 || switches < 1) {
        fprintf(stderr, "usage: %s [contexts>=2 [switches>=1 [seed]]]\n", argv[0]);
        return 2;
    }
    rng_state = seed;
    ops_left = switches;
    stacks = calloc((size_t)nctx, sizeof *stacks);
    cst = calloc((size_t)nctx, sizeof *cst);
    if (stacks == NULL || cst == NULL)
        return 2;

    slp_thread_init(&th, &stacks[0], entry);
    if (th.current != &stacks[0] || th.base != NULL ||
        slp_stack_size(&stacks[0]) != 0)
        fail("slp_thread_init: wrong initial state");
    for (v = 1; v < nctx; v++)
        if (slp_stack_started(&stacks[v]) || slp_stack_size(&stacks[v]) != 0)
            fail("context %d: started before its first switch", v);
    cst[0].gen = 1;
    fp_setup(0, 1);

    main_driver();
    base = th.base;
    drain();
    if (th.base != base)
        fail("the thread's base moved");
    fp_check(0, 6);
    if (th.current != &stacks[0] || cst[0].nbufs != 0)
        fail("main: wrong state at the end (%d levels)", cst[0].nbufs);
    for (v = 0; v < nctx; v++)
        slp_stack_free(&stacks[v]);
    fesetround(FE_TONEAREST);

    printf("torture: contexts=%d switches=%lu starts=%lu restarts=%lu "
           "finishes=%lu abandoned=%lu\n",
           nctx, st.switches, st.starts, st.restarts, st.finishes, st.abandoned);
    printf("torture: levels=%lu max_level=%d buffers_verified=%lu "
           "max_stack_bytes=%zu\n",
           st.levels, st.max_level, st.buffers_verified, st.max_stack);
    printf("torture: stack_reads=%lu read_bytes=%lu straddling_reads=%lu "
           "final_reads=%lu drained=%lu\n",
           st.peeks, st.peek_bytes, st.straddles, st.final_reads, st.drained);
    printf("torture: register_checks=%lu oom_injected=%lu self_switches=%lu "
           "main_below_base=%lu main_above_base=%lu\n",
           st.regchecks, st.oom_injected, st.self_switches, st.main_below_base,
           st.main_above_base);
#if defined(SLP_VALGRIND)
    if (RUNNING_ON_VALGRIND) {
        printf("torture: stale_copies_checked=%lu\n", st.stale_copies);
        if (st.stale_copies == 0)
            fail("no stale copy was checked under valgrind");
    }
#endif
    printf("torture: schedule=%016" PRIx64 "\n", sched_hash);
    printf("torture: errors=%lu\n", st.errors);
    if (st.errors != 0 || st.switches == 0 || st.starts == 0 ||
        st.restarts == 0 || st.finishes == 0 || st.buffers_verified == 0 ||
        st.peeks == 0) {
        printf("torture: FAILED\n");
        return 1;
    }
    printf("torture: OK\n");
    return 0;
}
