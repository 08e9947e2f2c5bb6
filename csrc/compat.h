/* Public-API differences between the CPython versions we support (3.11,
 * 3.12, 3.13), and the layout of the one CPython object we mirror.  Part of
 * the version layer with pystate.c: no other file tests PY_VERSION_HEX or
 * names a private CPython function (tests/test_version_layer.py).
 */
#ifndef SLP_COMPAT_H
#define SLP_COMPAT_H

#include <Python.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#  error "stackless_compat supports CPython 3.11, 3.12 and 3.13 only"
#endif

#if PY_VERSION_HEX >= 0x030D0000
/* 3.13 made these public under new names (the old ones are deprecated
 * or gone). */
#  define slp_is_finalizing()          Py_IsFinalizing()
#  define slp_long_as_int(o)           PyLong_AsInt(o)
#  define slp_unicode_eq_ascii(u, s)   PyUnicode_EqualToUTF8((u), (s))
#  define slp_write_unraisable_msg(msg, obj) \
    PyErr_FormatUnraisable("Exception ignored %s: %R", (msg), (obj))
#else
#  define slp_is_finalizing()          _Py_IsFinalizing()
#  define slp_long_as_int(o)           _PyLong_AsInt(o)
#  define slp_unicode_eq_ascii(u, s)   _PyUnicode_EqualToASCIIString((u), (s))
#  define slp_write_unraisable_msg(msg, obj) \
    _PyErr_WriteUnraisableMsg((msg), (obj))
#endif

/* SLP_LOCK_TYPE_NEW: 3.13's _thread.lock has a constructor (threading.Lock
 * is the type, _thread.lock() makes a lock); before, the type cannot be
 * instantiated and only allocate_lock() makes one.  hub/lock.c gives the
 * cooperative lock type a constructor exactly where the stdlib's has one. */
#if PY_VERSION_HEX >= 0x030D0000
#  define SLP_LOCK_TYPE_NEW 1
#else
#  define SLP_LOCK_TYPE_NEW 0
#endif

/* The head of _socket.socket's instance (PySocketSockObject in CPython's
 * Modules/socketmodule.h), for hub/sock.c's fast paths.  hub/sock.c checks
 * sizeof against the type's __basicsize__ at import. */
typedef struct {
    PyObject_HEAD
    int sock_fd;
    int sock_family;
    int sock_type;
    int sock_proto;
    PyObject *(*errorhandler)(void);
    int64_t sock_timeout;         /* nanoseconds; -1 blocking */
#if PY_VERSION_HEX >= 0x030C0000
    void *state;                  /* 3.12+: the _socket module state */
#endif
} slp_sockobj;

#endif /* SLP_COMPAT_H */
