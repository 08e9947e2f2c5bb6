/* The watchdog's part of the version layer: a C trace hook on the calling
 * thread, and a poke that makes a function run on another thread between
 * two of its instructions (see pyhook.h).
 *
 * The poke, per version:
 *   - 3.12, 3.13: a pending call that any thread of the interpreter may run
 *     (_PyEval_AddPendingCall with the main-thread-only flag off); CPython
 *     signals the thread holding the GIL, i.e. the busy one;
 *   - 3.11, the main thread: Py_AddPendingCall; from a thread without a
 *     thread state it queues the call but does not set the eval breaker
 *     (the breaker is computed for the calling thread, which cannot run
 *     pending calls), so the breaker is set here;
 *   - 3.11, other threads (which never run pending calls): the GIL, taken
 *     from the busy thread, and a one-shot trampoline trace function
 *     installed on its thread state, which calls fn at its next event.
 */
#define Py_BUILD_CORE 1
#include "pyhook.h"

#include "internal/pycore_pystate.h"
#include "internal/pycore_ceval.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_frame.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#error "stackless_compat supports CPython 3.11, 3.12 and 3.13"
#endif

int
pyhook_install(Py_tracefunc hook, pyhook_saved *saved)
{
    PyThreadState *ts = PyThreadState_Get();
    saved->func = ts->c_tracefunc;
    saved->obj = Py_XNewRef(ts->c_traceobj);
    PyEval_SetTrace(hook, saved->obj);
    if (PyErr_Occurred() || ts->c_tracefunc != hook) {
        /* an audit hook refused (PyEval_SetTrace reported it) */
        PyErr_Clear();
        Py_CLEAR(saved->obj);
        saved->func = NULL;
        PyErr_SetString(PyExc_RuntimeError, "cannot install the watchdog hook");
        return -1;
    }
    saved->installed = 1;
    return 0;
}

void
pyhook_uninstall(Py_tracefunc hook, pyhook_saved *saved)
{
    PyObject *exc, *val, *tb, *obj = saved->obj;
    if (!saved->installed)
        return;
    saved->installed = 0;
    saved->obj = NULL;
    PyErr_Fetch(&exc, &val, &tb);
    if (PyThreadState_Get()->c_tracefunc == hook)
        PyEval_SetTrace(saved->func, obj);
    PyErr_Clear();
    PyErr_Restore(exc, val, tb);
    saved->func = NULL;
    Py_XDECREF(obj);
}

int
pyhook_is_installed(Py_tracefunc hook, pyhook_saved *saved)
{
    return saved->installed && PyThreadState_Get()->c_tracefunc == hook;
}

int
pyhook_chain(pyhook_saved *saved, PyObject *obj, PyFrameObject *frame,
             int what, PyObject *arg)
{
    if (saved->func == NULL)
        return 0;
    return saved->func(obj, frame, what, arg);
}

int
pyhook_opcode_events(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    /* PEP 669 enables instruction events for a frame only while it has a
     * Python-level f_trace, which a C hook has not */
    return 0;
#else
    return 1;
#endif
}

int
pyhook_trace_opcodes(PyFrameObject *frame, int on)
{
    PyObject *exc, *val, *tb;
    int r = 0;
    if (!pyhook_opcode_events())
        return -1;
    PyErr_Fetch(&exc, &val, &tb);
    if (PyObject_SetAttrString((PyObject *)frame, "f_trace_opcodes",
                               on ? Py_True : Py_False) < 0) {
        PyErr_Clear();
        r = -1;
    }
    PyErr_Restore(exc, val, tb);
    return r;
}

int
pyhook_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

#if PY_VERSION_HEX < 0x030C0000
/* 3.11, a thread other than the main one: a one-shot trampoline trace
 * function on its thread state; its trace object is a capsule holding the
 * request and the thread's own trace function. */
typedef struct {
    int (*fn)(void *);
    void *arg;
    Py_tracefunc func;          /* the thread's own trace function */
    PyObject *obj;              /* owned: its trace object */
    PyFrameObject *frame;       /* owned: asked for instruction events */
} trampoline;

static void
tramp_free(PyObject *capsule)
{
    trampoline *tr = PyCapsule_GetPointer(capsule, "stackless_compat.poke");
    if (tr == NULL) {
        PyErr_Clear();
        return;
    }
    Py_XDECREF(tr->obj);
    Py_XDECREF(tr->frame);
    PyMem_RawFree(tr);
}

/* Spent trampolines, released a few fires later: CPython 3.11 passes the
 * same (function, object) pair to a line event and the opcode event of the
 * same instruction, even when the first call replaced them. */
#define TRAMP_SPENT 8
static PyObject *tramp_spent[TRAMP_SPENT];
static unsigned int tramp_spent_next;

static int
tramp_trace(PyObject *obj, PyFrameObject *frame, int what, PyObject *arg)
{
    PyThreadState *ts = PyThreadState_Get();
    trampoline *tr = PyCapsule_GetPointer(obj, "stackless_compat.poke");
    Py_tracefunc func;
    PyObject *fobj;
    int r = 0;
    if (tr == NULL) {
        PyErr_Clear();
        return 0;
    }
    if (tr->fn == NULL)
        return 0;               /* spent: the pair was stale */
    func = tr->func;
    fobj = Py_XNewRef(tr->obj);
    Py_INCREF(obj);             /* the capsule outlives the restore */
    if (_PyEval_SetTrace(ts, func, fobj) < 0)
        PyErr_Clear();
    if (tr->frame != NULL) {
        tr->frame->f_trace_opcodes = 0;
        Py_CLEAR(tr->frame);
    }
    {
        int (*fn)(void *) = tr->fn;
        tr->fn = NULL;
        fn(tr->arg);
    }
    if (func != NULL)
        r = func(fobj, frame, what, arg);
    Py_XDECREF(fobj);
    /* our reference to the capsule goes to the spent ring */
    Py_XSETREF(tramp_spent[tramp_spent_next % TRAMP_SPENT], obj);
    tramp_spent_next++;
    return r;
}

static int
tramp_poke(PyThreadState *tstate, int (*fn)(void *), void *arg)
{
    PyGILState_STATE g;
    trampoline *tr;
    PyObject *cap;
    int r = -1;
    /* ask the busy thread to let go of the GIL now, not after the switch
     * interval: it waits in its hand-over until this thread has it */
    _Py_atomic_store_relaxed(&tstate->interp->ceval.gil_drop_request, 1);
    _Py_atomic_store_relaxed(&tstate->interp->ceval.eval_breaker, 1);
    g = PyGILState_Ensure();
    tr = PyMem_RawMalloc(sizeof(trampoline));
    if (tr != NULL) {
        tr->fn = fn;
        tr->arg = arg;
        tr->func = tstate->c_tracefunc;
        tr->obj = Py_XNewRef(tstate->c_traceobj);
        /* a loop that never leaves its line has no line events */
        tr->frame = PyThreadState_GetFrame(tstate);
        if (tr->frame != NULL)
            tr->frame->f_trace_opcodes = 1;
        if (tr->func == tramp_trace) {
            /* a poke is already on its way */
            Py_XDECREF(tr->obj);
            Py_XDECREF(tr->frame);
            PyMem_RawFree(tr);
            r = 0;
        }
        else if ((cap = PyCapsule_New(tr, "stackless_compat.poke",
                                      tramp_free)) == NULL) {
            Py_XDECREF(tr->obj);
            Py_XDECREF(tr->frame);
            PyMem_RawFree(tr);
        }
        else {
            r = _PyEval_SetTrace(tstate, tramp_trace, cap);
            Py_DECREF(cap);
        }
    }
    PyErr_Clear();
    PyGILState_Release(g);
    return r < 0 ? -1 : 0;
}
#endif

int
pyhook_poke(PyThreadState *tstate, int (*fn)(void *), void *arg)
{
#if PY_VERSION_HEX >= 0x030D0000
    return _PyEval_AddPendingCall(tstate->interp, fn, arg, 0) ==
           _Py_ADD_PENDING_SUCCESS ? 0 : -1;
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyEval_AddPendingCall(tstate->interp, fn, arg, 0);
#else
    if (tstate->thread_id == _PyRuntime.main_thread) {
        if (Py_AddPendingCall(fn, arg) < 0)
            return -1;
        _Py_atomic_store_relaxed(&tstate->interp->ceval.eval_breaker, 1);
        return 0;
    }
    if (pyhook_finalizing())
        return -1;
    return tramp_poke(tstate, fn, arg);
#endif
}
