/* The _stackless module: module-level functions, module state and init. */
#include "module.h"
#include "pyframe.h"

#include "pythread.h"
#include <alloca.h>

slp_module_state *slp_st = NULL;

/* The hub (hub/, libev and c-ares) is compiled into the same extension
 * unless setup.py is told not to (SLP_WITH_HUB); the core builds and works
 * without it.  hub_module_init() registers the hub's operations with the
 * scheduler (sched_register_hub()). */
#ifdef SLP_WITH_HUB
int hub_module_init(PyObject *module);
#endif
unsigned long slp_main_thread_ident;

static sched_thread *
current_sched(void)
{
    return sched_get();
}

/* --- scheduling -------------------------------------------------------- */

static PyObject *
mod_schedule(PyObject *m, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    sched_thread *ts = current_sched();
    PyObject *retval = NULL;
    (void)m;
    if (ts == NULL)
        return NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        if (nargs != 0 || PyTuple_GET_SIZE(kwnames) != 1 ||
            !slp_unicode_eq_ascii(PyTuple_GET_ITEM(kwnames, 0),
                                           "retval")) {
            PyErr_SetString(PyExc_TypeError,
                            "schedule() takes an optional 'retval' only");
            return NULL;
        }
        retval = args[0];
    }
    else if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError,
                        "schedule() takes at most 1 argument");
        return NULL;
    }
    else if (nargs == 1) {
        retval = args[0];
    }
    return sched_schedule(ts, retval, 0);
}

static PyObject *
mod_schedule_remove(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"retval", NULL};
    sched_thread *ts = current_sched();
    PyObject *retval = NULL;
    (void)m;
    if (ts == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:schedule_remove",
                                     kwlist, &retval))
        return NULL;
    return sched_schedule(ts, retval, 1);
}

static PyObject *
mod_run(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timeout", "threadblock", "soft",
                             "ignore_nesting", "totaltimeout", NULL};
    sched_thread *ts = current_sched();
    PyObject *timeout = NULL;
    int threadblock = 0, soft = 0, ignore_nesting = 0, totaltimeout = 0;
    double t = 0.0;
    (void)m;
    if (ts == NULL)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|Opppp:run", kwlist,
                                     &timeout, &threadblock, &soft,
                                     &ignore_nesting, &totaltimeout))
        return NULL;
    if (timeout != NULL) {
        t = PyFloat_AsDouble(timeout);
        if (t == -1.0 && PyErr_Occurred())
            return NULL;
    }
    ts->run_called = 1;
    return sched_run(ts, t, threadblock, soft, ignore_nesting, totaltimeout);
}

static PyObject *
mod_getcurrent(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = current_sched();
    (void)m;
    if (ts == NULL)
        return NULL;
    return Py_NewRef((PyObject *)ts->current);
}

static PyObject *
mod_getmain(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = current_sched();
    (void)m;
    if (ts == NULL)
        return NULL;
    return Py_NewRef((PyObject *)ts->main);
}

static PyObject *
mod_getruncount(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = current_sched();
    (void)m;
    if (ts == NULL)
        return NULL;
    return PyLong_FromSsize_t(ts->runcount);
}

static PyObject *
mod_getcurrentid(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = sched_peek();
    (void)m;
    if (ts == NULL || ts->current == ts->main)
        return PyLong_FromUnsignedLong(PyThread_get_thread_ident());
    return PyLong_FromVoidPtr(ts->current);
}

int
slp_parse_thread_id(PyObject *o, unsigned long *id)
{
    int overflow;
    long v;
    if (o == NULL || o == Py_None)
        return 0;
    if (!PyLong_Check(o)) {
        PyErr_Format(PyExc_TypeError, "thread id must be an int, not %.200s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    v = PyLong_AsLongAndOverflow(o, &overflow);
    if (overflow == 0 && v == -1) {
        if (PyErr_Occurred())
            return -1;
        return 0;
    }
    *id = PyLong_AsUnsignedLong(o);
    if (*id == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    return 1;
}

/* Is thread_id one of the interpreter's threads? */
static int
interp_has_thread(unsigned long thread_id)
{
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    PyThreadState *t;
    for (t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t))
        if (t->thread_id == thread_id)
            return 1;
    return 0;
}

static PyObject *
mod_get_thread_info(PyObject *m, PyObject *args)
{
    sched_thread *ts;
    PyObject *tid = NULL, *res, *extra;
    long flags = 0;
    unsigned long id;
    (void)m;
    if (!PyArg_ParseTuple(args, "|Ol:get_thread_info", &tid, &flags))
        return NULL;
    if (sched_get() == NULL)
        return NULL;
    id = PyThread_get_thread_ident();
    if (slp_parse_thread_id(tid, &id) < 0)
        return NULL;
    ts = sched_find_thread(id);
    if (ts == NULL) {
        if (!interp_has_thread(id)) {
            PyErr_SetString(PyExc_RuntimeError, "Thread id not found");
            return NULL;
        }
        res = Py_BuildValue("(OOi)", Py_None, Py_None, 0);
    }
    else {
        res = Py_BuildValue("(OOn)", (PyObject *)ts->main,
                            (PyObject *)ts->current, ts->runcount);
    }
    if (res == NULL || !(flags & ((1L << 30) | (1L << 31))))
        return res;
    /* Undocumented Stackless extras, for its test suite: bit 30 appends
     * (serial, serial_last_jump, initial_stub) -- the last serial handed
     * out, the serial of the C stack the thread runs on (its current
     * tasklet's) and the cstack of the thread's base; bit 31 the watchdog
     * list: None before the thread's first run(), else a list whose item 0
     * is the run(timeout) caller the watchdog interrupts (or None),
     * followed by the run() callers, innermost last. */
    if (flags & (1L << 30)) {
        PyObject *stub = ts ? cstack_initial_stub(ts) : Py_NewRef(Py_None);
        if (stub == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        extra = Py_BuildValue("(LLN)", ts ? ts->serial : 0LL,
                              ts ? tasklet_serial(ts->current) : 0LL, stub);
        if (extra == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        Py_SETREF(res, PySequence_Concat(res, extra));
        Py_DECREF(extra);
        if (res == NULL)
            return NULL;
    }
    if (flags & (1L << 31)) {
        /* the list itself, as Stackless gives it (tests keep it and
         * watch it change) */
        PyObject *wd = ts == NULL || !ts->run_called || ts->watchdogs == NULL
                           ? Py_None : ts->watchdogs;
        Py_INCREF(wd);
        if (wd == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        extra = PyTuple_Pack(1, wd);
        Py_DECREF(wd);
        if (extra == NULL) {
            Py_DECREF(res);
            return NULL;
        }
        Py_SETREF(res, PySequence_Concat(res, extra));
        Py_DECREF(extra);
    }
    return res;
}

static PyObject *
mod_getthreads(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    PyThreadState *t;
    PyObject *list = PyList_New(0), *id;
    (void)m;
    if (list == NULL)
        return NULL;
    for (t = PyInterpreterState_ThreadHead(interp); t != NULL;
         t = PyThreadState_Next(t)) {
        id = PyLong_FromUnsignedLong(t->thread_id);
        if (id == NULL || (t->thread_id == slp_main_thread_ident
                               ? PyList_Insert(list, 0, id)
                               : PyList_Append(list, id)) < 0) {
            Py_XDECREF(id);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(id);
    }
    return list;
}

static PyObject *
mod_switch_trap(PyObject *m, PyObject *args)
{
    sched_thread *ts = current_sched();
    int change = 0, old;
    (void)m;
    if (ts == NULL)
        return NULL;
    if (!PyArg_ParseTuple(args, "|i:switch_trap", &change))
        return NULL;
    old = ts->switch_trap;
    ts->switch_trap += change;
    return PyLong_FromLong(old);
}

static PyObject *
mod_enable_softswitch(PyObject *m, PyObject *flag)
{
    (void)m;
    if (flag != Py_None) {
        int v = PyObject_IsTrue(flag);
        if (v < 0)
            return NULL;
        slp_st->softswitch = v;
    }
    /* Switching is always hard (stack slicing) on a stock interpreter. */
    Py_RETURN_FALSE;
}

static PyObject *
swap_callback(PyObject **slot, PyObject *cb, const char *what)
{
    PyObject *old;
    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError, "%s must be callable or None", what);
        return NULL;
    }
    old = *slot;
    *slot = cb == Py_None ? NULL : Py_NewRef(cb);
    return old ? old : Py_NewRef(Py_None);
}

static PyObject *
mod_set_error_handler(PyObject *m, PyObject *cb)
{
    (void)m;
    return swap_callback(&slp_st->error_handler, cb, "error handler");
}

static PyObject *
mod_set_channel_callback(PyObject *m, PyObject *cb)
{
    (void)m;
    return swap_callback(&slp_st->channel_callback, cb, "channel callback");
}

static PyObject *
mod_get_channel_callback(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return Py_NewRef(slp_st->channel_callback ? slp_st->channel_callback
                                              : Py_None);
}

static PyObject *
mod_set_schedule_callback(PyObject *m, PyObject *cb)
{
    (void)m;
    return swap_callback(&slp_st->schedule_callback, cb, "schedule callback");
}

static PyObject *
mod_get_schedule_callback(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
    return Py_NewRef(slp_st->schedule_callback ? slp_st->schedule_callback
                                               : Py_None);
}

static PyObject *
mod_getdebug(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    (void)m;
#ifdef SLP_DEBUG
    Py_RETURN_TRUE;
#else
    Py_RETURN_FALSE;
#endif
}

static PyObject *
mod_getuncollectables(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    /* Suspended tasklets are visible to the collector (their frames are
     * traversed), so none is uncollectable by construction. */
    (void)m;
    return PyList_New(0);
}

static PyObject *
mod_atexit_kill(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = sched_peek();
    (void)m;
    wd_shutdown();
    /* as Stackless (soft switching): only tasklets holding C state get
     * TaskletExit; the others are dropped silently */
    if (ts != NULL && sched_kill_all(ts, tasklet_drop_if_restorable) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* For pickling (_extras.py): the bound function and the arguments a tasklet
 * was set up with, each None when absent. */
static PyObject *
mod_tasklet_bound(PyObject *m, PyObject *arg)
{
    TaskletObject *t = (TaskletObject *)arg;
    (void)m;
    if (!Tasklet_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "a tasklet is required");
        return NULL;
    }
    return Py_BuildValue("(OOO)", t->func ? t->func : Py_None,
                         t->args ? t->args : Py_None,
                         t->kwargs ? t->kwargs : Py_None);
}

/* Test helper: make the n-th next allocation of ours fail (0: never). */
static PyObject *
mod_fault_inject(PyObject *m, PyObject *arg)
{
    long n = PyLong_AsLong(arg);
    (void)m;
    if (n == -1 && PyErr_Occurred())
        return NULL;
    slp_fault_countdown = n < 0 ? 0 : (int)n;
    Py_RETURN_NONE;
}

/* gc.callbacks entry: kill the tasklets the collection found unreachable
 * once it is over (see tasklet_finalize). */
static PyObject *
mod_gc_callback(PyObject *m, PyObject *args)
{
    PyObject *phase, *info;
    (void)m;
    if (!PyArg_ParseTuple(args, "OO", &phase, &info))
        return NULL;
    if (PyUnicode_Check(phase) &&
        PyUnicode_CompareWithASCIIString(phase, "stop") == 0 &&
        PyList_GET_SIZE(slp_st->pending_kills) > 0 &&
        tasklet_run_pending_kills() < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Test helper: how many watchdog interrupts of this thread had to wait
 * (atomic, nesting, switch_trap, callbacks). */
static PyObject *
mod_watchdog_deferred(PyObject *m, PyObject *unused)
{
    sched_thread *ts = sched_get();
    (void)m;
    (void)unused;
    if (ts == NULL)
        return NULL;
    return PyLong_FromUnsignedLong(wd_deferred_count(ts));
}

static PyObject *
mod_stack_info(PyObject *m, PyObject *t)
{
    /* Test helper: bytes of C stack a suspended tasklet keeps. */
    (void)m;
    if (!Tasklet_Check(t)) {
        PyErr_SetString(PyExc_TypeError, "a tasklet is required");
        return NULL;
    }
    return Py_BuildValue("(nn)",
                         (Py_ssize_t)slp_stack_size(&((TaskletObject *)t)->stack),
                         (Py_ssize_t)((TaskletObject *)t)->stack.capacity);
}

/* --- test helpers --------------------------------------------------------
 *
 * Stackless's own test functions, for test suites written against it
 * (README.rst, "Test helpers").  On a stock interpreter every switch is a
 * hard one, so the soft/hard variants behave alike. */

#define TEST_CFRAME_MAX_WORDS 64000

/* schedule() `switches` times from C code (a C frame on the tasklet's
 * stack), returning the last value schedule() returned. */
static PyObject *
schedule_n(long switches, int nested)
{
    sched_thread *ts = current_sched();
    TaskletObject *cur;
    PyObject *ret;
    long i;
    if (ts == NULL)
        return NULL;
    /* the current tasklet is the same one again after every switch */
    cur = ts->current;
    cur->c_nesting += nested;
    ret = Py_NewRef(Py_None);
    for (i = 0; i < switches; i++) {
        Py_DECREF(ret);
        ret = sched_schedule(ts, Py_None, 0);
        if (ret == NULL)
            break;
    }
    cur->c_nesting -= nested;
    return ret;
}

/* call func(*args, **kwargs) as C code that Stackless could not have
 * soft-switched through: nesting_level counts it -- through the entry
 * frame of a Python function called from Python code, else (a C callable,
 * or the tasklet's own function: its first frame is no re-entry) here */
static PyObject *
nested_call(PyObject *func, PyObject *args, PyObject *kwargs)
{
    sched_thread *ts = current_sched();
    TaskletObject *cur;
    PyObject *res;
    int py;
    if (ts == NULL)
        return NULL;
    py = PyFunction_Check(func) ||
         (PyMethod_Check(func) && PyFunction_Check(PyMethod_GET_FUNCTION(func)));
    py = py && PyEval_GetFrame() != NULL;
    cur = ts->current;
    cur->c_nesting += !py;
    res = PyObject_Call(func, args, kwargs);
    cur->c_nesting -= !py;
    return res;
}

static PyObject *
mod_test_cframe(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"switches", "words", NULL};
    long switches, words = 0;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "l|l:test_cframe", kwlist,
                                     &switches, &words))
        return NULL;
    if (words < 0 || words > TEST_CFRAME_MAX_WORDS) {
        PyErr_SetString(PyExc_ValueError,
                        "test_cframe: words are limited by 0 and 64000");
        return NULL;
    }
    if (words > 0) {
        /* hold `words` machine words of C stack during the switches */
        volatile char *pad = alloca((size_t)words * sizeof(void *));
        pad[0] = 0;
        pad[(size_t)words * sizeof(void *) - 1] = 0;
    }
    return schedule_n(switches, 1);
}

static PyObject *
mod_test_cframe_nr(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"switches", NULL};
    long switches;
    (void)m;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "l:test_cframe_nr", kwlist,
                                     &switches))
        return NULL;
    return schedule_n(switches, 0);
}

static PyObject *
mod_test_cstate(PyObject *m, PyObject *callable)
{
    PyObject *noargs = PyTuple_New(0), *res;
    (void)m;
    if (noargs == NULL)
        return NULL;
    res = nested_call(callable, noargs, NULL);
    Py_DECREF(noargs);
    return res;
}

/* Run the other runnable tasklets until none is left, as an application
 * that drives the scheduler from outside would. */
static PyObject *
mod_test_outside(PyObject *m, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = current_sched();
    PyObject *ret;
    (void)m;
    if (ts == NULL)
        return NULL;
    ret = Py_NewRef(Py_None);
    while (ts->runcount > 1 && ts->current->next != ts->current) {
        Py_DECREF(ret);
        ret = sched_schedule(ts, Py_None, 0);
        if (ret == NULL)
            return NULL;
    }
    return ret;
}

/* _test_nostacklesscall(func, *args, post_callback=None,
 * set_try_stackless=None, **kwargs): func(*args, **kwargs) (args itself
 * when func is None); then, with post_callback,
 * post_callback(result, 0, 0, **kwargs): no call is a "stackless call"
 * on a stock interpreter. */
static PyObject *
mod_test_nostacklesscall(PyObject *m, PyObject *args, PyObject *kwds)
{
    PyObject *func, *rest, *result, *post = NULL, *kw = NULL, *flag;
    (void)m;
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return NULL;
    }
    func = PyTuple_GET_ITEM(args, 0);
    if (kwds != NULL) {
        kw = PyDict_Copy(kwds);
        if (kw == NULL)
            return NULL;
        flag = PyDict_GetItemString(kw, "set_try_stackless");
        if (flag != NULL) {
            if (PyObject_IsTrue(flag) < 0 ||
                PyDict_DelItemString(kw, "set_try_stackless") < 0) {
                Py_DECREF(kw);
                return NULL;
            }
        }
        post = PyDict_GetItemString(kw, "post_callback");
        if (post != NULL) {
            Py_INCREF(post);
            if (PyDict_DelItemString(kw, "post_callback") < 0) {
                Py_DECREF(post);
                Py_DECREF(kw);
                return NULL;
            }
        }
    }
    rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (rest == NULL) {
        Py_XDECREF(post);
        Py_XDECREF(kw);
        return NULL;
    }
    if (func == Py_None)
        result = Py_NewRef(rest);
    else
        result = nested_call(func, rest, kw);
    Py_DECREF(rest);
    if (post != NULL && result != NULL) {
        PyObject *a = Py_BuildValue("(Oii)", result, 0, 0);
        Py_SETREF(result, a == NULL ? NULL : PyObject_Call(post, a, kw));
        Py_XDECREF(a);
    }
    Py_XDECREF(post);
    Py_XDECREF(kw);
    return result;
}

static PyMethodDef module_methods[] = {
    {"schedule", (PyCFunction)(void (*)(void))mod_schedule,
     METH_FASTCALL | METH_KEYWORDS,
     "schedule($module, /, retval=...)\n"
     "--\n"
     "\n"
     "Let the next runnable tasklet run; the current one goes to the end of\n"
     "the run queue.  Returns retval (by default the current tasklet) when\n"
     "this tasklet runs again."},
    {"schedule_remove", (PyCFunction)(void (*)(void))mod_schedule_remove,
     METH_VARARGS | METH_KEYWORDS,
     "schedule_remove($module, /, retval=...)\n"
     "--\n"
     "\n"
     "Like schedule(), but the current tasklet leaves the run queue: it is\n"
     "paused until something inserts it again.  Returns retval (by default the\n"
     "current tasklet) when it runs again."},
    {"run", (PyCFunction)(void (*)(void))mod_run,
     METH_VARARGS | METH_KEYWORDS,
     "run($module, /, timeout=0, threadblock=False, soft=False, "
     "ignore_nesting=False, totaltimeout=False)\n"
     "--\n"
     "\n"
     "Run the tasklets of this thread until the run queue is empty (or only\n"
     "the caller is left).  With timeout > 0 (in ticks, about one bytecode\n"
     "instruction each: counted up to 100000, 20 ns of CPU time each above)\n"
     "a tasklet that runs that long without switching is interrupted, taken\n"
     "out of the run queue and returned; totaltimeout measures the whole\n"
     "run() call instead; soft interrupts nothing: the next switch returns\n"
     "to the caller and run() returns None; ignore_nesting interrupts at\n"
     "nesting levels above 0 too; threadblock waits for other threads to\n"
     "make a tasklet runnable when the queue is empty.  Returns None, or the\n"
     "interrupted tasklet."},
    {"getcurrent", mod_getcurrent, METH_NOARGS,
     "getcurrent($module, /)\n"
     "--\n"
     "\n"
     "Return the tasklet that is running now."},
    {"getmain", mod_getmain, METH_NOARGS,
     "getmain($module, /)\n"
     "--\n"
     "\n"
     "Return this thread's main tasklet."},
    {"getruncount", mod_getruncount, METH_NOARGS,
     "getruncount($module, /)\n"
     "--\n"
     "\n"
     "Return the number of runnable tasklets of this thread, the current one\n"
     "included."},
    {"getcurrentid", mod_getcurrentid, METH_NOARGS,
     "getcurrentid($module, /)\n"
     "--\n"
     "\n"
     "Return an id of the current tasklet: the thread id for a thread's\n"
     "main tasklet, a number derived from the object otherwise."},
    {"get_thread_info", mod_get_thread_info, METH_VARARGS,
     "get_thread_info($module, thread_id=None, flags=0, /)\n"
     "--\n"
     "\n"
     "Return (main, current, runcount) of a thread (None: this one).  A\n"
     "thread that never used tasklets answers (None, None, 0).  RuntimeError\n"
     "if there is no such thread.  flags bit 30 appends (serial,\n"
     "serial_last_jump, initial_stub): the last C-stack serial handed out,\n"
     "the serial of the current tasklet's C stack, the thread's base cstack;\n"
     "bit 31 the watchdog list as Stackless keeps it (None before the\n"
     "thread's first run(), then [interrupt watchdog or None, run()\n"
     "callers...])."},
    {"getthreads", mod_getthreads, METH_NOARGS,
     "getthreads($module, /)\n"
     "--\n"
     "\n"
     "Return the ids of the interpreter's threads, the main thread first."},
    {"switch_trap", mod_switch_trap, METH_VARARGS,
     "switch_trap($module, change=0, /)\n"
     "--\n"
     "\n"
     "Add change to the switch trap level of this thread and return the old\n"
     "level.  While the level is non-zero, every tasklet switch raises\n"
     "RuntimeError instead of switching."},
    {"enable_softswitch", mod_enable_softswitch, METH_O,
     "enable_softswitch($module, flag, /)\n"
     "--\n"
     "\n"
     "Remember flag (None: leave it) and return False: every switch is a\n"
     "hard switch (stack slicing) on stock CPython."},
    {"set_error_handler", mod_set_error_handler, METH_O,
     "set_error_handler($module, handler, /)\n"
     "--\n"
     "\n"
     "Install handler(type, value, traceback), called for an exception that\n"
     "ends a tasklet (None: remove it).  Returns the previous handler or None."},
    {"set_channel_callback", mod_set_channel_callback, METH_O,
     "set_channel_callback($module, callable, /)\n"
     "--\n"
     "\n"
     "Install callable(channel, tasklet, sending, willblock), called before\n"
     "every channel action (None: remove it).  Returns the previous callback\n"
     "or None."},
    {"get_channel_callback", mod_get_channel_callback, METH_NOARGS,
     "get_channel_callback($module, /)\n"
     "--\n"
     "\n"
     "Return the channel callback, or None."},
    {"set_schedule_callback", mod_set_schedule_callback, METH_O,
     "set_schedule_callback($module, callable, /)\n"
     "--\n"
     "\n"
     "Install callable(prev, next), called on every switch between tasklets\n"
     "(None: remove it).  Returns the previous callback or None."},
    {"get_schedule_callback", mod_get_schedule_callback, METH_NOARGS,
     "get_schedule_callback($module, /)\n"
     "--\n"
     "\n"
     "Return the schedule callback, or None."},
    {"getdebug", mod_getdebug, METH_NOARGS,
     "getdebug($module, /)\n"
     "--\n"
     "\n"
     "Return True when the extension was built with SLP_DEBUG."},
    {"getuncollectables", mod_getuncollectables, METH_NOARGS,
     "getuncollectables($module, /)\n"
     "--\n"
     "\n"
     "Return the tasklets the garbage collector cannot free: always [], since\n"
     "the frames of suspended tasklets are visible to the collector."},
    {"_atexit_kill", mod_atexit_kill, METH_NOARGS,
     "_atexit_kill($module, /)\n"
     "--\n"
     "\n"
     "Kill every suspended tasklet of this thread (run at interpreter exit)."},
    {"_stack_info", mod_stack_info, METH_O,
     "_stack_info($module, tasklet, /)\n"
     "--\n"
     "\n"
     "Return (size, capacity) of a tasklet's saved C stack slice."},
    {"_watchdog_deferred", mod_watchdog_deferred, METH_NOARGS,
     "_watchdog_deferred($module, /)\n"
     "--\n"
     "\n"
     "Return how many watchdog interrupts of this thread had to wait."},
    {"_gc_callback", mod_gc_callback, METH_VARARGS,
     "_gc_callback($module, phase, info, /)\n"
     "--\n"
     "\n"
     "gc.callbacks entry: kill the unreachable tasklets found by the\n"
     "collection that just ended."},
    {"_fault_inject", mod_fault_inject, METH_O,
     "_fault_inject($module, n, /)\n"
     "--\n"
     "\n"
     "Make the n-th next allocation of the extension fail (0: never)."},
    {"_tasklet_bound", mod_tasklet_bound, METH_O,
     "_tasklet_bound($module, tasklet, /)\n"
     "--\n"
     "\n"
     "Return (func, args, kwargs) of a tasklet, each None when absent."},
    {"test_cframe", (PyCFunction)(void (*)(void))mod_test_cframe,
     METH_VARARGS | METH_KEYWORDS,
     "test_cframe($module, /, switches, words=0)\n"
     "--\n"
     "\n"
     "A test helper: schedule() switches times from C code, holding words\n"
     "words of C stack."},
    {"test_cframe_nr", (PyCFunction)(void (*)(void))mod_test_cframe_nr,
     METH_VARARGS | METH_KEYWORDS,
     "test_cframe_nr($module, /, switches)\n"
     "--\n"
     "\n"
     "A test helper, like test_cframe(): every switch is a hard one here."},
    {"test_cstate", mod_test_cstate, METH_O,
     "test_cstate($module, callable, /)\n"
     "--\n"
     "\n"
     "A test helper: return callable() called from C code."},
    {"test_outside", mod_test_outside, METH_NOARGS,
     "test_outside($module, /)\n"
     "--\n"
     "\n"
     "A test helper: run the other runnable tasklets until none is left."},
    {"_test_nostacklesscall",
     (PyCFunction)(void (*)(void))mod_test_nostacklesscall,
     METH_VARARGS | METH_KEYWORDS,
     "_test_nostacklesscall($module, func, /, *args, **kwargs)\n"
     "--\n"
     "\n"
     "A test helper: func(*args, **kwargs) called from C code (args itself\n"
     "when func is None); with the keyword post_callback, then\n"
     "post_callback(result, 0, 0, **kwargs).  The keyword set_try_stackless\n"
     "is accepted and ignored: no call is a stackless call here."},
    {NULL}
};

/* --- module state and init --------------------------------------------- */

static int
module_traverse(PyObject *m, visitproc visit, void *arg)
{
    slp_module_state *st = PyModule_GetState(m);
    Py_VISIT(st->tasklet_type);
    Py_VISIT(st->channel_type);
    Py_VISIT(st->bomb_type);
    Py_VISIT(st->atomic_type);
    Py_VISIT(st->cstack_type);
    Py_VISIT(st->TaskletExit);
    Py_VISIT(st->error_handler);
    Py_VISIT(st->channel_callback);
    Py_VISIT(st->schedule_callback);
    Py_VISIT(st->pending_kills);
    return 0;
}

static int
module_clear(PyObject *m)
{
    slp_module_state *st = PyModule_GetState(m);
    Py_CLEAR(st->error_handler);
    Py_CLEAR(st->channel_callback);
    Py_CLEAR(st->schedule_callback);
    /* The types stay: tasklets may outlive the module during teardown. */
    return 0;
}

static int
module_exec(PyObject *m)
{
    slp_module_state *st = PyModule_GetState(m);
    PyObject *builtins, *threading, *mt, *ident;

    if (pystate_check_version() < 0)
        return -1;
    if (slp_st != NULL) {
        PyErr_SetString(PyExc_ImportError,
                        "stackless_compat._stackless can be loaded once per "
                        "process (subinterpreters are not supported)");
        return -1;
    }
    slp_st = st;
    st->softswitch = 1;
    st->pending_kills = PyList_New(0);
    if (st->pending_kills == NULL)
        goto fail;

    threading = PyImport_ImportModule("threading");
    if (threading == NULL)
        goto fail;
    mt = PyObject_CallMethod(threading, "main_thread", NULL);
    Py_DECREF(threading);
    if (mt == NULL)
        goto fail;
    ident = PyObject_GetAttrString(mt, "ident");
    Py_DECREF(mt);
    if (ident == NULL)
        goto fail;
    slp_main_thread_ident = PyLong_AsUnsignedLong(ident);
    Py_DECREF(ident);
    if (PyErr_Occurred())
        goto fail;

    builtins = PyEval_GetBuiltins();
    st->TaskletExit = PyDict_GetItemString(builtins, "TaskletExit");
    if (st->TaskletExit != NULL && PyExceptionClass_Check(st->TaskletExit)) {
        Py_INCREF(st->TaskletExit);
    }
    else {
        st->TaskletExit = PyErr_NewExceptionWithDoc(
            "builtins.TaskletExit",
            "Raised in a tasklet to end it (tasklet.kill()); a subclass of "
            "SystemExit that ends only the tasklet.",
            PyExc_SystemExit, NULL);
        if (st->TaskletExit == NULL)
            goto fail;
        if (PyDict_SetItemString(builtins, "TaskletExit",
                                 st->TaskletExit) < 0)
            goto fail;
    }
    if (PyModule_AddObjectRef(m, "TaskletExit", st->TaskletExit) < 0)
        goto fail;
    if (tasklet_module_init(m) < 0 || channel_module_init(m) < 0 ||
        pyframe_module_init(m) < 0)
        goto fail;
#ifdef SLP_WITH_HUB
    if (hub_module_init(m) < 0)
        goto fail;
#endif
    pystate_install_chunk_cache();
    if (pystate_init_trampolines() < 0)
        goto fail;
    return 0;
fail:
    slp_st = NULL;
    return -1;
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL}
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "_stackless",
    "Tasklets, channels and a cooperative scheduler on stock CPython.",
    sizeof(slp_module_state),
    module_methods,
    module_slots,
    module_traverse,
    module_clear,
    NULL,
};

PyMODINIT_FUNC
PyInit__stackless(void)
{
    return PyModuleDef_Init(&module_def);
}
