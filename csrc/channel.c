/* The channel type: rendezvous between tasklets (docs/design.md, "Tasklets and channels").
 *
 * A channel's queue holds the tasklets blocked on it, all in the same
 * direction; `balance` counts them (> 0 senders, < 0 receivers).  A blocked
 * sender keeps the value it sends in its tempval; a receiver that finds a
 * waiting sender takes it from there.
 */
#include "module.h"

#include <assert.h>

#include "structmember.h"

#define C(o) ((ChannelObject *)(o))

static void
channel_append(ChannelObject *ch, TaskletObject *t, int dir)
{
    Py_INCREF(t);
    t->cnext = NULL;
    t->cprev = ch->tail;
    if (ch->tail != NULL)
        ch->tail->cnext = t;
    else
        ch->head = t;
    ch->tail = t;
    t->blocked = dir;
    t->chan = ch;
    ch->balance += dir;
}

void
channel_remove_waiter(ChannelObject *ch, TaskletObject *t)
{
    assert(t->chan == ch && (t->blocked == 1 || t->blocked == -1));
    if (t->cprev != NULL)
        t->cprev->cnext = t->cnext;
    else
        ch->head = t->cnext;
    if (t->cnext != NULL)
        t->cnext->cprev = t->cprev;
    else
        ch->tail = t->cprev;
    t->cnext = t->cprev = NULL;
    ch->balance -= t->blocked;
    t->blocked = 0;
    t->chan = NULL;
}

static int
channel_notify(ChannelObject *ch, TaskletObject *t, int sending, int willblock)
{
    PyObject *cb = slp_st->channel_callback, *res;
    if (slp_st->channel_cb_active) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Recursive channel call due to callbacks!");
        return -1;
    }
    Py_INCREF(cb);
    slp_st->channel_cb_active = 1;
    res = PyObject_CallFunction(cb, "OOii", (PyObject *)ch, (PyObject *)t,
                                sending, willblock);
    slp_st->channel_cb_active = 0;
    Py_DECREF(cb);
    if (res == NULL)
        PyErr_Clear();          /* errors in the callback are swallowed */
    Py_XDECREF(res);
    return 0;
}

/* send (dir 1, value borrowed) or receive (dir -1, value NULL). */
static PyObject *
channel_action_impl(ChannelObject *ch, int dir, PyObject *value,
                    PyObject *const *call_sp);

static PyObject *
channel_action(ChannelObject *ch, int dir, PyObject *value)
{
    return channel_action_impl(ch, dir, value, NULL);
}

/* call_sp: the end of the caller's argument array (see pystate_save). */
static PyObject *
channel_action_impl(ChannelObject *ch, int dir, PyObject *value,
                    PyObject *const *call_sp)
{
    sched_thread *ts = sched_get();
    TaskletObject *cur, *w, *next;
    PyObject *result = NULL, *r;
    int waiting;

    if (ts == NULL)
        return NULL;
    if (slp_st->channel_cb_active) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Recursive channel call due to callbacks!");
        return NULL;
    }
    cur = ts->current;
    /* a throw from another thread that reached cur while it ran: raised
     * here, before the transfer (no message is taken and then lost) */
    if (sched_raise_pending(ts) < 0)
        return NULL;
    waiting = dir > 0 ? ch->balance < 0 : ch->balance > 0;
    if (slp_st->channel_callback != NULL) {
        /* as in Stackless, the callback sees the value being sent in the
         * sender's tempval (None for a receiver); the old one comes back
         * if the callback fails */
        PyObject *old = cur->tempval;
        cur->tempval = Py_NewRef(dir > 0 ? value : Py_None);
        if (channel_notify(ch, cur, dir > 0, !waiting) < 0) {
            Py_SETREF(cur->tempval, old);
            return NULL;
        }
        Py_DECREF(old);
    }
    /* the callback may have changed things */
    waiting = dir > 0 ? ch->balance < 0 : ch->balance > 0;

    if (waiting) {
        int mode;       /* 0 initiator continues, 1 waiter runs, 2 yield */
        w = ch->head;
        if (tasklet_ts(w) != ts) {
            /* The waiter belongs to another thread: make it runnable there
             * and wake that thread; no local switch, no preference. */
            sched_thread *wts = tasklet_ts(w);
            if (wts == NULL) {
                PyErr_SetString(PyExc_RuntimeError, "tasklet has no thread");
                return NULL;
            }
            channel_remove_waiter(ch, w);
            if (dir > 0) {
                Py_SETREF(w->tempval, Py_NewRef(value));
            }
            else {
                result = w->tempval;
                w->tempval = Py_NewRef(Py_None);
            }
            sched_remote_insert(wts, w, 0);
            Py_DECREF(w);
            if (dir > 0)
                Py_RETURN_NONE;
            if (Bomb_Check(result))
                return bomb_explode(result);
            return result;
        }
        mode = ch->schedule_all ? 2 : (ch->preference == -dir ? 1 : 0);
        if (mode != 0 && sched_check_switch(ts) < 0)
            return NULL;
        channel_remove_waiter(ch, w);       /* its reference is ours now */
        if (dir > 0) {
            Py_SETREF(w->tempval, Py_NewRef(value));
        }
        else {
            result = w->tempval;
            w->tempval = Py_NewRef(Py_None);
        }
        if (mode == 1) {
            ring_insert_after(ts, cur, w);
            Py_DECREF(w);
            r = sched_switch(ts, w, NULL);
        }
        else {
            ring_append(ts, w);
            Py_DECREF(w);
            r = mode == 2 ? sched_switch(ts, cur->next, NULL)
                          : Py_NewRef(Py_None);
        }
        if (r == NULL) {
            Py_XDECREF(result);
            return NULL;
        }
        Py_DECREF(r);
        if (dir > 0)
            Py_RETURN_NONE;
        if (Bomb_Check(result))
            return bomb_explode(result);
        return result;
    }

    /* Nobody waiting: block.  The tasklet joins the channel's queue
     * before the scheduler looks for something else to run, because that
     * may wait for the hub or for another thread, which may complete the
     * transfer meanwhile. */
    if (cur->flags & TF_BLOCK_TRAP) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this tasklet does not like to be blocked.");
        return NULL;
    }
    if (ch->closing) {
        PyErr_SetString(PyExc_ValueError,
                        "Send/receive operation on a closed channel");
        return NULL;
    }
    if (sched_check_switch(ts) < 0)
        return NULL;
    Py_SETREF(cur->tempval, Py_NewRef(dir > 0 ? value : Py_None));
    channel_append(ch, cur, dir);
    ts->call_sp = call_sp;
    next = sched_block_pick(ts);
    if (next == NULL) {
        ts->call_sp = NULL;
        if (cur->blocked) {
            channel_remove_waiter(ch, cur);
            Py_DECREF(cur);
        }
        Py_SETREF(cur->tempval, Py_NewRef(Py_None));
        return NULL;
    }
    if (next == cur) {
        ts->call_sp = NULL;
        r = sched_take_tempval(cur);     /* completed while we waited */
    }
    else
        r = sched_switch(ts, next, (PyObject *)ring_remove(ts, cur));
    if (r == NULL)
        return NULL;
    if (dir > 0) {
        Py_DECREF(r);
        Py_RETURN_NONE;
    }
    return r;
}

/* send() and receive() take their arguments as a vector: called from the
 * eval loop, the vector is the caller's value stack, whose extent the
 * collector then knows while the tasklet is blocked. */
static PyObject *
channel_send(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError,
                     "send() takes exactly one argument (%zd given)", nargs);
        return NULL;
    }
    return channel_action_impl(C(self), 1, args[0], args + 1);
}

static PyObject *
channel_receive(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 0) {
        PyErr_Format(PyExc_TypeError,
                     "receive() takes no arguments (%zd given)", nargs);
        return NULL;
    }
    return channel_action_impl(C(self), -1, NULL, args);
}

static PyObject *
send_bomb(PyObject *self, PyObject *bomb)
{
    PyObject *r;
    if (bomb == NULL)
        return NULL;
    r = channel_action(C(self), 1, bomb);
    Py_DECREF(bomb);
    return r;
}

static PyObject *
channel_send_exception(PyObject *self, PyObject *const *args,
                       Py_ssize_t nargs)
{
    PyObject *rest, *bomb;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError,
                        "send_exception() takes at least 1 argument");
        return NULL;
    }
    if (!PyExceptionClass_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError,
                        "send_exception() needs a BaseException subclass");
        return NULL;
    }
    rest = slp_tuple_from_array(args + 1, nargs - 1);
    if (rest == NULL)
        return NULL;
    bomb = bomb_new(args[0], rest, NULL);
    Py_DECREF(rest);
    return send_bomb(self, bomb);
}

static PyObject *
channel_send_throw(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"exc", "val", "tb", NULL};
    PyObject *exc, *val = Py_None, *tb = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|OO:send_throw", kwlist,
                                     &exc, &val, &tb))
        return NULL;
    return send_bomb(self, bomb_from_raise_args(exc, val, tb));
}

static PyObject *
channel_send_sequence(PyObject *self, PyObject *seq)
{
    PyObject *it = PyObject_GetIter(seq), *item;
    Py_ssize_t n = 0;
    if (it == NULL)
        return NULL;
    while ((item = PyIter_Next(it)) != NULL) {
        PyObject *r = channel_action(C(self), 1, item);
        Py_DECREF(item);
        if (r == NULL) {
            Py_DECREF(it);
            return NULL;
        }
        Py_DECREF(r);
        n++;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return NULL;
    return PyLong_FromSsize_t(n);
}

static PyObject *
channel_iternext(PyObject *self)
{
    ChannelObject *ch = C(self);
    if (ch->closing && ch->balance <= 0) {
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    return channel_action(ch, -1, NULL);
}

static PyObject *
channel_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    C(self)->closing = 1;
    Py_RETURN_NONE;
}

static PyObject *
channel_open(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    C(self)->closing = 0;
    Py_RETURN_NONE;
}

static PyObject *
channel_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    (void)self;
    PyErr_SetString(PyExc_NotImplementedError,
                    "pickling channels arrives with the API issue (#3)");
    return NULL;
}

/* --- attributes -------------------------------------------------------- */

static PyObject *
channel_get_balance(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromSsize_t(C(self)->balance);
}

static PyObject *
channel_get_closing(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(C(self)->closing);
}

static PyObject *
channel_get_closed(PyObject *self, void *c)
{
    (void)c;
    return PyBool_FromLong(C(self)->closing && C(self)->balance == 0);
}

static PyObject *
channel_get_queue(PyObject *self, void *c)
{
    (void)c;
    if (C(self)->head == NULL)
        Py_RETURN_NONE;
    return Py_NewRef((PyObject *)C(self)->head);
}

static PyObject *
channel_get_preference(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(C(self)->preference);
}

static int
channel_set_preference(PyObject *self, PyObject *v, void *c)
{
    int overflow;
    long p;
    (void)c;
    if (v == NULL || !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "preference must be set to an integer");
        return -1;
    }
    p = PyLong_AsLongAndOverflow(v, &overflow);
    if (overflow)
        p = overflow;
    else if (p == -1 && PyErr_Occurred())
        return -1;
    C(self)->preference = p > 0 ? 1 : (p < 0 ? -1 : 0);
    return 0;
}

static PyObject *
channel_get_schedule_all(PyObject *self, void *c)
{
    (void)c;
    return PyLong_FromLong(C(self)->schedule_all);
}

static int
channel_set_schedule_all(PyObject *self, PyObject *v, void *c)
{
    int truth;
    (void)c;
    if (v == NULL || !PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError,
                        "schedule_all must be set to an integer");
        return -1;
    }
    truth = PyObject_IsTrue(v);
    if (truth < 0)
        return -1;
    C(self)->schedule_all = truth;
    return 0;
}

static PyGetSetDef channel_getset[] = {
    {"balance", channel_get_balance, NULL,
     "> 0: blocked senders; < 0: blocked receivers", NULL},
    {"closing", channel_get_closing, NULL, "close() was called", NULL},
    {"closed", channel_get_closed, NULL, "closing and nobody blocked", NULL},
    {"queue", channel_get_queue, NULL, "the first blocked tasklet or None", NULL},
    {"preference", channel_get_preference, channel_set_preference,
     "-1: prefer the receiver, 1: prefer the sender, 0: no preference", NULL},
    {"schedule_all", channel_get_schedule_all, channel_set_schedule_all,
     "every transfer yields to the next runnable tasklet", NULL},
    {NULL}
};

static PyMemberDef channel_members[] = {
    {"__weaklistoffset__", T_PYSSIZET,
     offsetof(ChannelObject, weakreflist), READONLY, NULL},
    {NULL}
};

static PyMethodDef channel_methods[] = {
    {"send", (PyCFunction)(void (*)(void))channel_send, METH_FASTCALL,
     "send($self, value, /)\n"
     "--\n"
     "\n"
     "Send value to a receiver.  If none is waiting, the current tasklet\n"
     "blocks until one comes; otherwise the channel's preference decides\n"
     "which of the two runs first."},
    {"receive", (PyCFunction)(void (*)(void))channel_receive, METH_FASTCALL,
     "receive($self, /)\n"
     "--\n"
     "\n"
     "Receive a value from a sender, blocking until one comes; an exception\n"
     "sent with send_exception() or send_throw() is raised here."},
    {"send_exception", (PyCFunction)(void (*)(void))channel_send_exception,
     METH_FASTCALL,
     "send_exception($self, exc, /, *args)\n"
     "--\n"
     "\n"
     "Like send(), but the receiver raises exc(*args)."},
    {"send_throw", (PyCFunction)(void (*)(void))channel_send_throw,
     METH_VARARGS | METH_KEYWORDS,
     "send_throw($self, /, exc, val=None, tb=None)\n"
     "--\n"
     "\n"
     "Like send(), but the receiver raises the exception that exc, val and tb\n"
     "describe, as for the raise statement."},
    {"send_sequence", channel_send_sequence, METH_O,
     "send_sequence($self, seq, /)\n"
     "--\n"
     "\n"
     "Send every item of the iterable seq, one send() each; returns the\n"
     "number of items sent."},
    {"close", channel_close, METH_NOARGS,
     "close($self, /)\n"
     "--\n"
     "\n"
     "Stop the channel from growing: once no tasklet is blocked on it, it is\n"
     "closed (closing is true at once) and further sends and receives raise\n"
     "ValueError."},
    {"open", channel_open, METH_NOARGS,
     "open($self, /)\n"
     "--\n"
     "\n"
     "Re-open a closed or closing channel."},
    {"__reduce__", channel_reduce, METH_NOARGS,
     "__reduce__($self, /)\n"
     "--\n"
     "\n"
     "Pickle support (replaced by the Python one of stackless_compat)."},
    {NULL}
};

/* --- lifetime ---------------------------------------------------------- */

static PyObject *
channel_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ChannelObject *ch;
    /* Stackless's channel() accepts and ignores any arguments */
    (void)args;
    (void)kwds;
    if (slp_fault())
        return PyErr_NoMemory();
    ch = (ChannelObject *)type->tp_alloc(type, 0);
    if (ch == NULL)
        return NULL;
    ch->preference = -1;
    return (PyObject *)ch;
}

static int
channel_traverse(PyObject *self, visitproc visit, void *arg)
{
    TaskletObject *t;
    Py_VISIT(Py_TYPE(self));
    for (t = C(self)->head; t != NULL; t = t->cnext)
        Py_VISIT((PyObject *)t);
    return 0;
}

static int
channel_clear(PyObject *self)
{
    ChannelObject *ch = C(self);
    while (ch->head != NULL) {
        TaskletObject *t = ch->head;
        channel_remove_waiter(ch, t);
        Py_DECREF(t);
    }
    return 0;
}

static void
channel_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (C(self)->weakreflist != NULL)
        PyObject_ClearWeakRefs(self);
    channel_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot channel_slots[] = {
    {Py_tp_new, channel_tp_new},
    {Py_tp_dealloc, channel_dealloc},
    {Py_tp_traverse, channel_traverse},
    {Py_tp_clear, channel_clear},
    {Py_tp_iter, PyObject_SelfIter},
    {Py_tp_iternext, channel_iternext},
    {Py_tp_getset, channel_getset},
    {Py_tp_members, channel_members},
    {Py_tp_methods, channel_methods},
    {Py_tp_doc, "channel()\n"
                "--\n"
                "\n"
                "A rendezvous point: send() blocks until a receive() takes the value,\n"
                "and the other way round."},
    {0, NULL}
};

static PyType_Spec channel_spec = {
    "_stackless.channel", sizeof(ChannelObject), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    channel_slots
};

int
channel_module_init(PyObject *module)
{
    PyTypeObject *tp = (PyTypeObject *)PyType_FromModuleAndSpec(
        module, &channel_spec, NULL);
    if (tp == NULL)
        return -1;
    slp_st->channel_type = tp;
    return PyModule_AddObjectRef(module, "channel", (PyObject *)tp);
}
