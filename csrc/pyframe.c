/* Frames of suspended tasklets for CPython 3.11, 3.12, 3.13 (see
 * pyframe.h).
 *
 * Part of the version layer: this file knows the interpreter frame
 * (_PyInterpreterFrame) and the frame object.  stackless_compat/_pickle.py
 * does the version-neutral part (what a position in the bytecode means,
 * validation of a pickled state against the code).
 *
 * Reading.  A suspended tasklet's frames are reached only through its saved
 * state (pystate_saved.top_frame and each frame's `previous`); frames live on
 * the tasklet's data stack, in frame objects or in generators, never on a
 * C stack (3.12+ shim frames are relinked out while it is suspended).
 *
 * Resuming (3.11; 3.12+ below, at the version block).  A pickled frame
 * becomes a frame object that owns its
 * interpreter frame (PyFrame_New), filled with the saved locals and value
 * stack and positioned just before the instruction to run next.  The
 * resumer bound to the new tasklet evaluates the innermost frame with
 * _PyEval_EvalFrameDefault() (pushing the result of the operation it was
 * suspended in), then hands the return value to its caller's frame and
 * evaluates that one, down to the outermost -- the way the interpreter
 * resumes a generator.  While the trampoline runs, the frames are linked
 * (`previous`) into the thread's frame chain and marked as owned by the
 * thread, so that tracebacks, sys._getframe(), frame.clear() and the
 * collector see them as running frames; once a frame has returned it goes
 * back to its frame object.
 */
#define Py_BUILD_CORE 1
#include "pyframe.h"
#include "module.h"

#include "frameobject.h"
#include "internal/pycore_code.h"
#include "internal/pycore_frame.h"
#include "internal/pycore_pystate.h"

/* ========================================================================
 * The version block: what differs in the interpreter frame between the
 * versions.  Below it, code is written against these names only.
 *
 * Positions are instruction indexes (code units).  FRAME_LASTI is where a
 * frame object stands (what f_lasti reports).  A generator's position
 * (GEN_LASTI) is the instruction it stopped at: its RETURN_GENERATOR
 * before it starts, the YIELD_VALUE it is suspended at after; 3.11 and
 * 3.12 record that instruction (prev_instr), 3.13 the one after it
 * (instr_ptr).  3.13 also tells a generator suspended in a `yield from`
 * or `await` by its state, which follows from the YIELD_VALUE's argument.
 */
#if PY_VERSION_HEX >= 0x030D0000
#  define SLP_PY 313
#elif PY_VERSION_HEX >= 0x030C0000
#  define SLP_PY 312
#else
#  define SLP_PY 311
#endif

#if SLP_PY <= 312
#  define FRAME_CODE(f)             ((f)->f_code)
#  define FRAME_SET_LASTI(f, co, i) ((f)->prev_instr = _PyCode_CODE(co) + (i))
#  define GEN_LASTI(f)              _PyInterpreterFrame_LASTI(f)
#  define GEN_SET_LASTI(f, co, i)   FRAME_SET_LASTI(f, co, i)
#  define GEN_IS_SUSPENDED(s)       ((s) == FRAME_SUSPENDED)
#  define GEN_SUSPENDED_AT(co, i)   FRAME_SUSPENDED
#else
#  define FRAME_CODE(f)             ((PyCodeObject *)(f)->f_executable)
#  define FRAME_SET_LASTI(f, co, i) ((f)->instr_ptr = _PyCode_CODE(co) + (i))
#  define GEN_LASTI(f)              (_PyInterpreterFrame_LASTI(f) - 1)
#  define GEN_SET_LASTI(f, co, i)   FRAME_SET_LASTI(f, co, (i) + 1)
#  define GEN_IS_SUSPENDED(s)       FRAME_STATE_SUSPENDED(s)
#  define GEN_SUSPENDED_AT(co, i) \
    (_PyCode_CODE(co)[i].op.arg ? FRAME_SUSPENDED_YIELD_FROM : FRAME_SUSPENDED)
#endif
#define FRAME_LASTI(f)              _PyInterpreterFrame_LASTI(f)
#define GEN_FRAME(gen)              ((_PyInterpreterFrame *)(gen)->gi_iframe)

/* The frame-resumption trampoline.  3.11 runs a resumed frame inside its
 * frame object, marked as an entry frame (the eval loop then returns to
 * us instead of popping it from the data stack).  3.12+ pop every
 * returning thread-owned frame from the data stack and run other frames
 * only as generators' frames: a resumed frame is the frame of a generator
 * object made for it (its code is not a generator's, which tells such
 * frames apart), continued with PyIter_Send() or throw(), as the
 * interpreter continues a generator.  Its caller being a C call (value
 * stack not recorded) marks a frame entered from C on 3.12+ (is_entry on
 * 3.11). */
#define HAS_RESUMER 1
#define RESUME_IN_FRAME_OBJECT (SLP_PY == 311)
#if SLP_PY == 311
#  define FRAME_FUNC(f)             ((PyObject *)(f)->f_func)
#  define FRAME_IS_ENTRY(f)         ((int)(f)->is_entry)
#else
#  define FRAME_FUNC(f)             ((f)->f_funcobj)
#  define FRAME_IS_ENTRY(f) \
    ((f)->previous != NULL && \
     (f)->previous->owner == FRAME_OWNED_BY_THREAD && \
     (f)->previous->stacktop < 0)
#endif
#if SLP_PY == 313
#  define THREAD_TOP(ts)            ((ts)->current_frame)
#else
#  define THREAD_TOP(ts)            ((ts)->cframe->current_frame)
#endif
/* The NULL of a call's "self or NULL" is below the callable up to 3.12,
 * above it on 3.13. */
#if SLP_PY == 313
#  define NULL_SLOT_MISPLACED(st, i, depth, null) \
    ((i) == 0 || PyTuple_GET_ITEM(st, (i) - 1) == (null))
#else
#  define NULL_SLOT_MISPLACED(st, i, depth, null) \
    ((i) + 1 >= (depth) || PyTuple_GET_ITEM(st, (i) + 1) == (null))
#endif
#define GEN_CODE_FLAGS \
    (CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR | CO_ITERABLE_COROUTINE)

#if HAS_RESUMER
/* Is f the interpreter frame stored inside its own frame object (a frame
 * the trampoline runs)? */
static int
frame_is_ours(_PyInterpreterFrame *f)
{
#if RESUME_IN_FRAME_OBJECT
    return f->frame_obj != NULL &&
           (void *)f == (void *)f->frame_obj->_f_frame_data;
#else
    return f->owner == FRAME_OWNED_BY_GENERATOR &&
           (FRAME_CODE(f)->co_flags & GEN_CODE_FLAGS) == 0;
#endif
}

static _PyInterpreterFrame *
tasklet_top_frame(TaskletObject *t)
{
    if (tasklet_ts(t) == NULL || !tasklet_started(t))
        return NULL;
    return (_PyInterpreterFrame *)pystate_saved_top_frame(&t->ps);
}

#endif

static int
check_suspended(PyObject *o, TaskletObject **tp)
{
    TaskletObject *t;
    if (!Tasklet_Check(o)) {
        PyErr_SetString(PyExc_TypeError, "a tasklet is required");
        return -1;
    }
    t = (TaskletObject *)o;
    if (tasklet_ts(t) == NULL || !tasklet_started(t) ||
        (t->flags & TF_MAIN) || t->ts->current == t) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the tasklet is not suspended");
        return -1;
    }
    *tp = t;
    return 0;
}

static PyObject *
slot_value(PyObject *v, PyObject *null)
{
    return Py_NewRef(v != NULL ? v : null);
}

/* Set the variables (localsplus[0:n]) of a frame that does not run from
 * the tuple lp (`null` stands for an empty slot), after checking that lp
 * fits the code: one entry per variable, and a cell in each cell and free
 * variable slot (the eval loop reads those slots as cells unchecked).
 * -1 with ValueError, the slots unchanged. */
static int
set_localsplus(PyObject **slots, PyCodeObject *co, PyObject *lp,
               PyObject *null)
{
    int i, n = co->co_nlocalsplus;
    if (PyTuple_GET_SIZE(lp) != n) {
        PyErr_Format(PyExc_ValueError, "frame of %R: %zd variables, the "
                     "code has %d", co->co_qualname, PyTuple_GET_SIZE(lp),
                     n);
        return -1;
    }
    for (i = 0; i < n; i++) {
        unsigned char k = (unsigned char)PyBytes_AS_STRING(
            co->co_localspluskinds)[i];
        if ((k & (CO_FAST_CELL | CO_FAST_FREE)) &&
            !PyCell_Check(PyTuple_GET_ITEM(lp, i))) {
            PyErr_Format(PyExc_ValueError, "frame of %R: variable %d must "
                         "be a cell", co->co_qualname, i);
            return -1;
        }
    }
    for (i = 0; i < n; i++) {
        PyObject *v = PyTuple_GET_ITEM(lp, i);
        Py_XSETREF(slots[i], v == null ? NULL : Py_NewRef(v));
    }
    return 0;
}

#if HAS_RESUMER
/* _frames_of(t, null): [(code, globals, locals, lasti, depth, kind,
 * is_entry, localsplus, stack, frame), ...] outermost first.
 *   lasti: index (in code units) of prev_instr
 *   depth: value stack depth when it is recorded in the frame, else -1
 *   kind:  0 a frame of the thread's data stack, 1 a frame of the
 *          trampoline waiting to be continued, 2 one that runs, 3 a
 *          generator's or coroutine's frame, 4 another frame object's
 *   stack: the recorded value stack (depth entries) */
static PyObject *
frames_of(PyObject *mod, PyObject *args)
{
    PyObject *o, *null, *list = NULL;
    TaskletObject *t;
    _PyInterpreterFrame *f;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OO:_frames_of", &o, &null))
        return NULL;
    if (check_suspended(o, &t) < 0)
        return NULL;
    list = PyList_New(0);
    if (list == NULL)
        return NULL;
    for (f = tasklet_top_frame(t); f != NULL; f = f->previous) {
        PyCodeObject *co = FRAME_CODE(f);
        int n = co->co_nlocalsplus, depth = -1, kind, i;
        PyObject *lp, *st, *item;
#if RESUME_IN_FRAME_OBJECT
        if (f->owner == FRAME_OWNED_BY_GENERATOR)
            kind = 3;
        else if (frame_is_ours(f))
            kind = f->is_entry ? 2 : 1;
#else
        if (frame_is_ours(f))
            kind = _PyFrame_GetGenerator(f)->gi_frame_state ==
                   FRAME_EXECUTING ? 2 : 1;
        else if (f->owner == FRAME_OWNED_BY_GENERATOR)
            kind = 3;
#endif
        else if (f->owner == FRAME_OWNED_BY_FRAME_OBJECT)
            kind = 4;
        else
            kind = 0;
        if (f->stacktop >= n && f->stacktop <= n + co->co_stacksize)
            depth = f->stacktop - n;
        lp = PyTuple_New(n);
        st = PyTuple_New(depth > 0 ? depth : 0);
        if (lp == NULL || st == NULL) {
            Py_XDECREF(lp);
            Py_XDECREF(st);
            goto fail;
        }
        for (i = 0; i < n; i++)
            PyTuple_SET_ITEM(lp, i, slot_value(f->localsplus[i], null));
        for (i = 0; i < depth; i++)
            PyTuple_SET_ITEM(st, i, slot_value(f->localsplus[n + i], null));
        item = Py_BuildValue(
            "(OOOiiiiNNOO)", (PyObject *)co,
            f->f_globals ? f->f_globals : Py_None,
            f->f_locals ? f->f_locals : Py_None,
            FRAME_LASTI(f), depth, kind, FRAME_IS_ENTRY(f),
            lp, st, f->frame_obj ? (PyObject *)f->frame_obj : Py_None,
            FRAME_FUNC(f) ? FRAME_FUNC(f) : Py_None);
        if (item == NULL || PyList_Insert(list, 0, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    return list;
fail:
    Py_XDECREF(list);
    return NULL;
}

/* _frame_stack(t, level, depth, null): the first `depth` entries of the
 * value stack of the frame `level` frames below the top, which is suspended
 * in a call from the eval loop, where the frame does not record its depth
 * (the caller computed it from the code). */
static PyObject *
frame_stack(PyObject *mod, PyObject *args)
{
    PyObject *o, *null, *st;
    TaskletObject *t;
    _PyInterpreterFrame *f;
    int level, depth, i, n;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OiiO:_frame_stack", &o, &level, &depth,
                          &null))
        return NULL;
    if (check_suspended(o, &t) < 0)
        return NULL;
    f = tasklet_top_frame(t);
    for (i = 0; i < level && f != NULL; i++)
        f = f->previous;
    if (f == NULL || (f->owner != FRAME_OWNED_BY_THREAD &&
                      !frame_is_ours(f))) {
        PyErr_SetString(PyExc_RuntimeError, "no such frame to read");
        return NULL;
    }
    n = FRAME_CODE(f)->co_nlocalsplus;
    if (depth < 0 || depth > FRAME_CODE(f)->co_stacksize) {
        PyErr_SetString(PyExc_ValueError, "stack depth out of range");
        return NULL;
    }
    st = PyTuple_New(depth);
    if (st == NULL)
        return NULL;
    for (i = 0; i < depth; i++)
        PyTuple_SET_ITEM(st, i, slot_value(f->localsplus[n + i], null));
    return st;
}

#endif /* HAS_RESUMER */

/* _frame_slots(frame, null): (code, globals, lasti, localsplus) of a frame
 * object, running or not. */
static PyObject *
frame_slots(PyObject *mod, PyObject *args)
{
    PyObject *o, *null, *lp;
    _PyInterpreterFrame *f;
    int i, n;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O:_frame_slots", &PyFrame_Type, &o,
                          &null))
        return NULL;
    f = ((PyFrameObject *)o)->f_frame;
    n = FRAME_CODE(f)->co_nlocalsplus;
    lp = PyTuple_New(n);
    if (lp == NULL)
        return NULL;
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(lp, i, slot_value(f->localsplus[i], null));
    return Py_BuildValue("(OOiN)", (PyObject *)FRAME_CODE(f),
                         f->f_globals ? f->f_globals : Py_None,
                         FRAME_LASTI(f), lp);
}

/* _snapshot_frame(code, globals, (), lasti, null): a frame object at that
 * position that never runs; _fill_frame() gives it its variables. */
static PyObject *
snapshot_frame(PyObject *mod, PyObject *args)
{
    PyObject *code, *globals, *lp, *null;
    PyCodeObject *co;
    PyFrameObject *fo;
    int lasti, i, n;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O!O!iO:_snapshot_frame", &PyCode_Type,
                          &code, &PyDict_Type, &globals, &PyTuple_Type, &lp,
                          &lasti, &null))
        return NULL;
    co = (PyCodeObject *)code;
    n = co->co_nlocalsplus;
    if (lasti < co->_co_firsttraceable || lasti >= Py_SIZE(co)) {
        PyErr_SetString(PyExc_ValueError, "position outside the code");
        return NULL;
    }
    fo = PyFrame_New(PyThreadState_Get(), co, globals, NULL);
    if (fo == NULL)
        return NULL;
    FRAME_SET_LASTI(fo->f_frame, co, lasti);
    /* the variables come with _fill_frame() (they may refer back to the
     * frame); until then cells are empty */
    for (i = 0; i < n; i++) {
        unsigned char k = (unsigned char)PyBytes_AS_STRING(
            co->co_localspluskinds)[i];
        if (k & (CO_FAST_CELL | CO_FAST_FREE)) {
            fo->f_frame->localsplus[i] = PyCell_New(NULL);
            if (fo->f_frame->localsplus[i] == NULL) {
                Py_DECREF(fo);
                return NULL;
            }
        }
    }
    (void)lp;
    (void)null;
    return (PyObject *)fo;
}

/* _fill_frame(frame, localsplus, null): set the variables of a frame
 * object that owns its frame and does not run (a snapshot). */
static PyObject *
fill_frame(PyObject *mod, PyObject *args)
{
    PyObject *o, *lp, *null;
    _PyInterpreterFrame *f;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O!O:_fill_frame", &PyFrame_Type, &o,
                          &PyTuple_Type, &lp, &null))
        return NULL;
    f = ((PyFrameObject *)o)->f_frame;
    if (f->owner != FRAME_OWNED_BY_FRAME_OBJECT || f->frame_obj != NULL ||
        f->stacktop != FRAME_CODE(f)->co_nlocalsplus) {
        PyErr_SetString(PyExc_ValueError, "not a frame snapshot");
        return NULL;
    }
    if (set_localsplus(f->localsplus, FRAME_CODE(f), lp, null) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* _gen_state(gen, null): (code, globals, state, lasti, localsplus, stack,
 * exc) of a generator or coroutine that has not started (state 0) or is
 * suspended at a yield or await (state 1); exc is the exception it handles
 * or None. */
static PyObject *
gen_state(PyObject *mod, PyObject *args)
{
    PyObject *o, *null, *lp, *st, *exc;
    PyGenObject *gen;
    _PyInterpreterFrame *f;
    PyCodeObject *co;
    int i, n, depth, state;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OO:_gen_state", &o, &null))
        return NULL;
    if (!PyGen_CheckExact(o) && !PyCoro_CheckExact(o)) {
        PyErr_SetString(PyExc_TypeError, "a generator or coroutine is "
                        "required");
        return NULL;
    }
    gen = (PyGenObject *)o;
    if (gen->gi_frame_state == FRAME_CREATED)
        state = 0;
    else if (GEN_IS_SUSPENDED(gen->gi_frame_state))
        state = 1;
    else {
        PyErr_SetString(PyExc_ValueError,
                        gen->gi_frame_state == FRAME_EXECUTING
                            ? "it is running (or a tasklet is paused "
                              "inside it)"
                            : "it has finished");
        return NULL;
    }
    f = GEN_FRAME(gen);
    co = FRAME_CODE(f);
    n = co->co_nlocalsplus;
    depth = f->stacktop - n;
    if (depth < 0 || depth > co->co_stacksize) {
        PyErr_SetString(PyExc_ValueError, "inconsistent frame");
        return NULL;
    }
    lp = PyTuple_New(n);
    st = PyTuple_New(depth);
    if (lp == NULL || st == NULL) {
        Py_XDECREF(lp);
        Py_XDECREF(st);
        return NULL;
    }
    for (i = 0; i < n; i++)
        PyTuple_SET_ITEM(lp, i, slot_value(f->localsplus[i], null));
    for (i = 0; i < depth; i++)
        PyTuple_SET_ITEM(st, i, slot_value(f->localsplus[n + i], null));
    exc = gen->gi_exc_state.exc_value;
    return Py_BuildValue("(OOiiNNO)", (PyObject *)co, f->f_globals, state,
                         GEN_LASTI(f), lp, st,
                         exc != NULL ? exc : Py_None);
}

/* _gen_new(code, globals, name, qualname): a new generator or coroutine of
 * code (by its flags) with no variables yet; _gen_fill() gives it its
 * state. */
static PyObject *
gen_new(PyObject *mod, PyObject *args)
{
    PyObject *code, *globals, *name, *qualname, *gen;
    PyCodeObject *co;
    PyFrameObject *fo;
    _PyInterpreterFrame *f;
    int i, n;
    (void)mod;
    if (!PyArg_ParseTuple(args, "O!O!UU:_gen_new", &PyCode_Type, &code,
                          &PyDict_Type, &globals, &name, &qualname))
        return NULL;
    co = (PyCodeObject *)code;
    if ((co->co_flags & (CO_GENERATOR | CO_COROUTINE |
                         CO_ASYNC_GENERATOR)) == 0 ||
        (co->co_flags & CO_ASYNC_GENERATOR)) {
        PyErr_SetString(PyExc_ValueError, "not the code of a generator or "
                        "coroutine");
        return NULL;
    }
    fo = PyFrame_New(PyThreadState_Get(), co, globals, NULL);
    if (fo == NULL)
        return NULL;
    /* the cells exist before the generator is made (they are made by the
     * code's first instructions); _gen_fill() sets them */
    n = co->co_nlocalsplus;
    for (i = 0; i < n; i++) {
        unsigned char k = (unsigned char)PyBytes_AS_STRING(
            co->co_localspluskinds)[i];
        if (k & (CO_FAST_CELL | CO_FAST_FREE)) {
            fo->f_frame->localsplus[i] = PyCell_New(NULL);
            if (fo->f_frame->localsplus[i] == NULL) {
                Py_DECREF(fo);
                return NULL;
            }
        }
    }
    /* positioned at its RETURN_GENERATOR (two before the first RESUME), as
     * a generator that was just made is */
    if (co->_co_firsttraceable < 2) {
        Py_DECREF(fo);
        PyErr_SetString(PyExc_ValueError, "unexpected generator code");
        return NULL;
    }
    GEN_SET_LASTI(fo->f_frame, co, co->_co_firsttraceable - 2);
    /* takes the frame object's reference and moves its frame into the
     * generator */
    if (co->co_flags & CO_COROUTINE)
        gen = PyCoro_New(fo, name, qualname);
    else
        gen = PyGen_NewWithQualName(fo, name, qualname);
    if (gen == NULL)
        return NULL;
    f = GEN_FRAME((PyGenObject *)gen);
    assert(f->frame_obj == NULL);
    (void)f;
    /* Until _gen_fill() it behaves as an exhausted generator (one whose
     * unpickling failed stays so, and a coroutine does not warn that it
     * was never awaited). */
    ((PyGenObject *)gen)->gi_frame_state = FRAME_COMPLETED;
    return gen;
}

/* _gen_fill(gen, state, lasti, localsplus, stack, exc, null): the state of
 * a generator made by _gen_new() (the caller checked it against the
 * code). */
static PyObject *
gen_fill(PyObject *mod, PyObject *args)
{
    PyObject *o, *lp, *st, *exc, *null;
    PyGenObject *gen;
    _PyInterpreterFrame *f;
    PyCodeObject *co;
    int state, lasti, i, n, depth;
    (void)mod;
    if (!PyArg_ParseTuple(args, "OiiO!O!OO:_gen_fill", &o, &state, &lasti,
                          &PyTuple_Type, &lp, &PyTuple_Type, &st, &exc,
                          &null))
        return NULL;
    if (!PyGen_CheckExact(o) && !PyCoro_CheckExact(o)) {
        PyErr_SetString(PyExc_TypeError, "a generator or coroutine is "
                        "required");
        return NULL;
    }
    gen = (PyGenObject *)o;
    f = GEN_FRAME(gen);
    co = FRAME_CODE(f);
    n = co->co_nlocalsplus;
    depth = (int)PyTuple_GET_SIZE(st);
    if (gen->gi_frame_state != FRAME_COMPLETED || f->stacktop != n ||
        f->frame_obj != NULL ||
        GEN_LASTI(f) != co->_co_firsttraceable - 2) {
        PyErr_SetString(PyExc_ValueError, "not an unpickled generator "
                        "waiting for its state");
        return NULL;
    }
    if (state != 0 && state != 1) {
        PyErr_SetString(PyExc_ValueError, "bad generator state");
        return NULL;
    }
    if (depth > co->co_stacksize) {
        PyErr_SetString(PyExc_ValueError, "value stack too deep");
        return NULL;
    }
    if (lasti < 0 || lasti >= Py_SIZE(co)) {
        PyErr_SetString(PyExc_ValueError, "position outside the code");
        return NULL;
    }
    if (exc != Py_None && !PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_ValueError, "the handled exception is not an "
                        "exception");
        return NULL;
    }
    if (set_localsplus(f->localsplus, co, lp, null) < 0)
        return NULL;
    for (i = 0; i < depth; i++) {
        PyObject *v = PyTuple_GET_ITEM(st, i);
        f->localsplus[n + i] = v == null ? NULL : Py_NewRef(v);
    }
    f->stacktop = n + depth;
    GEN_SET_LASTI(f, co, lasti);
    Py_XSETREF(gen->gi_exc_state.exc_value,
               exc == Py_None ? NULL : Py_NewRef(exc));
    gen->gi_frame_state = state ? GEN_SUSPENDED_AT(co, lasti)
                                : FRAME_CREATED;
    Py_RETURN_NONE;
}

/* _handled_exc(t): the exception a suspended tasklet is handling. */
static PyObject *
handled_exc(PyObject *mod, PyObject *o)
{
    TaskletObject *t;
    PyObject *ei;
    (void)mod;
    if (check_suspended(o, &t) < 0)
        return NULL;
    /* the top of its handled-exception stack, as sys.exc_info() would see
     * it (a generator running in the tasklet pushes its own item) */
    ei = pystate_saved_handled_exc(t->ts->tstate, &t->ps);
    return Py_NewRef(ei != NULL ? ei : Py_None);
}

#if HAS_RESUMER
/* ------------------------------------------------------------------------
 * The resumer.
 */
typedef struct {
    PyObject_HEAD
    PyObject *frames;     /* list of frame objects, outermost first */
    PyObject *tops;       /* tuple of ints: each frame's stacktop as built */
    PyObject *push;       /* tuple of bools: push a result on resumption */
    PyObject *pending;    /* (callable, args) or None */
    PyObject *exc;        /* handled exception or None */
    int started;
} ResumerObject;

static PyTypeObject *resumer_type;

int
pyframe_is_resumer(PyObject *o)
{
    return resumer_type != NULL && Py_IS_TYPE(o, resumer_type);
}

#if RESUME_IN_FRAME_OBJECT
static void
frame_release_slots(_PyInterpreterFrame *f)
{
    int i;
    for (i = 0; i < f->stacktop; i++)
        Py_CLEAR(f->localsplus[i]);
    f->stacktop = 0;
}

/* One frame from (code, globals, locals, localsplus, stack, resume, push). */
static PyFrameObject *
build_frame(PyObject *spec, PyObject *null, int *push)
{
    PyObject *code, *globals, *locals, *lp, *st;
    PyCodeObject *co;
    PyFrameObject *fo;
    _PyInterpreterFrame *f;
    int resume, n, i, depth;
    Py_ssize_t ncode;
    if (!PyTuple_Check(spec) ||
        !PyArg_ParseTuple(spec, "O!O!OO!O!ip:frame", &PyCode_Type, &code,
                          &PyDict_Type, &globals, &locals, &PyTuple_Type,
                          &lp, &PyTuple_Type, &st, &resume, push))
        return NULL;
    co = (PyCodeObject *)code;
    n = co->co_nlocalsplus;
    ncode = Py_SIZE(co);
    depth = (int)PyTuple_GET_SIZE(st);
    if (depth + (*push ? 1 : 0) > co->co_stacksize) {
        PyErr_Format(PyExc_ValueError, "frame of %R: value stack of %d "
                     "entries is deeper than the code allows (%d)",
                     co->co_qualname, depth + (*push ? 1 : 0),
                     co->co_stacksize);
        return NULL;
    }
    if (resume - 1 < co->_co_firsttraceable || resume >= ncode) {
        PyErr_Format(PyExc_ValueError, "frame of %R: position %d is "
                     "outside its code", co->co_qualname, resume * 2);
        return NULL;
    }
    for (i = 0; i < depth; i++) {
        if (PyTuple_GET_ITEM(st, i) == null &&
            (i + 1 >= depth || PyTuple_GET_ITEM(st, i + 1) == null)) {
            /* an empty slot is only ever below a callable */
            PyErr_Format(PyExc_ValueError, "frame of %R: misplaced empty "
                         "stack entry", co->co_qualname);
            return NULL;
        }
    }
    if (locals == Py_None)
        locals = NULL;
    else if (!PyMapping_Check(locals)) {
        PyErr_SetString(PyExc_TypeError, "frame locals must be a mapping");
        return NULL;
    }
    fo = PyFrame_New(PyThreadState_Get(), co, globals, locals);
    if (fo == NULL)
        return NULL;
    f = fo->f_frame;
    if (set_localsplus(f->localsplus, co, lp, null) < 0) {
        Py_DECREF(fo);
        return NULL;
    }
    /* A counted reference, as every frame's frame_obj is (the collector
     * and the tasklet's traversal visit it); the resumer drops it when the
     * frame has run or is dropped (drop_frames()). */
    f->frame_obj = (PyFrameObject *)Py_NewRef(fo);
    for (i = 0; i < depth; i++) {
        PyObject *v = PyTuple_GET_ITEM(st, i);
        f->localsplus[n + i] = v == null ? NULL : Py_NewRef(v);
    }
    f->stacktop = n + depth;
    f->prev_instr = _PyCode_CODE(co) + resume - 1;
    return fo;
}

/* Release a list of frames built by build_frame() that never ran: each
 * refers to itself through frame_obj. */
static int
built_top(PyObject *o)
{
    return ((PyFrameObject *)o)->f_frame->stacktop;
}

static void
drop_frames(PyObject *frames)
{
    Py_ssize_t i;
    if (frames == NULL)
        return;
    for (i = 0; i < PyList_GET_SIZE(frames); i++) {
        PyObject *o = PyList_GET_ITEM(frames, i);
        if (o != NULL && PyFrame_Check(o)) {
            _PyInterpreterFrame *f = ((PyFrameObject *)o)->f_frame;
            if (f->owner == FRAME_OWNED_BY_FRAME_OBJECT && frame_is_ours(f))
                Py_CLEAR(f->frame_obj);
        }
    }
    Py_DECREF(frames);
}

#else /* resumed frames are generators' frames */

/* One frame from (code, globals, locals, localsplus, stack, resume, push):
 * the generator that runs it.  Until the resumer starts, its state is
 * "completed", so that dropping it never runs its code. */
static PyObject *
build_frame(PyObject *spec, PyObject *null, int *push)
{
    PyObject *code, *globals, *locals, *lp, *st, *gen;
    PyCodeObject *co;
    PyFrameObject *fo;
    _PyInterpreterFrame *f;
    int resume, n, i, depth;
    if (!PyTuple_Check(spec) ||
        !PyArg_ParseTuple(spec, "O!O!OO!O!ip:frame", &PyCode_Type, &code,
                          &PyDict_Type, &globals, &locals, &PyTuple_Type,
                          &lp, &PyTuple_Type, &st, &resume, push))
        return NULL;
    co = (PyCodeObject *)code;
    n = co->co_nlocalsplus;
    depth = (int)PyTuple_GET_SIZE(st);
    if (co->co_flags & GEN_CODE_FLAGS) {
        PyErr_Format(PyExc_ValueError, "frame of %R: the code of a "
                     "generator or coroutine is not a frame to resume",
                     co->co_qualname);
        return NULL;
    }
    if (depth + (*push ? 1 : 0) > co->co_stacksize) {
        PyErr_Format(PyExc_ValueError, "frame of %R: value stack of %d "
                     "entries is deeper than the code allows (%d)",
                     co->co_qualname, depth + (*push ? 1 : 0),
                     co->co_stacksize);
        return NULL;
    }
    if (resume - 1 < co->_co_firsttraceable || resume >= Py_SIZE(co)) {
        PyErr_Format(PyExc_ValueError, "frame of %R: position %d is "
                     "outside its code", co->co_qualname, resume * 2);
        return NULL;
    }
    for (i = 0; i < depth; i++) {
        if (PyTuple_GET_ITEM(st, i) == null &&
            NULL_SLOT_MISPLACED(st, i, depth, null)) {
            /* an empty slot is only ever beside a callable */
            PyErr_Format(PyExc_ValueError, "frame of %R: misplaced empty "
                         "stack entry", co->co_qualname);
            return NULL;
        }
    }
    if (locals == Py_None)
        locals = NULL;
    else if (!PyMapping_Check(locals)) {
        PyErr_SetString(PyExc_TypeError, "frame locals must be a mapping");
        return NULL;
    }
    fo = PyFrame_New(PyThreadState_Get(), co, globals, locals);
    if (fo == NULL)
        return NULL;
    f = fo->f_frame;
    if (set_localsplus(f->localsplus, co, lp, null) < 0) {
        Py_DECREF(fo);
        return NULL;
    }
    for (i = 0; i < depth; i++) {
        PyObject *v = PyTuple_GET_ITEM(st, i);
        f->localsplus[n + i] = v == null ? NULL : Py_NewRef(v);
    }
    f->stacktop = n + depth;
    /* continues at `resume` (the generator's position is the instruction
     * before) */
    GEN_SET_LASTI(f, co, resume - 1);
    /* takes the frame object's reference; the frame moves into it */
    gen = PyGen_NewWithQualName(fo, co->co_name, co->co_qualname);
    if (gen == NULL)
        return NULL;
    ((PyGenObject *)gen)->gi_frame_state = FRAME_COMPLETED;
    return gen;
}

static int
built_top(PyObject *o)
{
    return GEN_FRAME((PyGenObject *)o)->stacktop;
}

/* Release a list of generators built by build_frame() that never ran. */
static void
drop_frames(PyObject *frames)
{
    Py_XDECREF(frames);
}

#endif /* RESUME_IN_FRAME_OBJECT */

static PyObject *
resumer_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *specs, *pending, *exc, *null, *frames = NULL, *push = NULL;
    PyObject *tops = NULL;
    ResumerObject *r;
    Py_ssize_t i, n;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "_resumer takes no keywords");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O!OOO:_resumer", &PyList_Type, &specs,
                          &pending, &exc, &null))
        return NULL;
    n = PyList_GET_SIZE(specs);
    if (n == 0 && pending == Py_None) {
        PyErr_SetString(PyExc_ValueError, "no frames to resume");
        return NULL;
    }
    if (pending != Py_None &&
        (!PyTuple_Check(pending) || PyTuple_GET_SIZE(pending) != 2 ||
         !PyCallable_Check(PyTuple_GET_ITEM(pending, 0)) ||
         !PyTuple_Check(PyTuple_GET_ITEM(pending, 1)))) {
        PyErr_SetString(PyExc_TypeError,
                        "pending must be None or (callable, args)");
        return NULL;
    }
    if (exc != Py_None && !PyExceptionInstance_Check(exc)) {
        PyErr_SetString(PyExc_TypeError,
                        "the handled exception must be an exception");
        return NULL;
    }
    frames = PyList_New(n);
    push = PyTuple_New(n);
    tops = PyTuple_New(n);
    if (frames == NULL || push == NULL || tops == NULL)
        goto fail;
    for (i = 0; i < n; i++) {
        int p = 0;
        PyObject *fo = (PyObject *)build_frame(PyList_GET_ITEM(specs, i),
                                               null, &p);
        if (fo == NULL)
            goto fail;      /* (the list's empty slots are NULL) */
        PyList_SET_ITEM(frames, i, fo);
        PyTuple_SET_ITEM(push, i, PyBool_FromLong(p));
        PyTuple_SET_ITEM(tops, i, PyLong_FromLong(built_top(fo)));
        if (PyTuple_GET_ITEM(tops, i) == NULL)
            goto fail;
        if (!p && i != n - 1) {
            PyErr_SetString(PyExc_ValueError, "only the innermost frame "
                            "can continue without a result");
            goto fail;
        }
    }
    r = (ResumerObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        goto fail;
    r->frames = frames;
    r->push = push;
    r->tops = tops;
    r->pending = Py_NewRef(pending);
    r->exc = Py_NewRef(exc);
    return (PyObject *)r;
fail:
    drop_frames(frames);
    Py_XDECREF(push);
    Py_XDECREF(tops);
    return NULL;
}

static int
resumer_traverse(ResumerObject *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    Py_VISIT(r->frames);
    Py_VISIT(r->push);
    Py_VISIT(r->tops);
    Py_VISIT(r->pending);
    Py_VISIT(r->exc);
    return 0;
}

static int
resumer_clear(ResumerObject *r)
{
    /* Frames that run are referenced from the thread's frame chain and
     * must outlive it: a resumer that has started keeps them. */
    if (!r->started) {
        PyObject *frames = r->frames;
        r->frames = NULL;
        drop_frames(frames);
    }
    Py_CLEAR(r->push);
    Py_CLEAR(r->tops);
    Py_CLEAR(r->pending);
    Py_CLEAR(r->exc);
    return 0;
}

static void
resumer_dealloc(ResumerObject *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    r->started = 0;
    resumer_clear(r);
    tp->tp_free((PyObject *)r);
    Py_DECREF(tp);
}

#if RESUME_IN_FRAME_OBJECT
/* Hand frame fo back to its frame object after it ran. */
static void
frame_done(PyFrameObject *fo, PyFrameObject *caller)
{
    _PyInterpreterFrame *f = fo->f_frame;
    f->previous = NULL;
    f->is_entry = false;
    f->owner = FRAME_OWNED_BY_FRAME_OBJECT;
    Py_CLEAR(f->frame_obj);     /* its reference to itself (fo is alive:
                                   the resumer's list holds it) */
    if (f->stacktop < 0 || f->stacktop > f->f_code->co_nlocalsplus +
                                         f->f_code->co_stacksize)
        f->stacktop = f->f_code->co_nlocalsplus;
    if (caller != NULL && fo->f_back == NULL)
        fo->f_back = (PyFrameObject *)Py_NewRef(caller);
}

/* A resumed frame does not pass its RESUME instruction, where the
 * interpreter reports a 'call' to the trace and profile functions (as it
 * does when a generator resumes): report it here.  -1 with an error. */
static int
trace_call(PyThreadState *ts, _PyCFrame *cf, PyFrameObject *fo)
{
    int err = 0, i;
    if (ts->tracing)
        return 0;
    for (i = 0; i < 2 && err == 0; i++) {
        Py_tracefunc fn = i == 0 ? ts->c_profilefunc : ts->c_tracefunc;
        PyObject *obj = i == 0 ? ts->c_profileobj : ts->c_traceobj;
        if (fn == NULL)
            continue;
        ts->tracing++;
        cf->use_tracing = 0;
        err = fn(obj, fo, PyTrace_CALL, Py_None);
        ts->tracing--;
        cf->use_tracing = (ts->c_tracefunc != NULL ||
                           ts->c_profilefunc != NULL) ? 255 : 0;
    }
    return err ? -1 : 0;
}

PyObject *
pyframe_resume(PyObject *self, PyObject *tv)
{
    ResumerObject *r = (ResumerObject *)self;
    PyThreadState *ts = PyThreadState_Get();
    _PyCFrame *cf = ts->cframe;
    _PyInterpreterFrame *base = cf->current_frame;
    PyObject *frames, *value;
    Py_ssize_t i, n;

    if (r->started || r->frames == NULL) {
        Py_XDECREF(tv);
        PyErr_SetString(PyExc_RuntimeError, "the frames were resumed "
                        "already");
        return NULL;
    }
    n = PyList_GET_SIZE(r->frames);
    /* The frame objects were reachable (resumer.frames): one that was
     * cleared meanwhile (frame.clear()) has lost its variables. */
    for (i = 0; i < n; i++) {
        PyFrameObject *fo = (PyFrameObject *)PyList_GET_ITEM(r->frames, i);
        if (fo->f_frame->owner != FRAME_OWNED_BY_FRAME_OBJECT ||
            fo->f_frame->stacktop !=
                PyLong_AsLong(PyTuple_GET_ITEM(r->tops, i))) {
            Py_XDECREF(tv);
            PyErr_SetString(PyExc_RuntimeError, "the unpickled frames were "
                            "cleared before they could resume");
            return NULL;
        }
    }
    r->started = 1;
    frames = Py_NewRef(r->frames);
    /* Link the chain: the innermost frame is the top. */
    for (i = 0; i < n; i++) {
        _PyInterpreterFrame *f =
            ((PyFrameObject *)PyList_GET_ITEM(frames, i))->f_frame;
        f->previous = i == 0 ? base
            : ((PyFrameObject *)PyList_GET_ITEM(frames, i - 1))->f_frame;
        f->owner = FRAME_OWNED_BY_THREAD;
        f->is_entry = false;
    }
    if (n > 0)
        cf->current_frame =
            ((PyFrameObject *)PyList_GET_ITEM(frames, n - 1))->f_frame;
    if (r->exc != Py_None && ts->exc_info->exc_value == NULL)
        ts->exc_info->exc_value = Py_NewRef(r->exc);

    /* The result of the operation the innermost frame was suspended in. */
    if (tv != NULL && Bomb_Check(tv)) {
        value = bomb_explode(tv);
    }
    else if (r->pending != Py_None) {
        Py_XDECREF(tv);
        value = PyObject_Call(PyTuple_GET_ITEM(r->pending, 0),
                              PyTuple_GET_ITEM(r->pending, 1), NULL);
    }
    else {
        value = tv != NULL ? tv : Py_NewRef(Py_None);
    }

    for (i = n - 1; i >= 0; i--) {
        PyFrameObject *fo = (PyFrameObject *)PyList_GET_ITEM(frames, i);
        _PyInterpreterFrame *f = fo->f_frame;
        int push = PyTuple_GET_ITEM(r->push, i) == Py_True;
        cf->current_frame = f->previous;
        if (value != NULL && cf->use_tracing) {
            cf->current_frame = f;
            if (trace_call(ts, cf, fo) < 0)
                Py_CLEAR(value);
            cf->current_frame = f->previous;
        }
        if (value != NULL) {
            if (push)
                _PyFrame_StackPush(f, value);
            else
                Py_DECREF(value);
            value = _PyEval_EvalFrameDefault(ts, f, 0);
        }
        else {
            value = _PyEval_EvalFrameDefault(ts, f, 1);
        }
        frame_done(fo, i > 0 ? (PyFrameObject *)PyList_GET_ITEM(frames,
                                                                 i - 1)
                             : NULL);
        /* a frame nobody else refers to releases its variables now, as a
         * returning function does */
        if (Py_REFCNT(fo) == 1)
            frame_release_slots(f);
        PyList_SET_ITEM(frames, i, Py_NewRef(Py_None));
        Py_DECREF(fo);
    }
    cf->current_frame = base;
    Py_DECREF(frames);
    Py_CLEAR(r->frames);
    return value;
}

#else /* resumed frames are generators' frames */

/* A resumed frame does not pass its RESUME instruction, where the
 * interpreter reports a 'call' to the trace and profile functions (as it
 * does when a generator resumes): report it here, with the frame as the
 * top.  -1 with an error. */
static int
trace_call(PyThreadState *ts, PyGenObject *g)
{
    PyObject *fo;
    int err = 0, i;
    if (ts->tracing || (ts->c_tracefunc == NULL &&
                        ts->c_profilefunc == NULL))
        return 0;
    fo = PyObject_GetAttrString((PyObject *)g, "gi_frame");
    if (fo == NULL)
        return -1;
    if (!PyFrame_Check(fo)) {
        Py_DECREF(fo);
        return 0;
    }
    THREAD_TOP(ts) = GEN_FRAME(g);
    for (i = 0; i < 2 && err == 0; i++) {
        Py_tracefunc fn = i == 0 ? ts->c_profilefunc : ts->c_tracefunc;
        PyObject *obj = i == 0 ? ts->c_profileobj : ts->c_traceobj;
        if (fn == NULL)
            continue;
        ts->tracing++;
        err = fn(obj, (PyFrameObject *)fo, PyTrace_CALL, Py_None);
        ts->tracing--;
    }
    THREAD_TOP(ts) = GEN_FRAME(g)->previous;
    Py_DECREF(fo);
    return err ? -1 : 0;
}

/* Continue resumed frame g (a generator's frame that returns instead of
 * yielding) with value (stolen; pushed when push is set), or with the
 * raised exception when value is NULL; its return value, or NULL with the
 * exception it raised.  The interpreter's generator send, without the
 * generator's own handled-exception item: the frame handles exceptions on
 * the thread's, as a function's frame does (the eval loop puts exc_info
 * back from previous_item when the frame is done). */
static PyObject *
run_frame(PyThreadState *ts, PyGenObject *g, PyObject *value, int push)
{
    _PyInterpreterFrame *f = GEN_FRAME(g);
    if (value != NULL) {
        if (push)
            _PyFrame_StackPush(f, value);
        else
            Py_DECREF(value);
    }
    g->gi_exc_state.previous_item = ts->exc_info;
    g->gi_frame_state = FRAME_EXECUTING;
    value = _PyEval_EvalFrameDefault(ts, f, value == NULL);
    if (!FRAME_STATE_FINISHED(g->gi_frame_state)) {
        /* it yielded: not code a frame of a tasklet can have */
        Py_XDECREF(value);
        PyErr_SetString(PyExc_RuntimeError, "a resumed frame yielded");
        return NULL;
    }
    return value;
}

PyObject *
pyframe_resume(PyObject *self, PyObject *tv)
{
    ResumerObject *r = (ResumerObject *)self;
    PyThreadState *ts = PyThreadState_Get();
    _PyInterpreterFrame *base = THREAD_TOP(ts);
    PyObject *frames, *value;
    Py_ssize_t i, n;

    if (r->started || r->frames == NULL) {
        Py_XDECREF(tv);
        PyErr_SetString(PyExc_RuntimeError, "the frames were resumed "
                        "already");
        return NULL;
    }
    n = PyList_GET_SIZE(r->frames);
    for (i = 0; i < n; i++) {
        PyGenObject *g = (PyGenObject *)PyList_GET_ITEM(r->frames, i);
        if (g->gi_frame_state != FRAME_COMPLETED ||
            GEN_FRAME(g)->stacktop !=
                PyLong_AsLong(PyTuple_GET_ITEM(r->tops, i))) {
            Py_XDECREF(tv);
            PyErr_SetString(PyExc_RuntimeError, "the unpickled frames were "
                            "cleared before they could resume");
            return NULL;
        }
    }
    r->started = 1;
    frames = Py_NewRef(r->frames);
    /* Link the chain (the innermost frame is the top while it runs) and
     * make the generators continuable. */
    for (i = 0; i < n; i++) {
        PyGenObject *g = (PyGenObject *)PyList_GET_ITEM(frames, i);
        GEN_FRAME(g)->previous = i == 0 ? base
            : GEN_FRAME((PyGenObject *)PyList_GET_ITEM(frames, i - 1));
        g->gi_frame_state = FRAME_SUSPENDED;
    }
    if (r->exc != Py_None && ts->exc_info->exc_value == NULL)
        ts->exc_info->exc_value = Py_NewRef(r->exc);

    /* The result of the operation the innermost frame was suspended in. */
    if (tv != NULL && Bomb_Check(tv)) {
        value = bomb_explode(tv);
    }
    else if (r->pending != Py_None) {
        Py_XDECREF(tv);
        value = PyObject_Call(PyTuple_GET_ITEM(r->pending, 0),
                              PyTuple_GET_ITEM(r->pending, 1), NULL);
    }
    else {
        value = tv != NULL ? tv : Py_NewRef(Py_None);
    }

    for (i = n - 1; i >= 0; i--) {
        PyGenObject *g = (PyGenObject *)PyList_GET_ITEM(frames, i);
        int push = PyTuple_GET_ITEM(r->push, i) == Py_True;
        /* the caller's frame is the one below while this one runs */
        THREAD_TOP(ts) = GEN_FRAME(g)->previous;
        if (value != NULL && trace_call(ts, g) < 0)
            Py_CLEAR(value);
        value = run_frame(ts, g, value, push);
        PyList_SET_ITEM(frames, i, Py_NewRef(Py_None));
        Py_DECREF(g);
    }
    THREAD_TOP(ts) = base;
    Py_DECREF(frames);
    Py_CLEAR(r->frames);
    return value;
}

#endif /* RESUME_IN_FRAME_OBJECT */

static PyObject *
resumer_call(PyObject *self, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "_resumer() takes no arguments");
        return NULL;
    }
    return pyframe_resume(self, NULL);
}

static PyObject *
resumer_get_frames(ResumerObject *r, void *c)
{
    (void)c;
    if (r->frames == NULL || r->started)
        return PyList_New(0);
    return PyList_GetSlice(r->frames, 0, PyList_GET_SIZE(r->frames));
}

static PyObject *
resumer_get_started(ResumerObject *r, void *c)
{
    (void)c;
    return PyBool_FromLong(r->started);
}

static PyGetSetDef resumer_getset[] = {
    {"frames", (getter)resumer_get_frames, NULL,
     "the frames to continue, outermost first (empty once started)", NULL},
    {"started", (getter)resumer_get_started, NULL, NULL, NULL},
    {NULL}
};

static PyObject *
resumer_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyErr_Format(PyExc_TypeError, "cannot pickle '%s' object",
                 Py_TYPE(self)->tp_name);
    return NULL;
}

static PyMethodDef resumer_methods[] = {
    {"__reduce__", resumer_reduce, METH_NOARGS, NULL},
    {NULL}
};

static PyType_Slot resumer_slots[] = {
    {Py_tp_new, resumer_new},
    {Py_tp_dealloc, resumer_dealloc},
    {Py_tp_traverse, resumer_traverse},
    {Py_tp_clear, resumer_clear},
    {Py_tp_call, resumer_call},
    {Py_tp_getset, resumer_getset},
    {Py_tp_methods, resumer_methods},
    {Py_tp_doc, "_resumer(frames, pending, exc, null): continues pickled "
                "frames when called as a tasklet's body"},
    {0, NULL}
};

static PyType_Spec resumer_spec = {
    "_stackless._resumer", sizeof(ResumerObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, resumer_slots
};

#else /* !HAS_RESUMER */

int
pyframe_is_resumer(PyObject *o)
{
    (void)o;
    return 0;
}

PyObject *
pyframe_resume(PyObject *resumer, PyObject *tv)
{
    (void)resumer;
    Py_XDECREF(tv);
    PyErr_SetString(PyExc_RuntimeError, "frame resumption is not "
                    "implemented for this interpreter version");
    return NULL;
}

#endif /* HAS_RESUMER */

static PyMethodDef pyframe_functions[] = {
#if HAS_RESUMER
    {"_frames_of", frames_of, METH_VARARGS,
     "_frames_of(t, null): the frame chain of a suspended tasklet"},
    {"_frame_stack", frame_stack, METH_VARARGS,
     "_frame_stack(t, level, depth, null): value stack entries of a frame"},
#endif
    {"_frame_slots", frame_slots, METH_VARARGS,
     "_frame_slots(frame, null): code, globals, lasti, variables"},
    {"_snapshot_frame", snapshot_frame, METH_VARARGS,
     "_snapshot_frame(code, globals, localsplus, lasti, null)"},
    {"_fill_frame", fill_frame, METH_VARARGS,
     "_fill_frame(frame, localsplus, null): variables of a snapshot"},
    {"_gen_state", gen_state, METH_VARARGS,
     "_gen_state(gen, null): the state of a suspended generator"},
    {"_gen_new", gen_new, METH_VARARGS,
     "_gen_new(code, globals, name, qualname): a generator to fill"},
    {"_gen_fill", gen_fill, METH_VARARGS,
     "_gen_fill(gen, state, lasti, localsplus, stack, exc, null)"},
    {"_handled_exc", handled_exc, METH_O,
     "_handled_exc(t): the exception a suspended tasklet handles"},
    {NULL}
};

int
pyframe_module_init(PyObject *m)
{
    PyObject *layout;
    if (PyModule_AddFunctions(m, pyframe_functions) < 0)
        return -1;
#if HAS_RESUMER
    resumer_type = (PyTypeObject *)PyType_FromModuleAndSpec(
        m, &resumer_spec, NULL);
    if (resumer_type == NULL)
        return -1;
    if (PyModule_AddObjectRef(m, "_resumer", (PyObject *)resumer_type) < 0)
        return -1;
#endif
    /* The format depends on the interpreter's bytecode and frame layout. */
    layout = Py_BuildValue("(sii)", "cpython-frames", PY_MAJOR_VERSION,
                           PY_MINOR_VERSION);
    if (layout == NULL)
        return -1;
    if (PyModule_AddObject(m, "_frame_layout", layout) < 0) {
        Py_DECREF(layout);
        return -1;
    }
    return 0;
}
