/* Per-tasklet interpreter state (see pystate.h): the version layer.
 *
 * This file (with compat.h and the other csrc/py*.c files) is the only
 * place that includes CPython's internal headers or knows the
 * interpreter's version.  Everything that differs between 3.11, 3.12 and
 * 3.13 is in the version block just below: accessor macros for the fields
 * a tasklet owns, and the list of saved fields for that version.  The rest
 * of the file is written against those names only, so a new version is a
 * new entry in the block (docs/versions.md).
 *
 * What a tasklet owns, on every version:
 *   the head of the frame chain     (3.11/3.12 the cframe, 3.13 current_frame)
 *   datastack_chunk/top/limit       where the tasklet's frames live
 *   the Python recursion depth      kept as a depth, rebuilt against the limit
 *   exc_info, exc_state             sys.exc_info()
 *   context (+ context_ver)         contextvars
 *   tracing, c_tracefunc/c_profilefunc and their objects: sys.settrace()
 *                                   and setprofile() per tasklet
 * and per version: the C recursion budget (3.12+), the trashcan nesting
 * (3.11, 3.12; 3.13 counts it with the C recursion budget).
 *
 * The raised exception (curexc_*) is deliberately not saved: it travels
 * across a switch, which is how exceptions are thrown into tasklets.
 */
#define Py_BUILD_CORE 1
#include "pystate.h"

#include "internal/pycore_frame.h"
#include "internal/pycore_pystate.h"
#include "opcode.h"                       /* entered_softly() */
#if PY_VERSION_HEX >= 0x030D0000
#  include "internal/pycore_ceval.h"      /* _PyEval_SetProfile */
#endif
#include "switch.h"

/* ========================================================================
 * The version block.
 */
#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#  error "stackless_compat supports CPython 3.11, 3.12 and 3.13 only"
#endif

#if PY_VERSION_HEX >= 0x030D0000
#  define SLP_PY 313
#elif PY_VERSION_HEX >= 0x030C0000
#  define SLP_PY 312
#else
#  define SLP_PY 311
#endif

/* A trace or profile hook: the C function and its object. */
typedef struct { Py_tracefunc fn; PyObject *obj; } hook_t;
#define WHICH_trace 0
#define WHICH_profile 1

#if SLP_PY == 311
/* The frame chain hangs off the cframe (on the C stack); entry frames are
 * marked in the frame (is_entry) and live on the data stack, so a suspended
 * chain never leads into a C stack. */
#  define HAS_CFRAME 1
#  define HAS_SHIMS 0
#  define TOP_FRAME(ts)           ((ts)->cframe->current_frame)
#  define SET_TOP_FRAME(ts, f)    ((ts)->cframe->current_frame = (f))
#  define CODE_OF(f)              ((f)->f_code)
#  define FUNC_OF(f)              ((f)->f_func)
#  define IS_ENTRY(f)             ((f)->is_entry)
#  define GET_recursion_depth(ts) \
    ((ts)->recursion_limit - (ts)->recursion_remaining)
#  define SET_recursion_depth(ts, v) \
    ((ts)->recursion_remaining = (ts)->recursion_limit - (v))
#  define GET_trash_nesting(ts)   ((ts)->trash_delete_nesting)
#  define SET_trash_nesting(ts, v) ((ts)->trash_delete_nesting = (v))
#  define VERSION_FIELDS(X) \
    X(VAL, _PyCFrame *, cframe, start_cframe(ts, S)) \
    X(VAL, int, trash_nesting, 0)
/* Hooks are written straight into the thread state; the cframe's
 * use_tracing flag follows them. */
#  define HOOKS_DIRECT 1
#  define AFTER_HOOKS(ts)         _PyThreadState_UpdateTracingState(ts)
#  define SET_OTHER_TRACE(ts, f, o) _PyEval_SetTrace((ts), (f), (o))
#  define SET_OTHER_PROFILE(ts, f, o) _PyEval_SetProfile((ts), (f), (o))

#elif SLP_PY == 312
/* As 3.11, but C-level entries into the eval loop push a shim frame that
 * lives on the C stack (owner FRAME_OWNED_BY_CSTACK), the recursion limits
 * are split into a Python and a C budget, and tracing runs on PEP 669
 * (the interpreter counts the threads with a hook). */
#  define HAS_CFRAME 1
#  define HAS_SHIMS 1
#  define TOP_FRAME(ts)           ((ts)->cframe->current_frame)
#  define SET_TOP_FRAME(ts, f)    ((ts)->cframe->current_frame = (f))
#  define CODE_OF(f)              ((f)->f_code)
#  define FUNC_OF(f)              ((f)->f_funcobj)
#  define C_BUDGET                C_RECURSION_LIMIT
#  define GET_trash_nesting(ts)   ((ts)->trash.delete_nesting)
#  define SET_trash_nesting(ts, v) ((ts)->trash.delete_nesting = (v))
#  define VERSION_FIELDS(X) \
    X(VAL, _PyCFrame *, cframe, start_cframe(ts, S)) \
    X(VAL, int, c_recursion, C_BUDGET) \
    X(VAL, int, trash_nesting, 0)
#  define HOOKS_DIRECT 0
#  define SET_OTHER_TRACE(ts, f, o) _PyEval_SetTrace((ts), (f), (o))
#  define SET_OTHER_PROFILE(ts, f, o) _PyEval_SetProfile((ts), (f), (o))

#else /* 3.13 */
/* No cframe: the thread state holds the frame chain's head itself; the
 * shim frames have no code (f_executable is None); the trashcan is
 * bounded by the C recursion budget, which we already save. */
#  define HAS_CFRAME 0
#  define HAS_SHIMS 1
#  define TOP_FRAME(ts)           ((ts)->current_frame)
#  define SET_TOP_FRAME(ts, f)    ((ts)->current_frame = (f))
#  define CODE_OF(f)              ((PyCodeObject *)(f)->f_executable)
#  define FUNC_OF(f)              ((f)->f_funcobj)
#  define C_BUDGET                Py_C_RECURSION_LIMIT
#  define GET_current_frame(ts)   ((ts)->current_frame)
#  define SET_current_frame(ts, v) ((ts)->current_frame = (v))
#  define VERSION_FIELDS(X) \
    X(VAL, _PyInterpreterFrame *, current_frame, NULL) \
    X(VAL, int, c_recursion, C_BUDGET)
#  define HOOKS_DIRECT 0
/* 3.13 does not export _PyEval_SetTrace: a hook can be set on the calling
 * thread only (PyEval_SetTrace). */
#  define SET_OTHER_PROFILE(ts, f, o) _PyEval_SetProfile((ts), (f), (o))
#endif

#if SLP_PY >= 312
#  define GET_recursion_depth(ts) \
    ((ts)->py_recursion_limit - (ts)->py_recursion_remaining)
#  define SET_recursion_depth(ts, v) \
    ((ts)->py_recursion_remaining = (ts)->py_recursion_limit - (v))
#  define GET_c_recursion(ts)     ((ts)->c_recursion_remaining)
#  define SET_c_recursion(ts, v)  ((ts)->c_recursion_remaining = (v))
#  define IS_SHIM(f)              ((f)->owner == FRAME_OWNED_BY_CSTACK)
#endif

#if HAS_CFRAME
#  define GET_cframe(ts)          ((ts)->cframe)
#  define SET_cframe(ts, v)       ((ts)->cframe = (v))
#endif

/* Fields every version has. */
#define GET_chunk(ts)             ((ts)->datastack_chunk)
#define SET_chunk(ts, v)          ((ts)->datastack_chunk = (v))
#define GET_ds_top(ts)            ((ts)->datastack_top)
#define SET_ds_top(ts, v)         ((ts)->datastack_top = (v))
#define GET_ds_limit(ts)          ((ts)->datastack_limit)
#define SET_ds_limit(ts, v)       ((ts)->datastack_limit = (v))
#define GET_exc_info(ts)          ((ts)->exc_info)
#define SET_exc_info(ts, v) \
    ((ts)->exc_info = (v) != NULL ? (v) : &(ts)->exc_state)
#define GET_exc_value(ts)         ((ts)->exc_state.exc_value)
#define SET_exc_value(ts, v)      ((ts)->exc_state.exc_value = (v))
#define GET_exc_previous(ts)      ((ts)->exc_state.previous_item)
#define SET_exc_previous(ts, v)   ((ts)->exc_state.previous_item = (v))
#define GET_context(ts)           ((ts)->context)
#define SET_context(ts, v)        ((ts)->context = (v), (ts)->context_ver++)
#define GET_tracing(ts)           ((ts)->tracing)
#define SET_tracing(ts, v)        ((ts)->tracing = (v))

/* THE list of saved fields: (kind, C type, name, value for a new tasklet).
 * Kinds: VAL a plain value; REF an owned reference that moves between the
 * thread state and the tasklet; HOOK a trace/profile hook.  Save, restore,
 * start, finish, discard and traverse are all generated from it, so a field
 * added for a version cannot be forgotten in one of them.  Start values
 * may use the locals of pystate_start() (ts, S, st_*, context).  Hooks
 * come last: on 3.12+ they are installed through the interpreter's setter
 * once everything else is in place. */
#define SAVED_FIELDS(X) \
    VERSION_FIELDS(X) \
    X(VAL, _PyStackChunk *, chunk, st_chunk) \
    X(VAL, PyObject **, ds_top, st_top) \
    X(VAL, _PyErr_StackItem *, exc_info, NULL) \
    X(REF, PyObject *, exc_value, NULL) \
    X(VAL, _PyErr_StackItem *, exc_previous, NULL) \
    X(REF, PyObject *, context, Py_XNewRef(context)) \
    X(VAL, int, recursion_depth, 0) \
    X(VAL, int, tracing, 0) \
    X(HOOK, hook_t, trace, -) \
    X(HOOK, hook_t, profile, -)

typedef struct {
#define X(kind, type, name, start) type name;
    SAVED_FIELDS(X)
#undef X
    _PyInterpreterFrame *top_frame; /* head of the chain at the save */
#if HAS_SHIMS
    /* The shim frames taken out of the suspended chain (see relink_out()),
     * linked through themselves; and how many there were. */
    _PyInterpreterFrame *shims;
#endif
    int top_stacktop;           /* value stack top of the top frame when it
                                   blocked in a call from its value stack,
                                   else -1 (see pystate_traverse) */
#if HAS_SHIMS
    /* Bit fields: every tasklet carries this struct, and 8 bytes more
     * would cross a word of PYSTATE_SAVED_WORDS. */
    int nshims : 16;
    int nhard : 15;             /* the entries Stackless could not make
                                   soft (see entered_softly()) */
    unsigned int own_root : 1;  /* the first data stack chunk is ours */
#else
    int own_root;               /* the first data stack chunk is ours */
#endif
#if HAS_CFRAME
    _PyCFrame root_cframe;      /* a tasklet's root C frame record lives
                                   here, not on its C stack */
#endif
} saved_t;

_Static_assert(sizeof(saved_t) <= sizeof(pystate_saved),
               "PYSTATE_SAVED_WORDS too small for this CPython");

#define SAVED(s) ((saved_t *)(void *)(s))

/* ------------------------------------------------------------------------
 * Hooks.
 */
#if HOOKS_DIRECT
/* 3.11: the thread state's hook fields are the tasklet's; they move in and
 * out like references. */
static inline void
hook_out(PyThreadState *ts, hook_t *h, int which)
{
    if (which == WHICH_profile) {
        h->fn = ts->c_profilefunc;
        h->obj = ts->c_profileobj;
        ts->c_profilefunc = NULL;
        ts->c_profileobj = NULL;
    }
    else {
        h->fn = ts->c_tracefunc;
        h->obj = ts->c_traceobj;
        ts->c_tracefunc = NULL;
        ts->c_traceobj = NULL;
    }
}

static inline void
hook_in(PyThreadState *ts, hook_t *h, int which)
{
    if (which == WHICH_profile) {
        ts->c_profilefunc = h->fn;
        ts->c_profileobj = h->obj;
    }
    else {
        ts->c_tracefunc = h->fn;
        ts->c_traceobj = h->obj;
    }
    h->fn = NULL;
    h->obj = NULL;
}
#  define hook_save hook_out
#  define hook_restore hook_in
#  define hook_start hook_in
#  define hook_take hook_out

#else
/* 3.12+: the interpreter counts the threads that have a hook and
 * instruments code for them (PEP 669), so a hook is only ever changed
 * through the public setter.  The thread state keeps the hook of the
 * tasklet that left until the next one is restored; a switch between
 * tasklets with the same hooks (none, typically) costs two compares. */
static void
hook_set(PyThreadState *ts, int which, Py_tracefunc fn, PyObject *obj)
{
    PyObject *exc;
    if (which == WHICH_profile ? ts->c_profilefunc == fn &&
                                 ts->c_profileobj == obj
                               : ts->c_tracefunc == fn &&
                                 ts->c_traceobj == obj)
        return;
    /* The setter runs audit hooks; the exception thrown into the tasklet
     * (if any) is kept out of their way. */
    exc = PyErr_GetRaisedException();
    if (which == WHICH_profile)
        PyEval_SetProfile(fn, obj);
    else
        PyEval_SetTrace(fn, obj);
    PyErr_SetRaisedException(exc);
}

static inline void
hook_save(PyThreadState *ts, hook_t *h, int which)
{
    h->fn = which == WHICH_profile ? ts->c_profilefunc : ts->c_tracefunc;
    h->obj = Py_XNewRef(which == WHICH_profile ? ts->c_profileobj
                                               : ts->c_traceobj);
}

static inline void
hook_restore(PyThreadState *ts, hook_t *h, int which)
{
    hook_set(ts, which, h->fn, h->obj);
    h->fn = NULL;
    Py_CLEAR(h->obj);
}
#  define hook_start hook_restore

static inline void
hook_take(PyThreadState *ts, hook_t *h, int which)
{
    hook_save(ts, h, which);
    hook_set(ts, which, NULL, NULL);
}
#  define AFTER_HOOKS(ts)         ((void)(ts))
#endif

#define CHUNK_HEADER_WORDS \
    ((sizeof(_PyStackChunk) - sizeof(PyObject *)) / sizeof(PyObject *))

int
pystate_check_version(void)
{
    if ((Py_Version >> 16) != (PY_VERSION_HEX >> 16)) {
        PyErr_Format(PyExc_ImportError,
                     "stackless_compat was built for CPython %d.%d and "
                     "supports only that version; this is %d.%d",
                     PY_MAJOR_VERSION, PY_MINOR_VERSION,
                     (int)((Py_Version >> 24) & 0xff),
                     (int)((Py_Version >> 16) & 0xff));
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Data stack chunks.
 *
 * CPython gives each thread a 16 KiB first chunk; a tasklet gets a small one
 * of its own (just enough for the function it runs, so that 100k blocked
 * tasklets stay small).  When a call does not fit, CPython allocates a 16
 * KiB chunk through the arena allocator and frees it when the call returns.
 * Without a cache a loop of calls at that boundary would mmap/munmap on
 * every call, so we keep a few such chunks.  Chunks are allocated and freed
 * with the GIL held, which protects the cache.
 */
#define CPY_CHUNK_SIZE (16 * 1024)
#define CHUNK_CACHE_MAX 16

static PyObjectArenaAllocator orig_arena;
static void *chunk_cache[CHUNK_CACHE_MAX];
static int chunk_cache_len;

static void *
cache_arena_alloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size == CPY_CHUNK_SIZE && chunk_cache_len > 0)
        return chunk_cache[--chunk_cache_len];
    return orig_arena.alloc(orig_arena.ctx, size);
}

static void
cache_arena_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (size == CPY_CHUNK_SIZE && chunk_cache_len < CHUNK_CACHE_MAX) {
        chunk_cache[chunk_cache_len++] = ptr;
        return;
    }
    orig_arena.free(orig_arena.ctx, ptr, size);
}

void
pystate_install_chunk_cache(void)
{
    PyObjectArenaAllocator mine;
    if (orig_arena.alloc != NULL)
        return;
    PyObject_GetArenaAllocator(&orig_arena);
    mine.ctx = NULL;
    mine.alloc = cache_arena_alloc;
    mine.free = cache_arena_free;
    PyObject_SetArenaAllocator(&mine);
}

static void
arena_free_chunk(_PyStackChunk *c)
{
    PyObjectArenaAllocator a;
    PyObject_GetArenaAllocator(&a);
    a.free(a.ctx, c, c->size);
}

/* Free a tasklet's chunk chain; the root (previous == NULL) is ours when
 * own_root is set. */
static void
free_chunks(_PyStackChunk *c, int own_root)
{
    while (c != NULL) {
        _PyStackChunk *prev = c->previous;
        if (prev == NULL && own_root)
            PyMem_Free(c);
        else
            arena_free_chunk(c);
        c = prev;
    }
}

/* Slots the first frame of `callable` needs, or 0 when unknown. */
static size_t
frame_slots(PyObject *callable)
{
    if (PyMethod_Check(callable))
        callable = PyMethod_GET_FUNCTION(callable);
    if (PyFunction_Check(callable)) {
        PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(callable);
        return (size_t)co->co_nlocalsplus + (size_t)co->co_stacksize +
               FRAME_SPECIALS_SIZE;
    }
    return 0;
}

/* Words of first data stack chunk for a tasklet that runs `callable`:
 * one skipped slot (so CPython never frees our root chunk), the frame of a
 * Python function and the one word CPython wants free beyond a frame; 0
 * for a builtin (a blocked `tasklet(ch.receive)` has no Python frame at
 * all: if it ever calls Python code, CPython allocates a chunk then, which
 * the chunk cache recycles); room for a small frame when unknown.  Deeper
 * calls get CPython's own chunks. */
static size_t
first_chunk_words(PyObject *callable)
{
    size_t slots = frame_slots(callable);
    if (slots > 0)
        return 1 + slots + 1;
    if (PyCFunction_Check(callable))
        return 0;
    return 1 + 120;
}


/* ------------------------------------------------------------------------
 * Shim frames (3.12+).
 *
 * When C code calls into the eval loop, CPython links a shim frame that
 * lives on the C stack into the frame chain.  Once the tasklet is
 * suspended, its C stack is somewhere else (switch.c saved it) and that
 * memory belongs to the running tasklet, so nothing may ever follow the
 * chain into a shim: not our own readers, not PyFrame_GetBack() of a frame
 * object, not a traceback walk or pdb.  At every save the chain is relinked
 * past its shims; the restore puts them back.  The list of taken-out shims
 * is kept in the shims themselves: their f_locals and f_globals are unused
 * while they are on the C stack (the interpreter never initialises them),
 * and the shims travel with the saved stack.  No allocation, so the save
 * cannot fail.
 */
#if HAS_SHIMS
static int entered_softly(_PyInterpreterFrame *f, _PyInterpreterFrame *caller);

#define SHIM_SLOT(shim)  (*(_PyInterpreterFrame ***)(void *)&(shim)->f_locals)
#define SHIM_NEXT(shim)  (*(_PyInterpreterFrame **)(void *)&(shim)->f_globals)

static void
relink_out(saved_t *S)
{
    _PyInterpreterFrame **slot = &S->top_frame;
    _PyInterpreterFrame *list = NULL, *above = NULL;
    int n = 0, hard = 0;
    while (*slot != NULL) {
        _PyInterpreterFrame *p = *slot;
        if (IS_SHIM(p)) {
            _PyInterpreterFrame *below = p;
            while (below != NULL && IS_SHIM(below)) {
                n++;
                below = below->previous;
            }
            if (above != NULL && below != NULL &&
                !entered_softly(above, below))
                hard++;
            SHIM_SLOT(p) = slot;
            SHIM_NEXT(p) = list;
            list = p;
            *slot = below;
            if (below == NULL)
                break;
            p = below;
        }
        above = p;
        slot = &p->previous;
    }
    S->shims = list;
    S->nshims = n;
    S->nhard = hard;
}

static void
relink_in(saved_t *S)
{
    _PyInterpreterFrame *p = S->shims;
    while (p != NULL) {
        _PyInterpreterFrame *next = SHIM_NEXT(p);
        *SHIM_SLOT(p) = p;
        p->f_locals = NULL;
        p->f_globals = NULL;
        p = next;
    }
    S->shims = NULL;
}
#endif

#if HAS_CFRAME
static _PyCFrame *
start_cframe(PyThreadState *ts, saved_t *S)
{
    _PyCFrame *cf = &S->root_cframe;
    memset(cf, 0, sizeof(*cf));
    cf->current_frame = NULL;
    cf->previous = &ts->root_cframe;
    return cf;
}
#endif

/* The data stack's limit is not saved: CPython keeps it at the end of the
 * current chunk (push_chunk/pop), so it follows from the chunk; 8 bytes
 * less in every tasklet. */
static inline PyObject **
chunk_limit(_PyStackChunk *c)
{
    return c != NULL ? (PyObject **)((char *)c + c->size) : NULL;
}

/* ------------------------------------------------------------------------
 * Save / restore, generated from SAVED_FIELDS.
 */
#define SAVE_VAL(n)     S->n = GET_##n(ts);
#define SAVE_REF(n)     S->n = GET_##n(ts); SET_##n(ts, NULL);
#define SAVE_HOOK(n)    hook_save(ts, &S->n, WHICH_##n);
#define RESTORE_VAL(n)  SET_##n(ts, S->n);
#define RESTORE_REF(n)  SET_##n(ts, S->n); S->n = NULL;
#define RESTORE_HOOK(n) hook_restore(ts, &S->n, WHICH_##n);
#define START_VAL(n, v) SET_##n(ts, v);
#define START_REF(n, v) SET_##n(ts, v);
#define START_HOOK(n, v) hook_start(ts, &S->n, WHICH_##n);
#define TAKE_VAL(n)
#define TAKE_REF(n)     PyObject *old_##n = GET_##n(ts); SET_##n(ts, NULL);
#define TAKE_HOOK(n)    hook_t old_##n; hook_take(ts, &old_##n, WHICH_##n);
#define DROP_VAL(n)
#define DROP_REF(n)     Py_XDECREF(old_##n);
#define DROP_HOOK(n)    Py_XDECREF(old_##n.obj);
#define DISCARD_VAL(n)  memset(&S->n, 0, sizeof(S->n));
#define DISCARD_REF(n)  Py_CLEAR(S->n);
#define DISCARD_HOOK(n) S->n.fn = NULL; Py_CLEAR(S->n.obj);
#define VISIT_VAL(n)
#define VISIT_REF(n)    Py_VISIT(S->n);
#define VISIT_HOOK(n)   Py_VISIT(S->n.obj);

void
pystate_save(PyThreadState *ts, pystate_saved *s, PyObject *const *call_sp)
{
    saved_t *S = SAVED(s);
    _PyInterpreterFrame *top = TOP_FRAME(ts);
    S->top_stacktop = -1;
    if (call_sp != NULL && top != NULL && top->owner == FRAME_OWNED_BY_THREAD) {
        PyCodeObject *co = CODE_OF(top);
        PyObject **base = top->localsplus + co->co_nlocalsplus;
        if ((PyObject **)call_sp >= base &&
            (PyObject **)call_sp <= base + co->co_stacksize)
            S->top_stacktop = (int)((PyObject **)call_sp - top->localsplus);
    }
    S->top_frame = top;
#define X(kind, type, name, start) SAVE_##kind(name)
    SAVED_FIELDS(X)
#undef X
#if HAS_SHIMS
    relink_out(S);
#endif
}

void
pystate_restore(PyThreadState *ts, pystate_saved *s)
{
    saved_t *S = SAVED(s);
#if HAS_SHIMS
    relink_in(S);       /* the C stack is back: the shims are valid again */
#endif
#define X(kind, type, name, start) RESTORE_##kind(name)
    SAVED_FIELDS(X)
#undef X
    SET_ds_limit(ts, chunk_limit(GET_chunk(ts)));
    AFTER_HOOKS(ts);
    S->top_frame = NULL;
    S->chunk = NULL;
}

void
pystate_park(PyThreadState *ts)
{
#if HAS_CFRAME
    ts->cframe = &ts->root_cframe;
#else
    ts->current_frame = NULL;
#endif
}

void
pystate_start(PyThreadState *ts, pystate_saved *s, PyObject *callable,
              PyObject *context)
{
    saved_t *S = SAVED(s);
    size_t words = first_chunk_words(callable);
    _PyStackChunk *st_chunk = NULL;
    PyObject **st_top = NULL, **st_limit = NULL;

    if (words > 0 && !slp_fault())
        st_chunk = (_PyStackChunk *)PyMem_Malloc(
            (CHUNK_HEADER_WORDS + words) * sizeof(PyObject *));
    if (st_chunk != NULL) {
        st_chunk->previous = NULL;
        st_chunk->size = (CHUNK_HEADER_WORDS + words) * sizeof(PyObject *);
        st_chunk->top = 0;
        st_top = &st_chunk->data[1];
        st_limit = (PyObject **)((char *)st_chunk + st_chunk->size);
        S->own_root = 1;
    }
    else {
        /* CPython allocates a root chunk on the first call. */
        S->own_root = 0;
    }
    S->top_frame = NULL;
    /* Trace/profile functions given to the tasklet before it started
     * (tasklet.trace_function = f) move into the thread state. */
#define X(kind, type, name, start) START_##kind(name, start)
    SAVED_FIELDS(X)
#undef X
    SET_ds_limit(ts, st_limit);
    AFTER_HOOKS(ts);
}

/* pystate_finish_release in two steps: every field but the hooks, then
 * the hooks. */
#define TAKE_NOHOOK_VAL(n)
#define TAKE_NOHOOK_REF(n)  TAKE_REF(n)
#define TAKE_NOHOOK_HOOK(n)
#define DROP_NOHOOK_VAL(n)
#define DROP_NOHOOK_REF(n)  DROP_REF(n)
#define DROP_NOHOOK_HOOK(n)
#define TAKE_ONLYHOOK_VAL(n)
#define TAKE_ONLYHOOK_REF(n)
#define TAKE_ONLYHOOK_HOOK(n) TAKE_HOOK(n)
#define DROP_ONLYHOOK_VAL(n)
#define DROP_ONLYHOOK_REF(n)
#define DROP_ONLYHOOK_HOOK(n) DROP_HOOK(n)

void
pystate_finish_release_keep_trace(PyThreadState *ts)
{
    /* Take everything out first: the decrefs below may run Python code,
     * which must see a consistent, empty state. */
#define X(kind, type, name, start) TAKE_NOHOOK_##kind(name)
    SAVED_FIELDS(X)
#undef X
#define X(kind, type, name, start) DROP_NOHOOK_##kind(name)
    SAVED_FIELDS(X)
#undef X
}

void
pystate_release_trace(PyThreadState *ts)
{
#define X(kind, type, name, start) TAKE_ONLYHOOK_##kind(name)
    SAVED_FIELDS(X)
#undef X
    AFTER_HOOKS(ts);
#define X(kind, type, name, start) DROP_ONLYHOOK_##kind(name)
    SAVED_FIELDS(X)
#undef X
}

void
pystate_finish_free(PyThreadState *ts, pystate_saved *s)
{
    free_chunks(ts->datastack_chunk, SAVED(s)->own_root);
    ts->datastack_chunk = NULL;
    ts->datastack_top = NULL;
    ts->datastack_limit = NULL;
}

void
pystate_discard(pystate_saved *s)
{
    /* The frames on the data stack hold references that are also held by C
     * code on the abandoned C stack; neither can be released safely, so the
     * frames' objects are leaked on purpose.  Only the chunks are freed. */
    saved_t *S = SAVED(s);
#define X(kind, type, name, start) DISCARD_##kind(name)
    SAVED_FIELDS(X)
#undef X
    S->top_frame = NULL;
#if HAS_SHIMS
    S->shims = NULL;
    S->nshims = 0;
    S->nhard = 0;
#endif
}

int
pystate_copies_args(PyObject *f)
{
    /* CPython's own call of a function object (not every version exports
     * it by name): read from a function made for the purpose, once */
    static vectorcallfunc plain;
    if (!PyFunction_Check(f))
        return 0;
    if (plain == NULL) {
        PyObject *globals = PyDict_New();
        PyCodeObject *code = PyCode_NewEmpty("<stackless_compat>", "f", 0);
        PyObject *fn = NULL;
        if (globals != NULL && code != NULL)
            fn = PyFunction_New((PyObject *)code, globals);
        if (fn != NULL)
            plain = ((PyFunctionObject *)fn)->vectorcall;
        Py_XDECREF(fn);
        Py_XDECREF((PyObject *)code);
        Py_XDECREF(globals);
        if (plain == NULL) {
            PyErr_Clear();
            return 0;
        }
    }
    return ((PyFunctionObject *)f)->vectorcall == plain;
}

PyObject **
pystate_context_slot(pystate_saved *s)
{
    return &SAVED(s)->context;
}

/* ------------------------------------------------------------------------
 * Introspection.
 */
static PyObject *
frame_object(PyThreadState *ts, _PyInterpreterFrame *top)
{
    _PyInterpreterFrame *saved = TOP_FRAME(ts);
    PyFrameObject *f;
    int gc_was_on;

    if (top == NULL)
        Py_RETURN_NONE;
    /* PyThreadState_GetFrame() skips incomplete frames and materializes the
     * frame object; point it at the suspended chain for the moment.  No
     * collection may run meanwhile (a finalizer would see a foreign frame
     * chain). */
    gc_was_on = PyGC_Disable();
    SET_TOP_FRAME(ts, top);
    f = PyThreadState_GetFrame(ts);
    SET_TOP_FRAME(ts, saved);
    if (gc_was_on)
        PyGC_Enable();
    if (f == NULL)
        Py_RETURN_NONE;
    return (PyObject *)f;
}

PyObject *
pystate_frame(PyThreadState *ts, pystate_saved *s)
{
    return frame_object(ts, SAVED(s)->top_frame);
}

PyObject *
pystate_current_frame(PyThreadState *ts)
{
    return frame_object(ts, TOP_FRAME(ts));
}

/* Set the C-level hook of ts (the calling thread's on 3.13). */
static int
set_thread_hook(PyThreadState *ts, int profile, Py_tracefunc f, PyObject *obj)
{
#ifdef SET_OTHER_TRACE
    return profile ? SET_OTHER_PROFILE(ts, f, obj) : SET_OTHER_TRACE(ts, f, obj);
#else
    if (profile)
        return SET_OTHER_PROFILE(ts, f, obj);
    if (ts != PyThreadState_GetUnchecked()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this CPython cannot set a trace function on "
                        "another thread");
        return -1;
    }
    PyEval_SetTrace(f, obj);
    return PyErr_Occurred() ? -1 : 0;
#endif
}

static Py_tracefunc trace_trampoline_fn, profile_trampoline_fn;

int
pystate_init_trampolines(void)
{
    PyThreadState *ts = PyThreadState_Get();
    Py_tracefunc tf = ts->c_tracefunc, pf = ts->c_profilefunc;
    PyObject *tobj = Py_XNewRef(ts->c_traceobj);
    PyObject *pobj = Py_XNewRef(ts->c_profileobj);
    PyObject *sys = PyImport_ImportModule("sys"), *dummy = NULL, *r;
    int rc = -1;
    if (sys == NULL)
        goto done;
    dummy = PyObject_GetAttrString(sys, "gettrace");    /* any callable */
    if (dummy == NULL)
        goto done;
    r = PyObject_CallMethod(sys, "settrace", "O", dummy);
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    trace_trampoline_fn = ts->c_tracefunc;
    r = PyObject_CallMethod(sys, "setprofile", "O", dummy);
    if (r == NULL)
        goto done;
    Py_DECREF(r);
    profile_trampoline_fn = ts->c_profilefunc;
    rc = 0;
done:
    /* put back whatever was there */
    if (set_thread_hook(ts, 0, tf, tobj) < 0 ||
        set_thread_hook(ts, 1, pf, pobj) < 0)
        rc = -1;
    Py_XDECREF(tobj);
    Py_XDECREF(pobj);
    Py_XDECREF(dummy);
    Py_XDECREF(sys);
    return rc;
}

PyObject *
pystate_get_trace(PyThreadState *ts, pystate_saved *s, int profile)
{
    Py_tracefunc f;
    PyObject *o;
    if (s == NULL) {
        f = profile ? ts->c_profilefunc : ts->c_tracefunc;
        o = profile ? ts->c_profileobj : ts->c_traceobj;
    }
    else {
        hook_t *h = profile ? &SAVED(s)->profile : &SAVED(s)->trace;
        f = h->fn;
        o = h->obj;
    }
    if (f != NULL && f == (profile ? profile_trampoline_fn
                                   : trace_trampoline_fn) && o != NULL)
        return Py_NewRef(o);
    Py_RETURN_NONE;
}

int
pystate_set_trace(PyThreadState *ts, pystate_saved *s, int profile,
                  PyObject *fn)
{
    Py_tracefunc f = fn == Py_None ? NULL
                   : (profile ? profile_trampoline_fn : trace_trampoline_fn);
    hook_t *h;
    if (f == NULL && fn != Py_None) {
        PyErr_SetString(PyExc_RuntimeError, "tracing is not available");
        return -1;
    }
    if (s == NULL)
        return set_thread_hook(ts, profile, f,
                                       fn == Py_None ? NULL : fn);
    h = profile ? &SAVED(s)->profile : &SAVED(s)->trace;
    h->fn = f;
    Py_XSETREF(h->obj, f ? Py_NewRef(fn) : NULL);
    return 0;
}

int
pystate_nesting_level(PyThreadState *ts, pystate_saved *s)
{
    int entries = 0;
#if HAS_SHIMS
    _PyInterpreterFrame *f;
    if (s != NULL) {
        entries = SAVED(s)->nshims;
    }
    else {
        for (f = TOP_FRAME(ts); f != NULL; f = f->previous)
            entries += IS_SHIM(f);
    }
#else
    _PyInterpreterFrame *f = s ? SAVED(s)->top_frame : TOP_FRAME(ts);
    for (; f != NULL; f = f->previous)
        entries += IS_ENTRY(f);
#endif
    return entries > 0 ? entries - 1 : 0;
}

/* Was Python code `f` entered (an entry frame) the way Stackless entered
 * it without C recursion: a generator resumed by a loop or `await`, or a
 * class's __new__/__init__, an instance's __call__, f(*args) or a module's
 * code run by exec() called from Python? */
#if SLP_PY == 311
static int
entered_softly(_PyInterpreterFrame *f)
{
    _PyInterpreterFrame *caller = f->previous;
    PyObject *name;
    switch (_Py_OPCODE(*caller->prev_instr)) {
    case FOR_ITER: case SEND:
        return CODE_OF(f)->co_flags &
               (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR);
    case CALL_FUNCTION_EX:
        /* f(*args, **kwargs): never inlined, most often a direct call */
        return 1;
    case CALL: case CALL_ADAPTIVE: case CALL_PY_EXACT_ARGS:
    case CALL_PY_WITH_DEFAULTS:
    case PRECALL: case PRECALL_ADAPTIVE: case PRECALL_BOUND_METHOD:
    case PRECALL_BUILTIN_CLASS: case PRECALL_BUILTIN_FAST_WITH_KEYWORDS:
    case PRECALL_METHOD_DESCRIPTOR_FAST_WITH_KEYWORDS:
    case PRECALL_NO_KW_BUILTIN_FAST: case PRECALL_NO_KW_BUILTIN_O:
    case PRECALL_NO_KW_METHOD_DESCRIPTOR_FAST:
    case PRECALL_NO_KW_METHOD_DESCRIPTOR_NOARGS:
    case PRECALL_NO_KW_METHOD_DESCRIPTOR_O: case PRECALL_PYFUNC:
        name = CODE_OF(f)->co_name;
        return _PyUnicode_EqualToASCIIString(name, "__init__") ||
               _PyUnicode_EqualToASCIIString(name, "__new__") ||
               _PyUnicode_EqualToASCIIString(name, "__call__") ||
               _PyUnicode_EqualToASCIIString(name, "<module>");
    default:
        return 0;
    }
}

int
pystate_stackless_nesting(PyThreadState *ts, pystate_saved *s)
{
    _PyInterpreterFrame *f = s ? SAVED(s)->top_frame : TOP_FRAME(ts);
    int n = 0;
    for (; f != NULL; f = f->previous)
        if (IS_ENTRY(f) && f->previous != NULL && !entered_softly(f))
            n++;
    return n;
}
#else
/* 3.12+: an entry is the frame above a run of shims; `caller` is the
 * Python frame below them, stopped at the instruction that called. */
#  if SLP_PY == 312
#    define CALLER_INSTR(f) ((f)->prev_instr)
#  else
#    define CALLER_INSTR(f) ((f)->instr_ptr)
#  endif
static int
entered_softly(_PyInterpreterFrame *f, _PyInterpreterFrame *caller)
{
    PyObject *name;
    switch (_Py_OPCODE(*CALLER_INSTR(caller))) {
    case FOR_ITER: case INSTRUMENTED_FOR_ITER: case SEND:
        return CODE_OF(f)->co_flags &
               (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR);
    case CALL_FUNCTION_EX: case INSTRUMENTED_CALL_FUNCTION_EX:
        return 1;
    default:
        /* the CALL family has many specialised forms per version; the
         * names below are entered from Python only by a call */
        name = CODE_OF(f)->co_name;
        return _PyUnicode_EqualToASCIIString(name, "__init__") ||
               _PyUnicode_EqualToASCIIString(name, "__new__") ||
               _PyUnicode_EqualToASCIIString(name, "__call__") ||
               _PyUnicode_EqualToASCIIString(name, "<module>");
    }
}

/* The suspended chain keeps no shims (they are taken out): its count was
 * made at the save (relink_out()). */
int
pystate_stackless_nesting(PyThreadState *ts, pystate_saved *s)
{
    _PyInterpreterFrame *f, *below;
    int n = 0;
    if (s != NULL)
        return SAVED(s)->nhard;
    for (f = TOP_FRAME(ts); f != NULL; f = f->previous) {
        if (IS_SHIM(f) || f->previous == NULL || !IS_SHIM(f->previous))
            continue;
        for (below = f->previous; below != NULL && IS_SHIM(below);
             below = below->previous)
            ;
        if (below != NULL && !entered_softly(f, below))
            n++;
    }
    return n;
}
#endif

int
pystate_recursion_depth(PyThreadState *ts, pystate_saved *s)
{
    if (s == NULL)
        return GET_recursion_depth(ts);
    return SAVED(s)->recursion_depth;
}

int
pystate_gc_collecting(void)
{
    return PyInterpreterState_Get()->gc.collecting;
}

int
pystate_traverse(pystate_saved *s, visitproc visit, void *arg)
{
    saved_t *S = SAVED(s);
    _PyInterpreterFrame *f;
#define X(kind, type, name, start) VISIT_##kind(name)
    SAVED_FIELDS(X)
#undef X
    /* Frames owned by generators are visited by their generators.  A frame
     * waiting for a Python callee it called inline has a valid stacktop
     * (CPython stores it before the call); a frame inside a C call has
     * stacktop -1, and its value stack is visited only for the top frame
     * when pystate_save() could locate its end.  Otherwise only the locals
     * are visited: references left unvisited only keep objects alive.
     * The chain has no shim frames (relink_out()). */
    for (f = S->top_frame; f != NULL; f = f->previous) {
        int i, n;
        if (f->owner != FRAME_OWNED_BY_THREAD)
            continue;
        Py_VISIT(f->frame_obj);
        Py_VISIT(FUNC_OF(f));
        Py_VISIT((PyObject *)CODE_OF(f));
        Py_VISIT(f->f_locals);
        if (f->stacktop >= 0)
            n = f->stacktop;
        else if (f == S->top_frame && S->top_stacktop >= 0)
            n = S->top_stacktop;
        else
            n = CODE_OF(f)->co_nlocalsplus;
        for (i = 0; i < n; i++)
            Py_VISIT(f->localsplus[i]);
    }
    return 0;
}

PyObject *
pystate_get_context(PyThreadState *ts)
{
    return ts->context;
}

void
pystate_set_context(PyThreadState *ts, PyObject *ctx)
{
    PyObject *old = ts->context;
    Py_XINCREF(ctx);
    ts->context = ctx;
    ts->context_ver++;
    Py_XDECREF(old);
}

/* ------------------------------------------------------------------------
 * For csrc/pyframe.c (pickling): a suspended tasklet's frame chain and the
 * exception it handles.
 */
void *
pystate_saved_top_frame(pystate_saved *s)
{
    return SAVED(s)->top_frame;
}

PyObject *
pystate_saved_handled_exc(PyThreadState *ts, pystate_saved *s)
{
    _PyErr_StackItem *ei = SAVED(s)->exc_info;
    if (ei == NULL || ei == &ts->exc_state)
        return SAVED(s)->exc_value;
    return ei->exc_value;
}
