/* Per-tasklet interpreter state for CPython 3.11 (see pystate.h).
 *
 * This is the only file that includes CPython's internal headers, and the
 * only one that knows the interpreter's version: the fields below are the
 * ones CPython 3.11 keeps per thread but a tasklet must own.
 *
 *   cframe, cframe->current_frame   the C-level and Python-level frame chain
 *   datastack_chunk/top/limit       where the tasklet's frames live
 *   recursion_remaining             kept as a depth, rebuilt against the limit
 *   exc_info, exc_state             sys.exc_info()
 *   context (+ context_ver)         contextvars
 *   trash_delete_nesting            deallocation nesting
 *   c_tracefunc, c_profilefunc, tracing: sys.settrace()/setprofile() per tasklet
 *
 * The raised exception (curexc_*) is deliberately not saved: it travels
 * across a switch, which is how exceptions are thrown into tasklets.
 */
#define Py_BUILD_CORE 1
#include "pystate.h"

#include "internal/pycore_frame.h"
#include "internal/pycore_pystate.h"
#include "switch.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030C0000
#  error "this pystate.c is for CPython 3.11"
#endif

_Static_assert(sizeof(_PyCFrame) <= sizeof(pystate_cframe_buf),
               "pystate_cframe_buf too small");

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
    if (PyMethod_Check(callable))
        callable = PyMethod_GET_FUNCTION(callable);
    if (PyFunction_Check(callable)) {
        PyCodeObject *co = (PyCodeObject *)PyFunction_GET_CODE(callable);
        return 1 + (size_t)co->co_nlocalsplus + (size_t)co->co_stacksize +
               FRAME_SPECIALS_SIZE + 1;
    }
    if (PyCFunction_Check(callable))
        return 0;
    return 1 + 120;
}

/* ------------------------------------------------------------------------
 * Save / restore.
 */
void
pystate_save(PyThreadState *ts, pystate_saved *s, PyObject *const *call_sp)
{
    _PyInterpreterFrame *top = ts->cframe->current_frame;
    s->top_stacktop = -1;
    if (call_sp != NULL && top != NULL && top->owner == FRAME_OWNED_BY_THREAD) {
        PyObject **base = top->localsplus + top->f_code->co_nlocalsplus;
        if ((PyObject **)call_sp >= base &&
            (PyObject **)call_sp <= base + top->f_code->co_stacksize)
            s->top_stacktop = (int)((PyObject **)call_sp - top->localsplus);
    }
    s->cframe = ts->cframe;
    s->top_frame = top;
    s->chunk = ts->datastack_chunk;
    s->ds_top = ts->datastack_top;
    s->ds_limit = ts->datastack_limit;
    s->exc_info = ts->exc_info;
    s->exc_value = ts->exc_state.exc_value;
    s->exc_previous = ts->exc_state.previous_item;
    s->context = ts->context;
    s->tracefunc = ts->c_tracefunc;
    s->profilefunc = ts->c_profilefunc;
    s->traceobj = ts->c_traceobj;
    s->profileobj = ts->c_profileobj;
    s->recursion_depth = ts->recursion_limit - ts->recursion_remaining;
    s->trash_delete_nesting = ts->trash_delete_nesting;
    s->tracing = ts->tracing;
    /* The references now belong to s. */
    ts->exc_state.exc_value = NULL;
    ts->context = NULL;
    ts->c_traceobj = NULL;
    ts->c_profileobj = NULL;
    ts->c_tracefunc = NULL;
    ts->c_profilefunc = NULL;
}

void
pystate_restore(PyThreadState *ts, pystate_saved *s)
{
    ts->cframe = (_PyCFrame *)s->cframe;
    ts->datastack_chunk = (_PyStackChunk *)s->chunk;
    ts->datastack_top = s->ds_top;
    ts->datastack_limit = s->ds_limit;
    ts->exc_info = s->exc_info ? (_PyErr_StackItem *)s->exc_info
                               : &ts->exc_state;
    ts->exc_state.exc_value = s->exc_value;
    ts->exc_state.previous_item = (_PyErr_StackItem *)s->exc_previous;
    ts->context = s->context;
    ts->context_ver++;
    ts->c_tracefunc = s->tracefunc;
    ts->c_profilefunc = s->profilefunc;
    ts->c_traceobj = s->traceobj;
    ts->c_profileobj = s->profileobj;
    ts->recursion_remaining = ts->recursion_limit - s->recursion_depth;
    ts->trash_delete_nesting = s->trash_delete_nesting;
    ts->tracing = s->tracing;
    _PyThreadState_UpdateTracingState(ts);
    s->exc_value = NULL;
    s->context = NULL;
    s->traceobj = NULL;
    s->profileobj = NULL;
    s->cframe = NULL;
    s->top_frame = NULL;
    s->chunk = NULL;
}

void
pystate_start(PyThreadState *ts, pystate_saved *s, PyObject *callable,
              PyObject *context)
{
    _PyCFrame *cf = (_PyCFrame *)&s->root_cframe;
    size_t words = first_chunk_words(callable);
    _PyStackChunk *chunk = NULL;

    if (words > 0 && !slp_fault())
        chunk = (_PyStackChunk *)PyMem_Malloc(
            (CHUNK_HEADER_WORDS + words) * sizeof(PyObject *));
    if (chunk != NULL) {
        chunk->previous = NULL;
        chunk->size = (CHUNK_HEADER_WORDS + words) * sizeof(PyObject *);
        chunk->top = 0;
        ts->datastack_chunk = chunk;
        ts->datastack_top = &chunk->data[1];
        ts->datastack_limit = (PyObject **)((char *)chunk + chunk->size);
        s->own_root = 1;
    }
    else {
        /* CPython allocates a root chunk on the first call. */
        ts->datastack_chunk = NULL;
        ts->datastack_top = NULL;
        ts->datastack_limit = NULL;
        s->own_root = 0;
    }
    cf->use_tracing = 0;
    cf->current_frame = NULL;
    cf->previous = &ts->root_cframe;
    ts->cframe = cf;
    ts->exc_info = &ts->exc_state;
    ts->exc_state.exc_value = NULL;
    ts->exc_state.previous_item = NULL;
    Py_XINCREF(context);
    ts->context = context;
    ts->context_ver++;
    /* trace/profile functions given to the tasklet before it started
     * (tasklet.trace_function = f) move into the thread state */
    ts->c_tracefunc = s->tracefunc;
    ts->c_profilefunc = s->profilefunc;
    ts->c_traceobj = s->traceobj;
    ts->c_profileobj = s->profileobj;
    s->tracefunc = s->profilefunc = NULL;
    s->traceobj = s->profileobj = NULL;
    ts->recursion_remaining = ts->recursion_limit;
    ts->trash_delete_nesting = 0;
    ts->tracing = 0;
    _PyThreadState_UpdateTracingState(ts);
}

void
pystate_finish_release(PyThreadState *ts)
{
    /* Take everything out first: the decrefs below may run Python code,
     * which must see a consistent, empty state. */
    PyObject *exc = ts->exc_state.exc_value;
    PyObject *ctx = ts->context;
    PyObject *tobj = ts->c_traceobj, *pobj = ts->c_profileobj;
    ts->exc_state.exc_value = NULL;
    ts->context = NULL;
    ts->context_ver++;
    ts->c_tracefunc = NULL;
    ts->c_profilefunc = NULL;
    ts->c_traceobj = NULL;
    ts->c_profileobj = NULL;
    _PyThreadState_UpdateTracingState(ts);
    Py_XDECREF(exc);
    Py_XDECREF(ctx);
    Py_XDECREF(tobj);
    Py_XDECREF(pobj);
}

void
pystate_finish_free(PyThreadState *ts, pystate_saved *s)
{
    free_chunks(ts->datastack_chunk, s->own_root);
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
    Py_CLEAR(s->exc_value);
    Py_CLEAR(s->context);
    Py_CLEAR(s->traceobj);
    Py_CLEAR(s->profileobj);
    s->tracefunc = NULL;
    s->profilefunc = NULL;
    s->chunk = NULL;
    s->cframe = NULL;
    s->top_frame = NULL;
}

/* ------------------------------------------------------------------------
 * Introspection.
 */
static PyObject *
frame_object(PyThreadState *ts, _PyInterpreterFrame *top)
{
    _PyInterpreterFrame *saved = ts->cframe->current_frame;
    PyFrameObject *f;
    int gc_was_on;

    if (top == NULL)
        Py_RETURN_NONE;
    /* PyThreadState_GetFrame() skips incomplete frames and materializes the
     * frame object; point it at the suspended chain for the moment.  No
     * collection may run meanwhile (a finalizer would see a foreign frame
     * chain). */
    gc_was_on = PyGC_Disable();
    ts->cframe->current_frame = top;
    f = PyThreadState_GetFrame(ts);
    ts->cframe->current_frame = saved;
    if (gc_was_on)
        PyGC_Enable();
    if (f == NULL)
        Py_RETURN_NONE;
    return (PyObject *)f;
}

PyObject *
pystate_frame(PyThreadState *ts, pystate_saved *s)
{
    return frame_object(ts, (_PyInterpreterFrame *)s->top_frame);
}

PyObject *
pystate_current_frame(PyThreadState *ts)
{
    return frame_object(ts, ts->cframe->current_frame);
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
    if (_PyEval_SetTrace(ts, tf, tobj) < 0 ||
        _PyEval_SetProfile(ts, pf, pobj) < 0)
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
        f = profile ? s->profilefunc : s->tracefunc;
        o = profile ? s->profileobj : s->traceobj;
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
    if (f == NULL && fn != Py_None) {
        PyErr_SetString(PyExc_RuntimeError, "tracing is not available");
        return -1;
    }
    if (s == NULL)
        return profile ? _PyEval_SetProfile(ts, f, fn == Py_None ? NULL : fn)
                       : _PyEval_SetTrace(ts, f, fn == Py_None ? NULL : fn);
    if (profile) {
        s->profilefunc = f;
        Py_XSETREF(s->profileobj, f ? Py_NewRef(fn) : NULL);
    }
    else {
        s->tracefunc = f;
        Py_XSETREF(s->traceobj, f ? Py_NewRef(fn) : NULL);
    }
    return 0;
}

PyObject *
pystate_trace_opcodes_on(PyThreadState *ts)
{
    PyObject *f = frame_object(ts, ts->cframe->current_frame);
    if (f == Py_None) {
        Py_DECREF(f);
        return NULL;
    }
    ((PyFrameObject *)f)->f_trace_opcodes = 1;
    return f;
}

void
pystate_trace_opcodes_off(PyObject *frame)
{
    if (frame != NULL)
        ((PyFrameObject *)frame)->f_trace_opcodes = 0;
}

int
pystate_nesting_level(PyThreadState *ts, pystate_saved *s)
{
    _PyInterpreterFrame *f = s ? (_PyInterpreterFrame *)s->top_frame
                               : ts->cframe->current_frame;
    int entries = 0;
    for (; f != NULL; f = f->previous)
        entries += f->is_entry;
    return entries > 0 ? entries - 1 : 0;
}

int
pystate_recursion_depth(PyThreadState *ts, pystate_saved *s)
{
    if (s == NULL)
        return ts->recursion_limit - ts->recursion_remaining;
    return s->recursion_depth;
}

int
pystate_gc_collecting(void)
{
    return _PyInterpreterState_GET()->gc.collecting;
}

int
pystate_traverse(pystate_saved *s, visitproc visit, void *arg)
{
    _PyInterpreterFrame *f;
    Py_VISIT(s->exc_value);
    Py_VISIT(s->context);
    Py_VISIT(s->traceobj);
    Py_VISIT(s->profileobj);
    /* Frames owned by generators are visited by their generators.  A frame
     * waiting for a Python callee it called inline has a valid stacktop
     * (CPython stores it before the call); a frame inside a C call has
     * stacktop -1, and its value stack is visited only for the top frame
     * when pystate_save() could locate its end.  Otherwise only the locals
     * are visited: references left unvisited only keep objects alive. */
    for (f = (_PyInterpreterFrame *)s->top_frame; f != NULL; f = f->previous) {
        int i, n;
        if (f->owner != FRAME_OWNED_BY_THREAD)
            continue;
        Py_VISIT(f->frame_obj);
        Py_VISIT(f->f_func);
        Py_VISIT(f->f_code);
        Py_VISIT(f->f_locals);
        if (f->stacktop >= 0)
            n = f->stacktop;
        else if (f == s->top_frame && s->top_stacktop >= 0)
            n = s->top_stacktop;
        else
            n = f->f_code->co_nlocalsplus;
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
