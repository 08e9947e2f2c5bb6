/* The tasklet, bomb and atomic types. */
#include "module.h"
#include "pyframe.h"

#include "structmember.h"
#include "pythread.h"

/* ========================================================================
 * bomb
 */
PyObject *
bomb_new(PyObject *type, PyObject *value, PyObject *tb)
{
    BombObject *b;
    if (slp_fault())
        return PyErr_NoMemory();
    b = PyObject_GC_New(BombObject, slp_st->bomb_type);
    if (b == NULL)
        return NULL;
    b->type = Py_XNewRef(type);
    b->value = Py_XNewRef(value);
    b->traceback = Py_XNewRef(tb);
    PyObject_GC_Track(b);
    return (PyObject *)b;
}

PyObject *
bomb_from_error(void)
{
    PyObject *typ, *val, *tb, *b;
    PyErr_Fetch(&typ, &val, &tb);
    PyErr_NormalizeException(&typ, &val, &tb);
    if (tb != NULL && val != NULL)
        PyException_SetTraceback(val, tb);
    b = bomb_new(typ, val, tb);
    Py_XDECREF(typ);
    Py_XDECREF(val);
    Py_XDECREF(tb);
    return b;
}

PyObject *
bomb_explode(PyObject *bomb)
{
    BombObject *b = (BombObject *)bomb;
    if (b->type == NULL || b->type == Py_None) {
        Py_DECREF(bomb);
        PyErr_SetString(PyExc_RuntimeError, "an empty bomb exploded");
        return NULL;
    }
    PyErr_Restore(Py_NewRef(b->type),
                  b->value == Py_None ? NULL : Py_XNewRef(b->value),
                  b->traceback == Py_None ? NULL : Py_XNewRef(b->traceback));
    Py_DECREF(bomb);
    return NULL;
}

PyObject *
bomb_from_raise_args(PyObject *exc, PyObject *val, PyObject *tb)
{
    if (tb == Py_None)
        tb = NULL;
    if (val == Py_None)
        val = NULL;
    if (tb != NULL && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError,
                        "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionClass_Check(exc))
        return bomb_new(exc, val, tb);
    if (PyExceptionInstance_Check(exc)) {
        if (val != NULL) {
            PyErr_SetString(PyExc_TypeError,
                            "instance exception may not have a separate value");
            return NULL;
        }
        if (tb == NULL)
            tb = PyException_GetTraceback(exc);
        else
            Py_INCREF(tb);
        {
            PyObject *b = bomb_new((PyObject *)Py_TYPE(exc), exc, tb);
            Py_XDECREF(tb);
            return b;
        }
    }
    PyErr_Format(PyExc_TypeError,
                 "exceptions must be classes, or instances, not %s",
                 Py_TYPE(exc)->tp_name);
    return NULL;
}

static PyObject *
bomb_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"type", "value", "traceback", NULL};
    PyObject *t = NULL, *v = NULL, *tb = NULL;
    BombObject *b;
    if (PyTuple_GET_SIZE(args) == 1 && kwds == NULL &&
        PyTuple_Check(PyTuple_GET_ITEM(args, 0))) {
        args = PyTuple_GET_ITEM(args, 0);     /* bomb(sys.exc_info()) */
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:bomb", kwlist,
                                     &t, &v, &tb))
        return NULL;
    b = (BombObject *)type->tp_alloc(type, 0);
    if (b == NULL)
        return NULL;
    b->type = Py_NewRef(t ? t : Py_None);
    b->value = Py_NewRef(v ? v : Py_None);
    b->traceback = Py_NewRef(tb ? tb : Py_None);
    return (PyObject *)b;
}

static int
bomb_traverse(BombObject *b, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(b));
    Py_VISIT(b->type);
    Py_VISIT(b->value);
    Py_VISIT(b->traceback);
    return 0;
}

static int
bomb_clear(BombObject *b)
{
    Py_CLEAR(b->type);
    Py_CLEAR(b->value);
    Py_CLEAR(b->traceback);
    return 0;
}

static void
bomb_dealloc(BombObject *b)
{
    PyTypeObject *tp = Py_TYPE(b);
    PyObject_GC_UnTrack(b);
    bomb_clear(b);
    tp->tp_free(b);
    Py_DECREF(tp);
}

static PyObject *
bomb_get(BombObject *b, void *which)
{
    PyObject *v = which == (void *)0 ? b->type
                : which == (void *)1 ? b->value : b->traceback;
    return Py_NewRef(v ? v : Py_None);
}

static PyObject *
bomb_reduce(BombObject *b, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(O(OOO))", Py_TYPE(b),
                         b->type ? b->type : Py_None,
                         b->value ? b->value : Py_None,
                         b->traceback ? b->traceback : Py_None);
}

static PyGetSetDef bomb_getset[] = {
    {"type", (getter)bomb_get, NULL, "the exception type", (void *)0},
    {"value", (getter)bomb_get, NULL, "the exception value", (void *)1},
    {"traceback", (getter)bomb_get, NULL, "the traceback", (void *)2},
    {NULL}
};

static PyMethodDef bomb_methods[] = {
    {"__reduce__", (PyCFunction)bomb_reduce, METH_NOARGS,
     "__reduce__($self, /)\n"
     "--\n"
     "\n"
     "Pickle support: (bomb, (type, value, traceback))."},
    {NULL}
};

static PyType_Slot bomb_slots[] = {
    {Py_tp_new, bomb_tp_new},
    {Py_tp_dealloc, bomb_dealloc},
    {Py_tp_traverse, bomb_traverse},
    {Py_tp_clear, bomb_clear},
    {Py_tp_getset, bomb_getset},
    {Py_tp_methods, bomb_methods},
    {Py_tp_doc, "bomb(type=None, value=None, traceback=None)\n"
                "--\n"
                "\n"
                "An exception in transit: raised by the tasklet that receives it."},
    {0, NULL}
};

static PyType_Spec bomb_spec = {
    "_stackless.bomb", sizeof(BombObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    bomb_slots
};

/* ========================================================================
 * atomic
 */
static PyObject *
atomic_enter(AtomicObject *self, PyObject *Py_UNUSED(ignored))
{
    sched_thread *ts = sched_get();
    if (ts == NULL)
        return NULL;
    self->saved = (ts->current->flags & TF_ATOMIC) != 0;
    ts->current->flags |= TF_ATOMIC;
    Py_RETURN_NONE;
}

static PyObject *
atomic_exit(AtomicObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    sched_thread *ts = sched_get();
    (void)args;
    (void)nargs;
    if (ts == NULL)
        return NULL;
    if (self->saved) {
        ts->current->flags |= TF_ATOMIC;
    }
    else {
        ts->current->flags &= ~TF_ATOMIC;
        if (wd_interrupt_waits(ts))
            wd_retry(ts);
    }
    Py_RETURN_NONE;
}

static void
atomic_dealloc(AtomicObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef atomic_methods[] = {
    {"__enter__", (PyCFunction)atomic_enter, METH_NOARGS,
     "__enter__($self, /)\n"
     "--\n"
     "\n"
     "Make the current tasklet atomic."},
    {"__exit__", (PyCFunction)(void (*)(void))atomic_exit, METH_FASTCALL,
     "__exit__($self, /, *exc_info)\n"
     "--\n"
     "\n"
     "Restore the atomic flag saved by __enter__()."},
    {NULL}
};

static PyType_Slot atomic_slots[] = {
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, atomic_dealloc},
    {Py_tp_methods, atomic_methods},
    {Py_tp_doc, "atomic()\n"
                "--\n"
                "\n"
                "Context manager: the current tasklet is atomic inside the block (the\n"
                "watchdog of run() does not interrupt it); the old flag is restored."},
    {0, NULL}
};

static PyType_Spec atomic_spec = {
    "_stackless.atomic", sizeof(AtomicObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, atomic_slots
};

/* ========================================================================
 * tasklet
 */
#define T(o) ((TaskletObject *)(o))

static PyObject *tasklet_vectorcall(PyObject *self, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames);

static TaskletObject *
tasklet_alloc(PyTypeObject *type, sched_thread *ts)
{
    TaskletObject *t;
    if (slp_fault()) {
        PyErr_NoMemory();
        return NULL;
    }
    t = (TaskletObject *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    t->vectorcall = tasklet_vectorcall;
    t->tempval = Py_NewRef(Py_None);
    t->ts = ts;
    t->thread_id = ts->thread_id;
    return t;
}

TaskletObject *
tasklet_new_main(sched_thread *ts)
{
    TaskletObject *t = tasklet_alloc(slp_st->tasklet_type, ts);
    if (t != NULL) {
        t->flags = TF_MAIN;
        /* the main tasklet runs on the thread's initial C stack */
        t->serial = ts->serial = 1;
    }
    return t;
}

static PyObject *
tasklet_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    sched_thread *ts = sched_get();
    (void)args;
    (void)kwds;
    if (ts == NULL)
        return NULL;
    return (PyObject *)tasklet_alloc(type, ts);
}

static int
tasklet_is_current(TaskletObject *t)
{
    return tasklet_ts(t) != NULL && t->ts->current == t;
}

/* The context a new tasklet starts in: a copy of its creator's. */
static PyObject *
creator_context(void)
{
    PyThreadState *tstate = PyThreadState_Get();
    PyObject *cur = pystate_get_context(tstate);
    if (cur == NULL)
        return NULL;
    return PyContext_Copy(cur);
}

/* What Stackless counts in nesting_level: the C-level recursions it could
 * not avoid.  A tasklet suspended when its thread ended keeps its saved
 * chain (kill() drops it), so it keeps its count. */
static int
stackless_nesting(TaskletObject *t)
{
    if (t->ts == NULL || !tasklet_started(t))
        return 0;
    if (tasklet_ts(t) == NULL)
        return t->c_nesting + pystate_stackless_nesting(NULL, &t->ps);
    return t->c_nesting + pystate_stackless_nesting(
        t->ts->tstate, tasklet_is_current(t) ? NULL : &t->ps);
}

static int
tasklet_bind_impl(TaskletObject *t, PyObject *func, PyObject *args,
                  PyObject *kwargs)
{
    if (func == Py_None)
        func = NULL;
    if (args == Py_None)
        args = NULL;
    if (kwargs == Py_None)
        kwargs = NULL;
    if (func != NULL && !PyCallable_Check(func)) {
        PyErr_SetString(PyExc_TypeError,
                        "tasklet function must be a callable or None");
        return -1;
    }
    if (tasklet_is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "can't (re)bind the current tasklet");
        return -1;
    }
    if ((t->flags & TF_IN_RING) || tasklet_waiting(t)) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet is scheduled");
        return -1;
    }
    /* "C state" is what Stackless could not drop: nesting_level > 0, also
     * of a tasklet whose thread has ended (the frames of a dropped tasklet
     * are leaked, never freed, so C frames of its abandoned stack do no
     * harm) */
    if (stackless_nesting(t) > 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tasklet has C state on its stack");
        return -1;
    }
    if (t->flags & TF_MAIN) {
        PyErr_SetString(PyExc_RuntimeError,
                        func == NULL && args == NULL && kwargs == NULL
                            ? "can't unbind the main tasklet"
                            : "tasklet has C state on its stack");
        return -1;
    }
    if (tasklet_started(t)) {
        /* Suspended in plain Python code: its frames are dropped without
         * running finally blocks (the frames' objects are leaked, not
         * freed: C code of the abandoned stack still refers to them). */
        sched_forget(t);
        pystate_discard(&t->ps);
        slp_stack_reset(&t->stack);
    }
    if (func == NULL && args == NULL && kwargs == NULL) {
        t->flags &= ~TF_SETUP;
        Py_CLEAR(t->func);
        Py_CLEAR(t->args);
        Py_CLEAR(t->kwargs);
        Py_CLEAR(t->context);
        Py_SETREF(t->tempval, Py_NewRef(Py_None));
        return 0;
    }
    if (func != NULL) {
        Py_XSETREF(t->func, Py_NewRef(func));
        if (args == NULL && kwargs == NULL) {
            Py_SETREF(t->tempval, Py_NewRef(func));
            return 0;
        }
    }
    if (args != NULL || kwargs != NULL) {
        PyObject *a, *k = NULL, *ctx;
        if (tasklet_ts(t) == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
            return -1;
        }
        if (t->func == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "the tasklet was not bound to a function");
            return -1;
        }
        a = args ? PySequence_Tuple(args) : PyTuple_New(0);
        if (a == NULL)
            return -1;
        if (kwargs != NULL) {
            if (!PyDict_Check(kwargs)) {
                Py_DECREF(a);
                PyErr_SetString(PyExc_TypeError, "kwargs must be a dict");
                return -1;
            }
            k = PyDict_Copy(kwargs);
            if (k == NULL) {
                Py_DECREF(a);
                return -1;
            }
        }
        ctx = creator_context();
        if (ctx == NULL && PyErr_Occurred()) {
            Py_DECREF(a);
            Py_XDECREF(k);
            return -1;
        }
        Py_XSETREF(t->args, a);
    t->flags &= ~TF_ARGS_TRIED;
        Py_XSETREF(t->kwargs, k);
        Py_XSETREF(t->context, ctx);
        Py_SETREF(t->tempval, Py_NewRef(Py_None));
        t->flags |= TF_SETUP;
    }
    return 0;
}

static int
tasklet_tp_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "kwargs", NULL};
    PyObject *func = NULL, *a = NULL, *k = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:tasklet", kwlist,
                                     &func, &a, &k))
        return -1;
    if (func == NULL && a == NULL && k == NULL)
        return 0;
    return tasklet_bind_impl(T(self), func, a, k);
}

static PyObject *
tasklet_bind(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"func", "args", "kwargs", NULL};
    PyObject *func = NULL, *a = NULL, *k = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOO:bind", kwlist,
                                     &func, &a, &k))
        return NULL;
    if (tasklet_bind_impl(T(self), func, a, k) < 0)
        return NULL;
    return Py_NewRef(self);
}

/* The live thread a tasklet belongs to, or NULL with RuntimeError. */
static sched_thread *
target_thread(TaskletObject *t)
{
    sched_thread *ts = sched_get();
    if (ts == NULL)
        return NULL;
    if (tasklet_ts(t) == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Target thread isn't initialized");
        return NULL;
    }
    return t->ts;
}

/* setup(*args, **kwargs) and tasklet(*args, **kwargs) */
static PyObject *
tasklet_setup_impl(PyObject *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    TaskletObject *t = T(self);
    sched_thread *ts;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *a, *k = NULL, *ctx;

    if (tasklet_alive(t)) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet is alive");
        return NULL;
    }
    if (t->func == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the tasklet was not bound to a function");
        return NULL;
    }
    ts = target_thread(t);
    if (ts == NULL)
        return NULL;
    a = slp_tuple_from_array(args, nargs);
    if (a == NULL)
        return NULL;
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        Py_ssize_t i;
        k = PyDict_New();
        if (k == NULL) {
            Py_DECREF(a);
            return NULL;
        }
        for (i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            if (PyDict_SetItem(k, PyTuple_GET_ITEM(kwnames, i),
                               args[nargs + i]) < 0) {
                Py_DECREF(a);
                Py_DECREF(k);
                return NULL;
            }
        }
    }
    ctx = creator_context();
    if (ctx == NULL && PyErr_Occurred()) {
        Py_DECREF(a);
        Py_XDECREF(k);
        return NULL;
    }
    Py_XSETREF(t->args, a);
    t->flags &= ~TF_ARGS_TRIED;
    Py_XSETREF(t->kwargs, k);
    Py_XSETREF(t->context, ctx);
    Py_SETREF(t->tempval, Py_NewRef(Py_None));
    t->flags |= TF_SETUP;
    if (ts == sched_peek())
        ring_append(ts, t);
    else
        sched_remote_insert(ts, t, 0);
    return Py_NewRef(self);
}

static PyObject *
tasklet_setup(PyObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *res, *kwnames = NULL;
    PyObject **stack;
    Py_ssize_t n = PyTuple_GET_SIZE(args), nk = kwds ? PyDict_GET_SIZE(kwds) : 0;
    Py_ssize_t i = 0, pos = 0;
    PyObject *key, *value;
    if (nk == 0)
        return tasklet_setup_impl(self, &PyTuple_GET_ITEM(args, 0), n, NULL);
    stack = PyMem_Malloc((n + nk) * sizeof(PyObject *));
    kwnames = PyTuple_New(nk);
    if (stack == NULL || kwnames == NULL) {
        PyMem_Free(stack);
        Py_XDECREF(kwnames);
        return PyErr_NoMemory();
    }
    for (i = 0; i < n; i++)
        stack[i] = PyTuple_GET_ITEM(args, i);
    i = 0;
    while (PyDict_Next(kwds, &pos, &key, &value)) {
        PyTuple_SET_ITEM(kwnames, i, Py_NewRef(key));
        stack[n + i] = value;
        i++;
    }
    res = tasklet_setup_impl(self, stack, n, kwnames);
    PyMem_Free(stack);
    Py_DECREF(kwnames);
    return res;
}

static PyObject *
tasklet_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    return tasklet_setup_impl(self, args, nargsf, kwnames);
}

static PyObject *
tasklet_insert(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    TaskletObject *t = T(self);
    sched_thread *ts;
    if (tasklet_waiting(t)) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot run a blocked tasklet");
        return NULL;
    }
    if (!tasklet_alive(t)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "You cannot run an unbound(dead) tasklet");
        return NULL;
    }
    ts = target_thread(t);
    if (ts == NULL)
        return NULL;
    /* A paused run() caller resumed by insert() cleans up in its run(). */
    if (ts != sched_peek())
        sched_remote_insert(ts, t, 0);
    else if (!(t->flags & TF_IN_RING))
        ring_append(ts, t);
    return Py_NewRef(self);
}

static PyObject *
tasklet_remove(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    TaskletObject *t = T(self);
    if (tasklet_waiting(t)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "You cannot remove a blocked tasklet.");
        return NULL;
    }
    if (tasklet_is_current(t)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "The current tasklet cannot be removed.");
        return NULL;
    }
    if ((t->flags & TF_IN_RING) && tasklet_ts(t) != NULL) {
        Py_INCREF(self);
        Py_DECREF(ring_remove(t->ts, t));
        return self;
    }
    return Py_NewRef(self);
}

/* run() and switch() */
static PyObject *
tasklet_run_impl(TaskletObject *t, int remove)
{
    sched_thread *ts;
    TaskletObject *cur;
    if (tasklet_waiting(t)) {
        PyErr_SetString(PyExc_RuntimeError, "You cannot run a blocked tasklet");
        return NULL;
    }
    if (!tasklet_alive(t)) {
        PyErr_SetString(PyExc_RuntimeError,
                        "You cannot run an unbound(dead) tasklet");
        return NULL;
    }
    ts = sched_get();
    if (ts == NULL)
        return NULL;
    if (tasklet_ts(t) != ts) {
        if (remove) {
            PyErr_SetString(PyExc_RuntimeError,
                            "can't switch to a different thread.");
            return NULL;
        }
        /* run() of another thread's tasklet: it goes right after that
         * thread's current tasklet; nothing switches here. */
        ts = target_thread(t);
        if (ts == NULL)
            return NULL;
        sched_remote_insert(ts, t, 1);
        Py_RETURN_NONE;
    }
    cur = ts->current;
    if (t == cur)
        Py_RETURN_NONE;
    if (sched_check_switch(ts) < 0)
        return NULL;
    /* Not scheduled: appended to the queue, i.e. just before the caller, so
     * that the caller runs next once t yields (Stackless's order: after
     * t2.remove(); t2.run(), t2's next is the caller).  A run() caller in the
     * watchdog list leaves it in its own run() when it resumes. */
    if (!(t->flags & TF_IN_RING))
        ring_append(ts, t);
    if (remove)
        return sched_switch(ts, t, (PyObject *)ring_remove(ts, cur));
    return sched_switch(ts, t, NULL);
}

static PyObject *
tasklet_run(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return tasklet_run_impl(T(self), 0);
}

static PyObject *
tasklet_switch(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return tasklet_run_impl(T(self), 1);
}

static PyObject *
tasklet_kill(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"pending", NULL};
    int pending = 0;
    PyObject *bomb;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|p:kill", kwlist, &pending))
        return NULL;
    if (!tasklet_alive(T(self))) {
        /* a dead tasklet: nothing to do */
        Py_RETURN_NONE;
    }
    if (tasklet_started(T(self)) && tasklet_ts(T(self)) == NULL &&
        T(self)->blocked) {
        /* its thread has ended: the frames are dropped (sched_throw), and
         * it leaves the channel it waited on, as in Stackless */
        channel_remove_waiter(T(self)->chan, T(self));
        Py_DECREF(T(self));     /* the channel's reference */
    }
    bomb = bomb_new(slp_st->TaskletExit, NULL, NULL);
    if (bomb == NULL)
        return NULL;
    return sched_throw(T(self), bomb, pending, 1);
}

static PyObject *
tasklet_throw(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"exc", "val", "tb", "pending", NULL};
    PyObject *exc = NULL, *val = Py_None, *tb = Py_None, *bomb;
    int pending = 0;
    /* exc is required, as in Stackless */
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OOp:throw", kwlist,
                                     &exc, &val, &tb, &pending))
        return NULL;
    bomb = bomb_from_raise_args(exc, val, tb);
    if (bomb == NULL)
        return NULL;
    /* TaskletExit ends a tasklet as kill() does, but only kill() drops
     * the frames of a tasklet whose thread has ended: throw() gets
     * "tasklet has no thread" there (as Stackless) */
    return sched_throw(T(self), bomb, pending,
                       exc == slp_st->TaskletExit &&
                       !(tasklet_started(T(self)) &&
                         tasklet_ts(T(self)) == NULL));
}

static PyObject *
tasklet_raise_exception(PyObject *self, PyObject *args)
{
    PyObject *cls, *rest, *bomb;
    if (PyTuple_GET_SIZE(args) < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "raise_exception() takes at least 1 argument");
        return NULL;
    }
    cls = PyTuple_GET_ITEM(args, 0);
    if (!PyExceptionClass_Check(cls)) {
        PyErr_SetString(PyExc_TypeError,
                        "raise_exception() needs a BaseException subclass");
        return NULL;
    }
    rest = PyTuple_GetSlice(args, 1, PyTuple_GET_SIZE(args));
    if (rest == NULL)
        return NULL;
    bomb = bomb_new(cls, rest, NULL);
    Py_DECREF(rest);
    if (bomb == NULL)
        return NULL;
    return sched_throw(T(self), bomb, 0, 0);
}

static int
flag_arg(PyObject *arg, const char *what, int *out)
{
    long v;
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError,
                     "%s needs exactly one bool or integer", what);
        return -1;
    }
    v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    *out = v != 0;
    return 0;
}

static PyObject *
tasklet_set_atomic(PyObject *self, PyObject *arg)
{
    TaskletObject *t = T(self);
    int flag, old = (t->flags & TF_ATOMIC) != 0;
    if (flag_arg(arg, "set_atomic", &flag) < 0)
        return NULL;
    if (flag) {
        t->flags |= TF_ATOMIC;
    }
    else {
        t->flags &= ~TF_ATOMIC;
        if (tasklet_ts(t) != NULL && t->ts->current == t && wd_interrupt_waits(t->ts))
            wd_retry(t->ts);
    }
    return PyBool_FromLong(old);
}

static PyObject *
tasklet_set_ignore_nesting(PyObject *self, PyObject *arg)
{
    TaskletObject *t = T(self);
    int flag, old = (t->flags & TF_IGNORE_NESTING) != 0;
    if (flag_arg(arg, "set_ignore_nesting", &flag) < 0)
        return NULL;
    if (flag)
        t->flags |= TF_IGNORE_NESTING;
    else
        t->flags &= ~TF_IGNORE_NESTING;
    return PyBool_FromLong(old);
}

static PyObject *
tasklet_bind_thread(PyObject *self, PyObject *args)
{
    TaskletObject *t = T(self);
    PyObject *tid = NULL;
    sched_thread *ts, *target;
    unsigned long id;
    if (!PyArg_ParseTuple(args, "|O:bind_thread", &tid))
        return NULL;
    ts = sched_get();
    if (ts == NULL)
        return NULL;
    target = ts;
    switch (slp_parse_thread_id(tid, &id)) {
    case -1:
        return NULL;
    case 1:
        target = sched_find_thread(id);
        if (target == NULL) {
            PyErr_SetString(PyExc_ValueError, "bad thread");
            return NULL;
        }
        break;
    default:
        break;
    }
    if (t->flags & TF_IN_RING) {
        PyErr_SetString(PyExc_RuntimeError,
                        "can't (re)bind a runnable tasklet");
        return NULL;
    }
    if (target == t->ts)
        Py_RETURN_NONE;
    if (t->flags & TF_MAIN) {
        PyErr_SetString(PyExc_RuntimeError,
                        "can't (re)bind the main tasklet");
        return NULL;
    }
    if (tasklet_started(t)) {
        /* its C stack belongs to the thread it ran on */
        PyErr_SetString(PyExc_RuntimeError,
                        "tasklet has C state on its stack");
        return NULL;
    }
    if ((t->flags & TF_SETUP) && tasklet_ts(t) == NULL) {
        /* set up for a thread that has ended: it died with it */
        t->flags &= ~TF_SETUP;
        Py_CLEAR(t->args);
        Py_CLEAR(t->kwargs);
        Py_CLEAR(t->context);
    }
    t->ts = target;
    t->thread_id = target->thread_id;
    Py_RETURN_NONE;
}

/* --- contexts ---------------------------------------------------------- */

/* Borrowed reference to where t's context lives. */
static PyObject **
context_slot(TaskletObject *t, sched_thread *ts)
{
    if (tasklet_started(t) && !tasklet_is_current(t))
        return pystate_context_slot(&t->ps);
    if (!tasklet_started(t))
        return &t->context;
    (void)ts;
    return NULL;                /* current: in the thread state */
}

static PyObject *
tasklet_get_context_obj(TaskletObject *t)
{
    sched_thread *ts = sched_get();
    PyObject **slot, *ctx;
    if (ts == NULL)
        return NULL;
    slot = context_slot(t, ts);
    if (slot == NULL) {
        ctx = PyContext_CopyCurrent();     /* creates it when missing */
        if (ctx == NULL)
            return NULL;
        Py_DECREF(ctx);
        return Py_XNewRef(pystate_get_context(ts->tstate));
    }
    if (*slot == NULL) {
        *slot = PyContext_New();
        if (*slot == NULL)
            return NULL;
    }
    return Py_NewRef(*slot);
}

static PyObject *
tasklet_set_context(PyObject *self, PyObject *ctx)
{
    TaskletObject *t = T(self);
    sched_thread *ts = sched_get();
    PyObject **slot;
    if (ts == NULL)
        return NULL;
    if (!PyContext_CheckExact(ctx)) {
        PyErr_SetString(PyExc_TypeError,
                        "set_context() needs a contextvars.Context");
        return NULL;
    }
    slot = context_slot(t, ts);
    if (slot == NULL)
        pystate_set_context(ts->tstate, ctx);
    else
        Py_XSETREF(*slot, Py_NewRef(ctx));
    return Py_NewRef(self);
}

static PyObject *
tasklet_context_run(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    TaskletObject *t = T(self);
    PyObject *ctx, *run, *res;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "context_run() missing required argument 'callable'");
        return NULL;
    }
    if (tasklet_is_current(t))
        return PyObject_Vectorcall(args[0], args + 1, nargs - 1, kwnames);
    ctx = tasklet_get_context_obj(t);
    if (ctx == NULL)
        return NULL;
    run = PyObject_GetAttrString(ctx, "run");
    Py_DECREF(ctx);
    if (run == NULL)
        return NULL;
    res = PyObject_Vectorcall(run, args, nargs, kwnames);
    Py_DECREF(run);
    return res;
}

static PyObject *
tasklet_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_SetString(PyExc_NotImplementedError,
                    "pickling tasklets arrives with the API issue (#3)");
    return NULL;
}

/* --- GC and lifetime --------------------------------------------------- */

int
tasklet_drop_if_restorable(TaskletObject *t)
{
    sched_thread *ts = tasklet_ts(t);
    if (ts == NULL || !tasklet_started(t) || tasklet_is_current(t) ||
        (t->flags & (TF_MAIN | TF_WATCHDOG | TF_PARKED)))
        return 0;
    if (t->c_nesting + pystate_stackless_nesting(ts->tstate, &t->ps) > 0)
        return 0;
    Py_INCREF(t);
    if (t->blocked) {
        channel_remove_waiter(t->chan, t);
        Py_DECREF(t);           /* the channel's reference */
    }
    else if (t->flags & TF_IN_RING)
        Py_DECREF(ring_remove(ts, t));
    /* its frames are dropped without running finally blocks (as in
     * bind(None)) */
    sched_forget(t);
    pystate_discard(&t->ps);
    slp_stack_reset(&t->stack);
    Py_SETREF(t->tempval, Py_NewRef(Py_None));
    Py_DECREF(t);
    return 1;
}

static int
tasklet_traverse(PyObject *self, visitproc visit, void *arg)
{
    TaskletObject *t = T(self);
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(t->tempval);
    Py_VISIT(t->func);
    Py_VISIT(t->args);
    Py_VISIT(t->kwargs);
    Py_VISIT(t->context);
    if (tasklet_started(t) && !tasklet_is_current(t) &&
        !(t->flags & TF_MAIN))
        return pystate_traverse(&t->ps, visit, arg);
    return 0;
}

static int
tasklet_clear(PyObject *self)
{
    TaskletObject *t = T(self);
    if (t->tempval != Py_None)
        Py_SETREF(t->tempval, Py_NewRef(Py_None));
    if (!tasklet_started(t)) {
        Py_CLEAR(t->func);
        Py_CLEAR(t->args);
        Py_CLEAR(t->kwargs);
        t->flags &= ~TF_SETUP;
    }
    Py_CLEAR(t->context);
    return 0;
}

/* Kill t (a suspended tasklet nobody refers to) so that its finally
 * blocks run, up to 10 times if it swallows TaskletExit. */
static void
finalize_now(TaskletObject *t)
{
    int i;
    for (i = 0; i < 10 && tasklet_started(t); i++) {
        if (tasklet_finalize_kill(t) < 0)
            PyErr_WriteUnraisable((PyObject *)t);
    }
}

/* A suspended tasklet that becomes unreachable is killed with TaskletExit.
 *
 * Not while the cyclic collector runs, though: its lists of objects have
 * their heads on the C stack of the collecting tasklet, and switching to
 * another tasklet would overwrite them (every tasklet runs at the same stack
 * base).  Then the tasklet is kept (which resurrects it and whatever it
 * refers to) and killed by the collector's "stop" callback, when those
 * lists are gone.  A tasklet of another live thread gets TaskletExit in its
 * own thread. */
static void
tasklet_finalize(PyObject *self)
{
    TaskletObject *t = T(self);
    sched_thread *ts;
    PyObject *exc, *val, *tb;

    if (!tasklet_started(t) || (t->flags & TF_MAIN) || slp_is_finalizing())
        return;
    ts = sched_peek();
    if (tasklet_ts(t) == NULL || ts == NULL || ts->current == t)
        return;
    PyErr_Fetch(&exc, &val, &tb);
    if (t->ts != ts) {
        PyObject *bomb = bomb_new(slp_st->TaskletExit, NULL, NULL), *r;
        r = bomb ? sched_throw(t, bomb, 1, 1) : NULL;
        if (r == NULL)
            PyErr_WriteUnraisable(self);
        Py_XDECREF(r);
    }
    else if (pystate_gc_collecting() || ts->switch_trap || ts->in_callback) {
        if (PyList_Append(slp_st->pending_kills, self) < 0)
            PyErr_WriteUnraisable(self);
    }
    else {
        finalize_now(t);
    }
    PyErr_Restore(exc, val, tb);
}

int
tasklet_run_pending_kills(void)
{
    sched_thread *ts = sched_peek();
    PyObject *list = slp_st->pending_kills;
    if (ts == NULL || ts->switch_trap || ts->in_callback)
        return 0;
    while (PyList_GET_SIZE(list) > 0) {
        TaskletObject *t = (TaskletObject *)PyList_GET_ITEM(list, 0);
        Py_INCREF(t);
        if (PySequence_DelItem(list, 0) < 0) {
            Py_DECREF(t);
            return -1;
        }
        if (tasklet_ts(t) == ts && ts->current != t)
            finalize_now(t);
        Py_DECREF(t);
    }
    return 0;
}

static void
tasklet_dealloc(PyObject *self)
{
    TaskletObject *t = T(self);
    PyTypeObject *tp = Py_TYPE(self);

    PyObject_GC_UnTrack(self);
    if (t->weakreflist != NULL)
        PyObject_ClearWeakRefs(self);
    PyObject_GC_Track(self);
    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return;                 /* resurrected */
    PyObject_GC_UnTrack(self);
    if (tasklet_started(t) && !(t->flags & TF_MAIN)) {
        /* Could not be killed: its frames are abandoned. */
        sched_forget(t);
        pystate_discard(&t->ps);
    }
    slp_stack_free(&t->stack);
    if (t->cstate != NULL) {
        ((CStackObject *)t->cstate)->task = NULL;
        Py_CLEAR(t->cstate);
    }
    Py_CLEAR(t->tempval);
    Py_CLEAR(t->func);
    Py_CLEAR(t->args);
    Py_CLEAR(t->kwargs);
    Py_CLEAR(t->context);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* --- attributes -------------------------------------------------------- */

#define FLAG_GETTER(name, expr)                                          \
    static PyObject *tasklet_get_##name(PyObject *self, void *c)        \
    {                                                                    \
        TaskletObject *t = T(self);                                      \
        (void)c;                                                         \
        return PyBool_FromLong(expr);                                    \
    }

/* As Stackless (a frame and a thread state): a tasklet suspended when its
 * thread ended, having caught the TaskletExit of the thread's end, is kept
 * with its frames (kill() drops them) but is not alive. */
#define VISIBLY_ALIVE(t) (tasklet_alive(t) && tasklet_ts(t) != NULL)
FLAG_GETTER(alive, VISIBLY_ALIVE(t))
FLAG_GETTER(paused, VISIBLY_ALIVE(t) && !(t->flags & TF_IN_RING) &&
                    !tasklet_waiting(t))
FLAG_GETTER(blocked, tasklet_waiting(t))
FLAG_GETTER(scheduled, (t->flags & TF_IN_RING) || tasklet_waiting(t))
FLAG_GETTER(atomic, (t->flags & TF_ATOMIC) != 0)
FLAG_GETTER(ignore_nesting, (t->flags & TF_IGNORE_NESTING) != 0)
FLAG_GETTER(block_trap, (t->flags & TF_BLOCK_TRAP) != 0)
FLAG_GETTER(is_main, (t->flags & TF_MAIN) != 0)
FLAG_GETTER(is_current, tasklet_is_current(t))

static int
tasklet_set_block_trap(PyObject *self, PyObject *v, void *c)
{
    int flag;
    (void)c;
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "can't delete block_trap");
        return -1;
    }
    if (flag_arg(v, "block_trap", &flag) < 0)
        return -1;
    if (flag)
        T(self)->flags |= TF_BLOCK_TRAP;
    else
        T(self)->flags &= ~TF_BLOCK_TRAP;
    return 0;
}

static PyObject *
tasklet_get_thread_id(PyObject *self, void *c)
{
    TaskletObject *t = T(self);
    (void)c;
    if (tasklet_ts(t) == NULL)
        return PyLong_FromLong(-1);
    return PyLong_FromUnsignedLong(t->thread_id);
}

/* Neighbours in a channel's queue for a blocked tasklet, else in the run
 * queue; None when not chained. */
static PyObject *
link_or_none(TaskletObject *t, int forward)
{
    TaskletObject *link = NULL;
    if (t->blocked)
        link = forward ? t->cnext : t->cprev;
    else if (t->flags & TF_IN_RING)
        link = forward ? t->next : t->prev;
    if (link != NULL)
        return Py_NewRef((PyObject *)link);
    Py_RETURN_NONE;
}

static PyObject *
tasklet_get_next(PyObject *self, void *c)
{
    (void)c;
    return link_or_none(T(self), 1);
}

static PyObject *
tasklet_get_prev(PyObject *self, void *c)
{
    (void)c;
    return link_or_none(T(self), 0);
}

static PyObject *
tasklet_get_tempval(PyObject *self, void *c)
{
    (void)c;
    return Py_NewRef(T(self)->tempval);
}

static int
tasklet_set_tempval(PyObject *self, PyObject *v, void *c)
{
    (void)c;
    Py_XSETREF(T(self)->tempval, Py_NewRef(v ? v : Py_None));
    return 0;
}

static PyObject *
tasklet_get_frame(PyObject *self, void *c)
{
    TaskletObject *t = T(self);
    (void)c;
    if (tasklet_ts(t) == NULL || !tasklet_started(t))
        Py_RETURN_NONE;
    if (tasklet_is_current(t))
        return pystate_current_frame(t->ts->tstate);
    return pystate_frame(t->ts->tstate, &t->ps);
}

static PyObject *
tasklet_get_recursion_depth(PyObject *self, void *c)
{
    TaskletObject *t = T(self);
    (void)c;
    if (tasklet_ts(t) == NULL || !tasklet_started(t))
        return PyLong_FromLong(0);
    return PyLong_FromLong(pystate_recursion_depth(
        t->ts->tstate, tasklet_is_current(t) ? NULL : &t->ps));
}

static PyObject *
tasklet_get_nesting_level(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(stackless_nesting(T(self)));
}

static PyObject *
tasklet_get_restorable(PyObject *self, void *c)
{
    /* Stackless's rule: no C state it could not restore.  Pickling
     * (csrc/pyframe.c) goes by the frames themselves: it also resumes some
     * calls made through C (__enter__, __exit__) and refuses what it cannot
     * rebuild with a PicklingError that names the frame. */
    PyObject *n = tasklet_get_nesting_level(self, c);
    long v;
    if (n == NULL)
        return NULL;
    v = PyLong_AsLong(n);
    Py_DECREF(n);
    return PyBool_FromLong(v == 0);
}

static PyObject *
tasklet_get_channel(PyObject *self, void *c)
{
    TaskletObject *t = T(self);
    (void)c;
    if (t->blocked && t->chan != NULL)
        return Py_NewRef((PyObject *)t->chan);
    Py_RETURN_NONE;
}

static PyObject *
tasklet_get_context_id(PyObject *self, void *c)
{
    PyObject *ctx = tasklet_get_context_obj(T(self)), *id;
    (void)c;
    if (ctx == NULL)
        return NULL;
    id = PyLong_FromVoidPtr(ctx);
    Py_DECREF(ctx);
    return id;
}

/* trace_function / profile_function (as in Stackless): the
 * tasklet's own sys.settrace()/setprofile() function. */
static PyObject *
tasklet_get_tracer(PyObject *self, void *c)
{
    TaskletObject *t = T(self);
    int profile = c != NULL;
    if (tasklet_ts(t) == NULL)
        Py_RETURN_NONE;
    if (tasklet_is_current(t))
        return pystate_get_trace(t->ts->tstate, NULL, profile);
    return pystate_get_trace(t->ts->tstate, &t->ps, profile);
}

static int
tasklet_set_tracer(PyObject *self, PyObject *v, void *c)
{
    TaskletObject *t = T(self);
    int profile = c != NULL;
    if (v == NULL)
        v = Py_None;
    if (v != Py_None && !PyCallable_Check(v)) {
        PyErr_SetString(PyExc_TypeError,
                        "a trace or profile function must be callable or None");
        return -1;
    }
    if (tasklet_is_current(t)) {
        if (t->ts != sched_peek()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "cannot set the trace function of the current "
                            "tasklet of another thread");
            return -1;
        }
        return pystate_set_trace(t->ts->tstate, NULL, profile, v);
    }
    if (tasklet_ts(t) == NULL && tasklet_started(t)) {
        PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
        return -1;
    }
    if (!tasklet_alive(t) && v != Py_None) {
        /* as in Stackless: a tasklet without a frame has no tracing */
        PyErr_SetString(PyExc_RuntimeError, "tasklet is not alive");
        return -1;
    }
    return pystate_set_trace(NULL, &t->ps, profile, v);
}

/* --- cstack: the C stack a tasklet holds (tasklet.cstate) ---------------
 *
 * One object per tasklet, created on first access and kept until the
 * tasklet goes away (its `task` is then None).  `next`/`prev` walk the
 * circular chain of the cstacks of the thread's tasklets that hold a C
 * stack: the main tasklet, then every started tasklet; a cstack whose
 * tasklet holds none (not started, ended, or its thread gone) and the
 * thread's initial stub are alone in their chain.  `serial` identifies the
 * C stack: the main tasklet's is the initial stub's (1); a started tasklet
 * gets a new one from its thread's counter.  `startaddr` is 0 (addresses
 * are not exposed); str() gives `size` machine words of the saved stack.
 */

static sched_thread *
cstack_thread(CStackObject *c)
{
    return c->task != NULL ? tasklet_ts(c->task) : NULL;
}

/* A tasklet running a plain Python function does not need its argument
 * tuple once the call has started: CPython's function call copies the
 * arguments into the function's frame (new references) before any of its
 * code runs, and a switch only ever happens from inside that code.  The
 * tuple is dropped at the first switch, so a blocked tasklet does not keep
 * a second copy of its arguments (48 bytes for one argument).  Only when
 * that frees the tuple alone: every item must stay alive through another
 * reference, so that no finalizer runs on the way into a switch. */
void
tasklet_drop_copied_args(TaskletObject *t)
{
    PyObject *args = t->args, *f = t->func;
    Py_ssize_t i, n;

    /* once per start: the switches after the first find the same answer */
    t->flags |= TF_ARGS_TRIED;
    if ((t->flags & (TF_SETUP | TF_MAIN)) || args == NULL ||
        t->kwargs != NULL || f == NULL || !pystate_copies_args(f) ||
        Py_REFCNT(args) != 1)
        return;
    n = PyTuple_GET_SIZE(args);
    for (i = 0; i < n; i++)
        if (Py_REFCNT(PyTuple_GET_ITEM(args, i)) < 2)
            return;
    t->args = NULL;
    Py_DECREF(args);
}

long long
tasklet_serial(TaskletObject *t)
{
    sched_thread *ts = tasklet_ts(t);
    if (t->serial != 0)
        return t->serial;
    if (ts == NULL || !tasklet_started(t))
        return 1;               /* not on a C stack of its own (yet) */
    t->serial = ++ts->serial;
    return t->serial;
}

static PyObject *
cstack_new(TaskletObject *task, long long serial)
{
    CStackObject *c = PyObject_New(CStackObject, slp_st->cstack_type);
    if (c == NULL)
        return NULL;
    c->task = task;
    c->serial = serial;
    return (PyObject *)c;
}

PyObject *
cstack_of_tasklet(TaskletObject *t)
{
    if (t->cstate == NULL) {
        t->cstate = cstack_new(t, 0);
        if (t->cstate == NULL)
            return NULL;
    }
    return Py_NewRef(t->cstate);
}

PyObject *
cstack_initial_stub(sched_thread *ts)
{
    if (ts->initial_stub == NULL) {
        ts->initial_stub = cstack_new(NULL, 1);
        if (ts->initial_stub == NULL)
            return NULL;
    }
    return Py_NewRef(ts->initial_stub);
}

static int
cstack_in_chain(sched_thread *ts, TaskletObject *t)
{
    return t == ts->main || t == ts->current || tasklet_started(t);
}

static PyObject *
cstack_neighbour(CStackObject *c, int forward)
{
    sched_thread *ts = cstack_thread(c);
    TaskletObject *t = c->task, *o, *first, *last, *before = NULL;
    if (ts == NULL || ts->main == NULL || !cstack_in_chain(ts, t))
        return Py_NewRef((PyObject *)c);
    /* the chain: main, then the started tasklets in ts->all order */
    first = ts->main;
    last = ts->main;
    for (o = ts->all; o != NULL; o = o->all_next)
        if (o != ts->main)
            last = o;
    if (t == ts->main) {
        o = ts->all;
        while (o != NULL && o == ts->main)
            o = o->all_next;
        return cstack_of_tasklet(forward ? (o ? o : first) : last);
    }
    for (o = ts->all; o != NULL; o = o->all_next) {
        if (o == ts->main)
            continue;
        if (o == t)
            break;
        before = o;
    }
    if (o == NULL)              /* current but not listed: alone */
        return Py_NewRef((PyObject *)c);
    if (!forward)
        return cstack_of_tasklet(before ? before : first);
    for (o = o->all_next; o != NULL && o == ts->main; o = o->all_next)
        ;
    return cstack_of_tasklet(o ? o : first);
}

static PyObject *
cstack_get_next(PyObject *self, void *c)
{
    (void)c;
    return cstack_neighbour((CStackObject *)self, 1);
}

static PyObject *
cstack_get_prev(PyObject *self, void *c)
{
    (void)c;
    return cstack_neighbour((CStackObject *)self, 0);
}

static PyObject *
cstack_get_task(PyObject *self, void *c)
{
    CStackObject *cs = (CStackObject *)self;
    (void)c;
    return Py_NewRef(cs->task ? (PyObject *)cs->task : Py_None);
}

static Py_ssize_t
cstack_words(CStackObject *c)
{
    if (c->task == NULL || cstack_thread(c) == NULL ||
        tasklet_is_current(c->task))
        return 0;
    return (Py_ssize_t)(slp_stack_size(&c->task->stack) / sizeof(void *));
}

static PyObject *
cstack_get_size(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromSsize_t(cstack_words((CStackObject *)self));
}

static PyObject *
cstack_get_nesting_level(PyObject *self, void *c)
{
    CStackObject *cs = (CStackObject *)self;
    if (cs->task == NULL)
        return PyLong_FromLong(0);
    return tasklet_get_nesting_level((PyObject *)cs->task, c);
}

static PyObject *
cstack_get_serial(PyObject *self, void *c)
{
    CStackObject *cs = (CStackObject *)self;
    (void)c;
    if (cs->task == NULL)
        return PyLong_FromLongLong(cs->serial);
    return PyLong_FromLongLong(tasklet_serial(cs->task));
}

static PyObject *
cstack_get_startaddr(PyObject *self, void *c)
{
    (void)self;
    (void)c;
    return PyLong_FromLong(0);
}

static PyObject *
cstack_str(PyObject *self)
{
    CStackObject *cs = (CStackObject *)self;
    Py_ssize_t n = cstack_words(cs) * (Py_ssize_t)sizeof(void *), have = 0;
    PyObject *r;
    char *buf;
    if (n > 0 && cs->task->stack.copy != NULL)
        have = (Py_ssize_t)cs->task->stack.saved < n
                   ? (Py_ssize_t)cs->task->stack.saved : n;
    buf = PyMem_Calloc(n > 0 ? (size_t)n : 1, 1);
    if (buf == NULL)
        return PyErr_NoMemory();
    if (have > 0)
        memcpy(buf, cs->task->stack.copy, (size_t)have);
    r = PyUnicode_DecodeLatin1(buf, n, NULL);
    PyMem_Free(buf);
    return r;
}

static PyObject *
cstack_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_SetString(PyExc_TypeError, "cannot pickle 'cstack' object");
    return NULL;
}

static void
cstack_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_Free(self);
    Py_DECREF(tp);
}

static PyGetSetDef cstack_getset[] = {
    {"next", cstack_get_next, NULL, "the next cstack of the chain", NULL},
    {"prev", cstack_get_prev, NULL, "the previous cstack of the chain", NULL},
    {"task", cstack_get_task, NULL, "its tasklet, or None", NULL},
    {"size", cstack_get_size, NULL, "saved machine words", NULL},
    {"nesting_level", cstack_get_nesting_level, NULL,
     "the nesting level of its tasklet", NULL},
    {"serial", cstack_get_serial, NULL, "identifies the C stack", NULL},
    {"startaddr", cstack_get_startaddr, NULL, "always 0", NULL},
    {NULL}
};

static PyMethodDef cstack_methods[] = {
    {"__reduce__", cstack_reduce, METH_NOARGS,
     "__reduce__($self, /)\n"
     "--\n"
     "\n"
     "A cstack cannot be pickled (TypeError)."},
    {NULL}
};

static PyType_Slot cstack_slots[] = {
    {Py_tp_dealloc, cstack_dealloc},
    {Py_tp_str, cstack_str},
    {Py_tp_getset, cstack_getset},
    {Py_tp_methods, cstack_methods},
    {Py_tp_doc, "The C stack a tasklet holds (tasklet.cstate)."},
    {0, NULL}
};

static PyType_Spec cstack_spec = {
    "_stackless.cstack", sizeof(CStackObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    cstack_slots
};

static PyObject *
tasklet_get_cstate(PyObject *self, void *c)
{
    (void)c;
    return cstack_of_tasklet(T(self));
}

static PyGetSetDef tasklet_getset[] = {
    {"trace_function", tasklet_get_tracer, tasklet_set_tracer,
     "the tasklet's sys.settrace() function", NULL},
    {"profile_function", tasklet_get_tracer, tasklet_set_tracer,
     "the tasklet's sys.setprofile() function", (void *)1},
    {"alive", tasklet_get_alive, NULL, "has a frame: set up or suspended", NULL},
    {"paused", tasklet_get_paused, NULL, "alive, not scheduled, not blocked", NULL},
    {"blocked", tasklet_get_blocked, NULL, "waiting on a channel, or in the hub (I/O, timer, DNS)", NULL},
    {"scheduled", tasklet_get_scheduled, NULL, "runnable or blocked", NULL},
    {"restorable", tasklet_get_restorable, NULL,
     "no C state (nesting_level 0): its frames can be pickled", NULL},
    {"atomic", tasklet_get_atomic, NULL, "not interrupted by the watchdog of run()", NULL},
    {"ignore_nesting", tasklet_get_ignore_nesting, NULL,
     "the watchdog may interrupt at nesting levels above 0", NULL},
    {"block_trap", tasklet_get_block_trap, tasklet_set_block_trap,
     "blocking channel operations raise RuntimeError", NULL},
    {"is_main", tasklet_get_is_main, NULL,
     "the thread's main tasklet", NULL},
    {"is_current", tasklet_get_is_current, NULL,
     "the tasklet that is running now", NULL},
    {"thread_id", tasklet_get_thread_id, NULL,
     "id of the thread it belongs to; -1 once that thread has ended", NULL},
    {"next", tasklet_get_next, NULL, "next in the run queue or channel", NULL},
    {"prev", tasklet_get_prev, NULL, "previous in the run queue or channel", NULL},
    {"tempval", tasklet_get_tempval, tasklet_set_tempval,
     "the value passed on the next switch to the tasklet", NULL},
    {"frame", tasklet_get_frame, NULL, "the top Python frame", NULL},
    {"recursion_depth", tasklet_get_recursion_depth, NULL,
     "the Python recursion depth of the tasklet", NULL},
    {"nesting_level", tasklet_get_nesting_level, NULL,
     "C-level re-entries of the eval loop in its frame chain", NULL},
    {"_channel", tasklet_get_channel, NULL, "the channel it is blocked on", NULL},
    {"context_id", tasklet_get_context_id, NULL,
     "id of the tasklet's contextvars context", NULL},
    {"cstate", tasklet_get_cstate, NULL, "the cstack object of the tasklet",
     NULL},
    {NULL}
};

static PyMemberDef tasklet_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(TaskletObject, weakreflist), READONLY, NULL},
    {"__vectorcalloffset__", T_PYSSIZET,
     offsetof(TaskletObject, vectorcall), READONLY, NULL},
    {NULL}
};

static PyMethodDef tasklet_methods[] = {
    {"bind", (PyCFunction)(void (*)(void))tasklet_bind,
     METH_VARARGS | METH_KEYWORDS,
     "bind($self, /, func=None, args=None, kwargs=None)\n"
     "--\n"
     "\n"
     "Bind the tasklet to func (and, with args or kwargs, set it up to call\n"
     "func(*args, **kwargs)).  Any tasklet that is not current or scheduled\n"
     "can be bound again; a suspended one loses its frames without running\n"
     "finally blocks.  With no arguments the tasklet is unbound.  Returns the\n"
     "tasklet."},
    {"setup", (PyCFunction)(void (*)(void))tasklet_setup,
     METH_VARARGS | METH_KEYWORDS,
     "setup($self, /, *args, **kwargs)\n"
     "--\n"
     "\n"
     "Supply the arguments of the bound function and append the tasklet to\n"
     "the end of the run queue; tasklet(func)(*args) does the same.  Returns\n"
     "the tasklet."},
    {"insert", tasklet_insert, METH_NOARGS,
     "insert($self, /)\n"
     "--\n"
     "\n"
     "Append the tasklet to the end of the run queue (a no-op if it is\n"
     "already runnable) and return it.  A blocked tasklet cannot be inserted;\n"
     "only its channel wakes it."},
    {"remove", tasklet_remove, METH_NOARGS,
     "remove($self, /)\n"
     "--\n"
     "\n"
     "Take the tasklet out of the run queue (it is paused) and return it."},
    {"run", tasklet_run, METH_NOARGS,
     "run($self, /)\n"
     "--\n"
     "\n"
     "Insert the tasklet if needed and switch to it at once; the current\n"
     "tasklet stays runnable."},
    {"switch", tasklet_switch, METH_NOARGS,
     "switch($self, /)\n"
     "--\n"
     "\n"
     "Like run(), but the current tasklet is removed from the run queue\n"
     "(paused).  Only within one thread."},
    {"kill", (PyCFunction)(void (*)(void))tasklet_kill,
     METH_VARARGS | METH_KEYWORDS,
     "kill($self, /, pending=False)\n"
     "--\n"
     "\n"
     "Raise TaskletExit in the tasklet (a no-op on a dead one).  The tasklet\n"
     "runs at once unless pending is true, in which case it is only made\n"
     "runnable.  An exception that passes its top frame ends it silently."},
    {"throw", (PyCFunction)(void (*)(void))tasklet_throw,
     METH_VARARGS | METH_KEYWORDS,
     "throw($self, /, exc, val=None, tb=None, pending=False)\n"
     "--\n"
     "\n"
     "Raise an exception in the tasklet: exc, val and tb as for the raise\n"
     "statement.  The tasklet runs at once unless pending is true, in which\n"
     "case it is only made runnable."},
    {"raise_exception", tasklet_raise_exception, METH_VARARGS,
     "raise_exception($self, exc_class, /, *args)\n"
     "--\n"
     "\n"
     "Raise exc_class(*args) in the tasklet, which runs at once."},
    {"set_atomic", tasklet_set_atomic, METH_O,
     "set_atomic($self, flag, /)\n"
     "--\n"
     "\n"
     "Set the atomic flag and return its old value.  An atomic tasklet is\n"
     "not interrupted by the watchdog of run()."},
    {"set_ignore_nesting", tasklet_set_ignore_nesting, METH_O,
     "set_ignore_nesting($self, flag, /)\n"
     "--\n"
     "\n"
     "Set the ignore_nesting flag and return its old value.  With it the\n"
     "watchdog may interrupt the tasklet at nesting levels above 0."},
    {"bind_thread", tasklet_bind_thread, METH_VARARGS,
     "bind_thread($self, thread_id=None, /)\n"
     "--\n"
     "\n"
     "Move a tasklet without C state (not started, or left by an ended\n"
     "thread) to this thread, or to the thread with id thread_id."},
    {"set_context", tasklet_set_context, METH_O,
     "set_context($self, context, /)\n"
     "--\n"
     "\n"
     "Make context (a contextvars.Context) the tasklet's context.  Returns\n"
     "the tasklet."},
    {"context_run", (PyCFunction)(void (*)(void))tasklet_context_run,
     METH_FASTCALL | METH_KEYWORDS,
     "context_run($self, callable, /, *args, **kwargs)\n"
     "--\n"
     "\n"
     "Call callable(*args, **kwargs) in the tasklet's contextvars context and\n"
     "return the result."},
    {"__reduce__", tasklet_reduce, METH_NOARGS,
     "__reduce__($self, /)\n"
     "--\n"
     "\n"
     "Pickle support (replaced by the Python one of stackless_compat)."},
    {NULL}
};

static PyType_Slot tasklet_slots[] = {
    {Py_tp_new, tasklet_tp_new},
    {Py_tp_init, tasklet_tp_init},
    {Py_tp_dealloc, tasklet_dealloc},
    {Py_tp_finalize, tasklet_finalize},
    {Py_tp_traverse, tasklet_traverse},
    {Py_tp_clear, tasklet_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_getset, tasklet_getset},
    {Py_tp_members, tasklet_members},
    {Py_tp_methods, tasklet_methods},
    {Py_tp_doc, "tasklet(func=None, args=None, kwargs=None)\n"
                "--\n"
                "\n"
                "A micro-thread: tasklet(f)(*args) schedules f(*args).  The arguments\n"
                "are those of bind()."},
    {0, NULL}
};

static PyType_Spec tasklet_spec = {
    "_stackless.tasklet", sizeof(TaskletObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
        Py_TPFLAGS_HAVE_VECTORCALL,
    tasklet_slots
};

int
tasklet_module_init(PyObject *module)
{
    PyTypeObject *tp;
    tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, &tasklet_spec, NULL);
    if (tp == NULL)
        return -1;
    slp_st->tasklet_type = tp;
    if (PyModule_AddObjectRef(module, "tasklet", (PyObject *)tp) < 0)
        return -1;
    tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, &bomb_spec, NULL);
    if (tp == NULL)
        return -1;
    slp_st->bomb_type = tp;
    if (PyModule_AddObjectRef(module, "bomb", (PyObject *)tp) < 0)
        return -1;
    tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, &atomic_spec, NULL);
    if (tp == NULL)
        return -1;
    slp_st->atomic_type = tp;
    if (PyModule_AddObjectRef(module, "atomic", (PyObject *)tp) < 0)
        return -1;
    tp = (PyTypeObject *)PyType_FromModuleAndSpec(module, &cstack_spec, NULL);
    if (tp == NULL)
        return -1;
    slp_st->cstack_type = tp;
    if (PyModule_AddObjectRef(module, "cstack", (PyObject *)tp) < 0)
        return -1;
    return 0;
}
