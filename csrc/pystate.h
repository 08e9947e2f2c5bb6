/* Per-tasklet interpreter state: what CPython keeps in the thread state but
 * Stackless keeps per tasklet.  This layer hides the interpreter's private
 * structures from the rest of the extension; pystate.c is the only file
 * that depends on the exact CPython version.
 */
#ifndef SLP_PYSTATE_H
#define SLP_PYSTATE_H

#include <Python.h>

/* Room for a _PyCFrame: a tasklet's root C frame record lives in its
 * pystate_saved, not on its C stack, to keep suspended stacks small. */
typedef struct { void *slot[3]; } pystate_cframe_buf;

typedef struct pystate_saved {
    void *cframe;               /* _PyCFrame *, lives on the tasklet's C stack */
    void *top_frame;            /* _PyInterpreterFrame * at the time of saving */
    void *chunk;                /* _PyStackChunk *: the data stack */
    PyObject **ds_top;
    PyObject **ds_limit;
    void *exc_info;             /* _PyErr_StackItem *: top of the handled stack */
    PyObject *exc_value;        /* owned: bottom item of the handled stack */
    void *exc_previous;
    PyObject *context;          /* owned: contextvars context, may be NULL */
    Py_tracefunc tracefunc;
    Py_tracefunc profilefunc;
    PyObject *traceobj;         /* owned */
    PyObject *profileobj;       /* owned */
    int recursion_depth;
    int trash_delete_nesting;
    int tracing;
    int own_root;               /* the first data stack chunk is ours */
    int top_stacktop;           /* value stack top of the top frame when it
                                   blocked in a call from its value stack,
                                   else -1 (see pystate_traverse) */
    pystate_cframe_buf root_cframe;
} pystate_saved;

/* ImportError unless the running interpreter is the one we were built for. */
int pystate_check_version(void);

/* Cache the data stack chunks CPython allocates for deep calls, so that a
 * tasklet whose small first chunk overflows does not map and unmap memory
 * on every call.  Called once at import. */
void pystate_install_chunk_cache(void);

/* Move the running tasklet's state out of the thread state into s.
 * call_sp, when not NULL, is the end of the argument array of the C call
 * the tasklet is suspended in; if it lies in the top frame's value stack
 * (a call straight from the eval loop), the stack's extent is recorded so
 * that the collector can see the references on it. */
void pystate_save(PyThreadState *ts, pystate_saved *s,
                  PyObject *const *call_sp);

/* Move s back into the thread state (s keeps no references). */
void pystate_restore(PyThreadState *ts, pystate_saved *s);

/* First thing a new tasklet does: give the thread state a fresh frame chain
 * rooted in s->root_cframe, a small data stack sized for `callable`,
 * recursion depth 0, no handled exception, no tracing, and the context
 * `context` (a new reference is taken; NULL for an empty one).  Cannot
 * fail: without memory for a small first chunk, CPython allocates one. */
void pystate_start(PyThreadState *ts, pystate_saved *s,
                   PyObject *callable, PyObject *context);

/* Last thing a finished tasklet does before it switches away for good:
 * release the references it holds in the thread state (this may run Python
 * code) -- first all but the trace and profile functions, then those (so
 * that the schedule callback at its end still sees them, as in Stackless)
 * -- and free its data stack.  Afterwards the thread state must not be
 * used until another tasklet's state is restored. */
void pystate_finish_release_keep_trace(PyThreadState *ts);
void pystate_release_trace(PyThreadState *ts);
void pystate_finish_free(PyThreadState *ts, pystate_saved *s);

/* Drop the state of a suspended tasklet that will never run again
 * (its frames are abandoned, not finalized). */
void pystate_discard(pystate_saved *s);

/* The top Python frame of a suspended tasklet (new reference), or None. */
PyObject *pystate_frame(PyThreadState *ts, pystate_saved *s);
/* Same for the running tasklet of ts. */
PyObject *pystate_current_frame(PyThreadState *ts);

/* Entry frames below the top minus one (0 for plain Python code);
 * s == NULL means the running tasklet of ts. */
int pystate_nesting_level(PyThreadState *ts, pystate_saved *s);
/* The C-level nesting Stackless would report: like pystate_nesting_level,
 * but not counting Python code entered from a call instruction or a
 * generator resumption (Stackless made those calls without C recursion). */
int pystate_stackless_nesting(PyThreadState *ts, pystate_saved *s);
int pystate_recursion_depth(PyThreadState *ts, pystate_saved *s);

/* Is the cyclic garbage collector running (finalizers called by it)? */
int pystate_gc_collecting(void);

/* GC support for a suspended tasklet: visit the references its state and
 * its thread-owned frames hold. */
int pystate_traverse(pystate_saved *s, visitproc visit, void *arg);

/* The running tasklet's context (borrowed, may be NULL) and replacing it. */
PyObject *pystate_get_context(PyThreadState *ts);
void pystate_set_context(PyThreadState *ts, PyObject *ctx);

/* Make the running tasklet's top frame emit an event per instruction (so a
 * trace hook runs at the very next one); returns that frame (new
 * reference) for pystate_trace_opcodes_off(), or NULL. */
PyObject *pystate_trace_opcodes_on(PyThreadState *ts);
void pystate_trace_opcodes_off(PyObject *frame);

/* sys.settrace()/setprofile() per tasklet: find the C trampolines CPython
 * uses for Python-level trace functions (once, at import). */
int pystate_init_trampolines(void);
/* The Python-level trace (profile=0) or profile (1) function of the running
 * tasklet (s == NULL) or of a suspended one, or None (new reference). */
PyObject *pystate_get_trace(PyThreadState *ts, pystate_saved *s, int profile);
/* Set it; s == NULL: the running tasklet (calling thread only).  fn may be
 * None.  Returns 0 or -1. */
int pystate_set_trace(PyThreadState *ts, pystate_saved *s, int profile,
                      PyObject *fn);

/* Trace/profile functions of a suspended tasklet (for the tasklet's
 * trace_function/profile_function attributes). */
#endif /* SLP_PYSTATE_H */
