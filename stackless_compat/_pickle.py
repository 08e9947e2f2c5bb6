"""Pickling of tasklets suspended in Python code, and what goes with them.

A suspended tasklet pickles as its frame chain (outermost first).  Each frame
is recorded as ::

    ("pyframe", layout, code_ref, globals_ref, f_locals, localsplus, stack,
     resume, push)

* ``layout``: the interpreter's frame-format tag and bytecode magic number;
  a pickle made by another interpreter version does not load.
* ``code_ref``: ``(module, qualname, firstlineno, digest)``.  Code objects
  are found by name in the loading program (same code is the compatibility
  promise; the digest of the bytecode and names is checked), never built
  from the pickle.
* ``globals_ref``: the name of the module whose namespace the frame runs in.
* ``localsplus``: the fast locals, cells and free variables (``NULL`` stands
  for an unbound one); ``stack``: the value stack below the operation the
  frame is suspended in; ``resume``: the index (in code units) of the
  instruction to run next; ``push``: whether the operation's result is
  pushed first.

On load every frame is checked against its code: ``resume`` must be the
instruction after a call (or, with ``push`` false, an instruction the
tasklet was interrupted at), the stack's depth must be the one the code has
there, and each entry must be of the kind the code's instructions expect
there (lists for ``LIST_APPEND``, iterators for ``FOR_ITER``, exceptions in
exception handlers, ...).  A state that does not fit raises
``pickle.UnpicklingError``; the interpreter never runs a frame the code
could not have produced.

The stack analysis below reads the bytecode through ``dis``/``opcode``; the
frame layout itself is known only to the C module (csrc/pyframe.c).
"""

import copy
import copyreg
import dis
import gc
import hashlib
import importlib
import importlib.util
import opcode
import pickle
import sys
import types
import weakref

from . import _stackless

__all__ = ["NULL", "reduce_suspended", "restore_suspended"]

_FRAME_TAG = "pyframe"
_LAYOUT = (tuple(_stackless._frame_layout), importlib.util.MAGIC_NUMBER)
# Suspended tasklets (the frame-resumption trampoline, csrc/pyframe.c),
# generators, coroutines, frame objects and tracebacks pickle on every
# supported version.
_SUPPORTED = sys.version_info[:2] in ((3, 11), (3, 12), (3, 13))
# 3.12 puts the NULL of a method call below the callable, 3.13 above it.
_NULL_ABOVE = sys.version_info >= (3, 13)
_NULL_PAIR = ["A", "N"] if _NULL_ABOVE else ["N", "A"]


class _Null:
    """Stands for an empty slot of a frame (an unbound local, the NULL a
    method call leaves below its callable)."""
    __slots__ = ()

    def __repr__(self):
        return "NULL"

    def __reduce__(self):
        return "NULL"


NULL = _Null()
_Null.__module__ = __name__

# --------------------------------------------------------------------------
# Bytecode analysis: the depth of the value stack at each instruction and
# the kind of value each entry must be.

_OP = opcode.opmap
_CACHES = getattr(opcode, "_inline_cache_entries", [0] * 256)
if isinstance(_CACHES, dict):           # 3.13: by name
    _CACHES = [_CACHES.get(opcode.opname[op], 0) for op in range(256)]
_HASJREL = set(opcode.hasjrel)
_BACKWARD = {op for name, op in _OP.items() if "BACKWARD" in name}
_EXTENDED_ARG = _OP.get("EXTENDED_ARG")
_END_FOR = "END_FOR" in _OP

# kinds: "N" anything or NULL, "A" any object, "L" list, "S" set, "D" dict,
# "I" iterator, "W" awaitable iterator (generator, coroutine or iterator),
# "E" exception, "e" exception or None, "T" an instruction index (lasti)
_STRICT = set("LSDIWEeT")


def _decode(code):
    """[(start, op, arg, next)] of code.co_code (the unspecialized
    bytecode), in code units; EXTENDED_ARG folds into the instruction."""
    raw = code.co_code
    out = []
    i, n, ext, start = 0, len(raw) // 2, 0, None
    while i < n:
        op, arg = raw[2 * i], raw[2 * i + 1] | ext
        if start is None:
            start = i
        if op == _EXTENDED_ARG:
            ext = arg << 8
            i += 1
            continue
        ext = 0
        nxt = i + 1 + _CACHES[op]
        out.append((i, op, arg, nxt, start))
        i = nxt
        start = None
    return out


def _target(op, arg, nxt):
    if op in _BACKWARD:
        return nxt - arg
    return nxt + arg


def _merge(a, b):
    if a == b:
        return a
    if a in "AN" and b in "AN":
        return "N"
    if a in "AN":
        return b
    if b in "AN":
        return a
    return "A"


_N = lambda k: None     # noqa: E731


def _effect(op, arg, code_len, jump):
    """(pops, pushes, requirements) of one instruction: requirements are
    (depth below the top before the instruction, kind) pairs."""
    name = opcode.opname[op]
    A = "A"
    if name in ("NOP", "RESUME", "CACHE", "KW_NAMES", "PRECALL",
                "JUMP_FORWARD", "JUMP_BACKWARD", "JUMP_BACKWARD_NO_INTERRUPT",
                "COPY_FREE_VARS", "MAKE_CELL", "SETUP_ANNOTATIONS",
                "DELETE_FAST", "DELETE_DEREF", "DELETE_NAME",
                "DELETE_GLOBAL"):
        return 0, [], ()
    if name in ("POP_TOP", "STORE_NAME", "STORE_GLOBAL", "STORE_FAST",
                "STORE_DEREF", "DELETE_ATTR", "PRINT_EXPR", "IMPORT_STAR",
                "RETURN_VALUE") or name.startswith("POP_JUMP"):
        return 1, [], ()
    if name == "PUSH_NULL":
        return 0, ["N"], ()
    if name in ("LOAD_CONST", "LOAD_NAME", "LOAD_FAST", "LOAD_DEREF",
                "LOAD_CLOSURE", "LOAD_CLASSDEREF", "LOAD_BUILD_CLASS",
                "LOAD_ASSERTION_ERROR", "IMPORT_FROM", "GET_LEN",
                "MATCH_MAPPING", "MATCH_SEQUENCE", "MATCH_KEYS",
                "WITH_EXCEPT_START"):
        req = ((0, "E"),) if name == "WITH_EXCEPT_START" else ()
        return 0, [A], req
    if name == "LOAD_GLOBAL":
        return 0, (_NULL_PAIR if arg & 1 else [A]), ()
    if name == "LOAD_ATTR" and sys.version_info >= (3, 12):
        return 1, (_NULL_PAIR if arg & 1 else [A]), ()
    if name == "LOAD_SUPER_ATTR":
        return 3, (_NULL_PAIR if arg & 1 else [A]), ()
    if name == "LOAD_FAST_AND_CLEAR":
        return 0, ["N"], ()
    if name == "LOAD_METHOD":
        return 1, ["N", A], ()
    if name in ("UNARY_POSITIVE", "UNARY_NEGATIVE", "UNARY_NOT",
                "UNARY_INVERT", "LOAD_ATTR", "GET_AITER", "YIELD_VALUE",
                "ASYNC_GEN_WRAP", "LIST_TO_TUPLE", "FORMAT_VALUE"):
        if name == "FORMAT_VALUE" and arg & 4:
            return 2, [A], ()
        return 1, [A], ()
    if name in ("BINARY_OP", "BINARY_SUBSCR", "COMPARE_OP", "IS_OP",
                "CONTAINS_OP", "IMPORT_NAME", "CHECK_EXC_MATCH"):
        return 2, [A] * (2 if name == "CHECK_EXC_MATCH" else 1), ()
    if name == "CHECK_EG_MATCH":
        return 2, [A, A], ()
    if name == "STORE_ATTR" or name == "DELETE_SUBSCR":
        return 2, [], ()
    if name == "STORE_SUBSCR":
        return 3, [], ()
    if name == "MATCH_CLASS":
        return 3, [A], ()
    if name == "PUSH_EXC_INFO":
        return 1, ["e", "E"], ((0, "E"),)
    if name == "POP_EXCEPT":
        return 1, [], ((0, "e"),)
    if name == "RERAISE":
        req = ((0, "E"),) + (((arg, "T"),) if arg else ())
        return 1, [], req
    if name == "PREP_RERAISE_STAR":
        return 2, [A], ((0, "L"),)
    if name == "END_ASYNC_FOR":
        return 2, [], ((0, "E"),)
    if name == "GET_ITER":
        return 1, ["I"], ()
    if name in ("GET_YIELD_FROM_ITER", "GET_AWAITABLE"):
        return 1, ["W"], ()
    if name == "GET_ANEXT":
        return 0, ["W"], ()
    if name == "BEFORE_WITH":
        return 1, [A, A], ()
    if name == "BEFORE_ASYNC_WITH":
        return 1, [A, "W"], ()
    if name == "FOR_ITER":
        # 3.12+: the loop's exit is an END_FOR that pops the iterator
        return (1, [], ((0, "I"),)) if jump and not _END_FOR \
            else (0, [A], ((0, "I"),))
    if name == "SEND":
        # 3.12+: the receiver stays for END_SEND
        return (2, [A], ((1, "W"),)) if jump and not _END_FOR \
            else (1, [A], ((1, "W"),))
    if name in ("JUMP_IF_TRUE_OR_POP", "JUMP_IF_FALSE_OR_POP"):
        return (0, [], ()) if jump else (1, [], ())
    if name == "UNPACK_SEQUENCE":
        return 1, [A] * arg, ()
    if name == "UNPACK_EX":
        return 1, [A] * ((arg & 0xFF) + (arg >> 8) + 1), ()
    if name == "BUILD_TUPLE" or name == "BUILD_STRING" or \
            name == "BUILD_SLICE":
        return arg, [A], ()
    if name == "BUILD_LIST":
        return arg, ["L"], ()
    if name == "BUILD_SET":
        return arg, ["S"], ()
    if name == "BUILD_MAP":
        return 2 * arg, ["D"], ()
    if name == "BUILD_CONST_KEY_MAP":
        return arg + 1, ["D"], ()
    if name in ("LIST_APPEND", "LIST_EXTEND"):
        return 1, [], ((arg, "L"),)
    if name in ("SET_ADD", "SET_UPDATE"):
        return 1, [], ((arg, "S"),)
    if name in ("MAP_ADD",):
        return 2, [], ((arg + 1, "D"),)
    if name in ("DICT_UPDATE", "DICT_MERGE"):
        return 1, [], ((arg, "D"),)
    if name == "CALL":
        return arg + 2, [A], ()
    if name == "CALL_KW":
        return arg + 3, [A], ()
    if name == "CALL_FUNCTION_EX":
        return 3 + (arg & 1), [A], ()
    if name == "MAKE_FUNCTION":
        return 1 + bin(arg & 0xF).count("1"), [A], ()
    if name == "RAISE_VARARGS":
        return arg, [], ()
    if name == "RETURN_GENERATOR":
        return 0, [A], ()
    if name in ("COPY", "SWAP"):
        return None             # handled by the caller
    # Not known: the net effect, with no kind information.
    try:
        eff = dis.stack_effect(op, arg, jump=jump)
    except ValueError:
        eff = dis.stack_effect(op, jump=jump)
    return (0, [A] * eff, ()) if eff >= 0 else (-eff, [], ())


# operations a frame can be suspended in, with the number of entries they
# take from the stack; their result is pushed when the frame continues
def _call_pops(name, arg):
    if name in ("CALL", "PRECALL"):
        return arg + 2
    if name == "CALL_KW":
        return arg + 3
    if name == "CALL_FUNCTION_EX":
        return 3 + (arg & 1)
    if name == "BINARY_SUBSCR":
        return 2
    if name == "FOR_ITER":
        return 0
    if name == "BEFORE_WITH":
        # __enter__ runs with the bound __exit__ in place (3.11); 3.12+
        # store __exit__ after the call, over the manager they released
        return None if _END_FOR else 0
    if name == "WITH_EXCEPT_START":
        return 0
    return None


_NO_FALLTHROUGH = {"RETURN_VALUE", "RETURN_CONST", "RAISE_VARARGS",
                   "RERAISE", "JUMP_FORWARD", "JUMP_BACKWARD",
                   "JUMP_BACKWARD_NO_INTERRUPT"}


class _Analysis:
    __slots__ = ("instrs", "by_start", "by_unit", "states", "positions",
                 "nlocalsplus", "handlers", "__weakref__")

    def __init__(self, code):
        self.positions = {}
        self.nlocalsplus = len(set(code.co_varnames + code.co_cellvars)) + \
            len(code.co_freevars)
        instrs = _decode(code)
        self.instrs = instrs
        # an instruction is entered at its first EXTENDED_ARG, if any
        self.by_start = {i[0]: i for i in instrs}
        self.by_start.update((i[4], i) for i in instrs)
        n = len(code.co_code) // 2
        by_unit = [None] * n
        for ins in instrs:
            for u in range(ins[4], ins[3]):
                if u < n:
                    by_unit[u] = ins
        self.by_unit = by_unit
        handlers = []
        for e in dis._parse_exception_table(code):
            handlers.append((e.start // 2, e.end // 2, e.target // 2,
                             e.depth, e.lasti))
        self.handlers = handlers
        states = {}
        work = [(0, ())]
        limit = code.co_stacksize
        by_start = self.by_start
        while work:
            start, kinds = work.pop()
            ins = by_start.get(start)
            if ins is None:
                raise ValueError("jump into the middle of an instruction")
            start = ins[0]
            old = states.get(start)
            if old is not None:
                if len(old) != len(kinds):
                    raise ValueError("inconsistent stack depth")
                merged = tuple(_merge(a, b) for a, b in zip(old, kinds))
                if merged == old:
                    continue
                kinds = merged
            states[start] = kinds
            _, op, arg, nxt, _ = ins
            name = opcode.opname[op]
            for (hs, he, ht, hd, hl) in handlers:
                if hs <= start < he:
                    hk = kinds[:hd] + (("T",) if hl else ()) + ("E",)
                    work.append((ht, hk))
            jumps = op in _HASJREL
            outs = []
            if jumps:
                outs.append((_target(op, arg, nxt), True))
            if name not in _NO_FALLTHROUGH:
                outs.append((nxt, False))
            for dest, jump in outs:
                if name == "COPY":
                    k = kinds + (kinds[-arg],)
                elif name == "SWAP":
                    lk = list(kinds)
                    lk[-1], lk[-arg] = lk[-arg], lk[-1]
                    k = tuple(lk)
                else:
                    pops, pushes, _ = _effect(op, arg, n, jump)
                    if pops > len(kinds):
                        raise ValueError("stack underflow")
                    k = kinds[:len(kinds) - pops] + tuple(pushes)
                if len(k) > limit:
                    raise ValueError("stack overflow")
                work.append((dest, k))
        # positions are also reachable at their EXTENDED_ARG prefix
        for ins in instrs:
            if ins[4] != ins[0] and ins[0] in states:
                states[ins[4]] = states[ins[0]]
        self.states = states

    def containing(self, unit):
        if 0 <= unit < len(self.by_unit):
            return self.by_unit[unit]
        return None


# 3.12+ read a local the compiler proved bound with LOAD_FAST, which does
# not check for NULL: a restored frame must not reach such a read of a
# variable it holds unbound.  (slots read, slots stored, slots emptied) of
# the instructions that touch fast locals:
_FAST = {
    "LOAD_FAST": lambda a: ((a,), (), ()),
    "LOAD_FAST_LOAD_FAST": lambda a: ((a >> 4, a & 15), (), ()),
    "STORE_FAST_LOAD_FAST": None,       # stores, then reads
    "STORE_FAST": lambda a: ((), (a,), ()),
    "STORE_FAST_STORE_FAST": lambda a: ((), (a >> 4, a & 15), ()),
    "DELETE_FAST": lambda a: ((), (), (a,)),
    "LOAD_FAST_AND_CLEAR": lambda a: ((), (), (a,)),
} if "LOAD_FAST_CHECK" in _OP else None


def _reads_unbound(a, start, unbound):
    """Can the code, continued at instruction start with the local slots
    in unbound empty, reach an unchecked read of an empty slot?"""
    if _FAST is None or not unbound:
        return False
    key = ("unbound", start, unbound)
    r = a.positions.get(key)
    if r is not None:
        return r
    seen = {}
    work = [(start, unbound)]
    r = False
    while work and not r:
        pos, u = work.pop()
        ins = a.by_start.get(pos)
        if ins is None:
            continue
        pos = ins[0]
        old = seen.get(pos)
        if old is not None:
            if u <= old:
                continue
            u = u | old
        seen[pos] = u
        _, op, arg, nxt, _ = ins
        name = opcode.opname[op]
        after = u
        fast = _FAST.get(name, _N)
        if fast is None:
            u = u - {arg >> 4}
            fast = _FAST["LOAD_FAST"]
            arg &= 15
        if fast is not _N:
            reads, stores, clears = fast(arg)
            if any(i in u for i in reads):
                r = True
                break
            after = (u - frozenset(stores)) | frozenset(clears)
        for (hs, he, ht, hd, hl) in a.handlers:
            if hs <= pos < he:
                work.append((ht, u | after))
        if op in _HASJREL:
            work.append((_target(op, arg, nxt), after))
        if name not in _NO_FALLTHROUGH:
            work.append((nxt, after))
    if len(a.positions) < 4096:
        a.positions[key] = r
    return r


def _empty_slots(lp):
    return frozenset(i for i, v in enumerate(lp) if v is NULL)


# Caches keyed by code objects (plain dicts: a WeakKeyDictionary lookup
# costs more than the work it saves; bounded instead).
_CACHE_MAX = 20000
_analyses = {}


def _analysis(code):
    a = _analyses.get(code)
    if a is None:
        if len(_analyses) >= _CACHE_MAX:
            _analyses.clear()
        a = _analyses[code] = _Analysis(code)
    return a


# --------------------------------------------------------------------------
# Code objects by reference

_digests = {}


def _digest(code):
    d = _digests.get(code)
    if d is None:
        if len(_digests) >= _CACHE_MAX:
            _digests.clear()
        d = _digests[code] = _compute_digest(code)
    return d


def _compute_digest(code):
    h = hashlib.sha1(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars,
                   code.co_cellvars, code.co_argcount,
                   code.co_kwonlyargcount)).encode())
    return h.hexdigest()[:16]


_code_index = {}


def _walk_codes(obj, out, seen, depth=0):
    if depth > 6 or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, types.CodeType):
        out.setdefault((obj.co_qualname, obj.co_firstlineno), []).append(obj)
        for c in obj.co_consts:
            if isinstance(c, types.CodeType):
                _walk_codes(c, out, seen, depth + 1)
        return
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    if isinstance(obj, property):
        for f in (obj.fget, obj.fset, obj.fdel):
            if f is not None:
                _walk_codes(f, out, seen, depth + 1)
        return
    if isinstance(obj, types.MethodType):
        obj = obj.__func__
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        _walk_codes(code, out, seen, depth + 1)
        return
    if isinstance(obj, type):
        for v in list(vars(obj).values()):
            _walk_codes(v, out, seen, depth + 1)


def _index_module(name):
    mod = sys.modules.get(name)
    out = {}
    if mod is None:
        return out
    seen = set()
    code = getattr(getattr(mod, "__loader__", None), "get_code", None)
    for v in list(vars(mod).values()):
        if isinstance(v, types.ModuleType):
            continue
        mv = getattr(v, "__module__", name)
        if mv != name and not isinstance(v, types.CodeType):
            continue
        _walk_codes(v, out, seen)
    _code_index[name] = out
    return out


_found = {}      # code reference -> code, for the references that resolved
_refs = {}       # code -> its reference, once checked


def _find_code(modname, qualname, firstlineno, digest):
    key = (modname, qualname, firstlineno, digest)
    c = _found.get(key)
    if c is not None:
        return c
    c = _search_code(modname, qualname, firstlineno, digest)
    if c is not None:
        if len(_found) >= _CACHE_MAX:
            _found.clear()
        _found[key] = c
    return c


def _search_code(modname, qualname, firstlineno, digest):
    for attempt in (0, 1):
        idx = _code_index.get(modname) if attempt == 0 else None
        if idx is None:
            idx = _index_module(modname)
        for c in idx.get((qualname, firstlineno), ()):
            if _digest(c) == digest:
                return c
    return None


_glob_names = {}     # id(globals) -> (globals, module name)


def _module_of_globals(g):
    hit = _glob_names.get(id(g))
    if hit is not None and hit[0] is g:
        return hit[1]
    name = g.get("__name__") if isinstance(g, dict) else None
    mod = sys.modules.get(name) if isinstance(name, str) else None
    if mod is not None and getattr(mod, "__dict__", None) is g:
        if len(_glob_names) >= _CACHE_MAX:
            _glob_names.clear()
        _glob_names[id(g)] = (g, name)
        return name
    return None


# --------------------------------------------------------------------------
# Pickling a suspended tasklet

def _where(code, unit):
    line = None
    if unit is not None and unit >= 0:
        for start, end, ln in code.co_lines():
            if start <= unit * 2 < end:
                line = ln
                break
    return "frame %s (%s, line %s)" % (code.co_qualname, code.co_filename,
                                       line if line is not None
                                       else code.co_firstlineno)


def _fail(code, unit, why):
    raise pickle.PicklingError("cannot pickle the tasklet: %s %s"
                               % (_where(code, unit), why))


def _in_call(code, a, lasti):
    """(instruction, name, prefix depth) of the call a frame is suspended
    in (lasti in a call instruction), or None."""
    ins = a.containing(lasti)
    if ins is None:
        return None
    start, op, arg, nxt, _ = ins
    name = opcode.opname[op]
    pops = _call_pops(name, arg)
    if pops is None or start not in a.states:
        return None
    if name == "PRECALL":
        call = a.by_start.get(nxt)
        if call is None or opcode.opname[call[1]] != "CALL":
            return None
        nxt = call[3]
    return ins, name, len(a.states[start]) - pops, nxt


def _callee_is_called_directly(t, level, caller, callee_func,
                               callee_self=NULL):
    """Is the caller frame (level frames below the top) suspended in a call
    of exactly the function whose frame is above it?  Then the C code in
    between is only the interpreter's call machinery (a call through
    f(*args), a bound method, a call made while tracing), which passes the
    callee's result back unchanged, and both frames can be resumed."""
    code = caller[0]
    try:
        a = _analysis(code)
    except ValueError:
        return False
    call = _in_call(code, a, caller[3])
    if call is None or caller[4] >= 0 or callee_func is None:
        return False
    ins, name, prefix, _ = call
    if name == "BINARY_SUBSCR" or name == "FOR_ITER":
        return False
    if name in ("BEFORE_WITH", "WITH_EXCEPT_START"):
        # __enter__ with __exit__ on top, __exit__ below the exception info
        if prefix < (1 if name == "BEFORE_WITH" else 4):
            return False
        st = _stackless._frame_stack(t, level, prefix, NULL)
        ex = st[prefix - 1] if name == "BEFORE_WITH" else st[prefix - 4]
        if type(ex) is not types.MethodType:
            return False
        if name == "WITH_EXCEPT_START":
            return ex.__func__ is callee_func
        enter = getattr(type(ex.__self__), "__enter__", None)
        return enter is callee_func
    st = _stackless._frame_stack(t, level, prefix + 2, NULL)
    if _NULL_ABOVE:     # 3.13: the callable, then self or NULL
        target = st[prefix]
    else:
        target = st[prefix + 1] if st[prefix] is NULL or \
            name == "CALL_FUNCTION_EX" else st[prefix]
    if target is callee_func:
        return True
    if type(target) is types.MethodType:
        return target.__func__ is callee_func
    # a bound method called by vectorcall lends its slot to its self
    # while the call runs: the slot holds the callee's first argument,
    # whose class has the callee as that method
    if callee_self is not NULL and target is callee_self:
        name = getattr(callee_func, "__name__", None)
        for k in type(target).__mro__:
            m = k.__dict__.get(name) if name else None
            if m is not None:
                return m is callee_func
    return False


def _frame_record(t, rec, top, level=0, values=True):
    (code, glob, loc, lasti, depth, kind, is_entry, lp, st, fobj,
     func) = rec
    if kind == 3:
        _fail(code, lasti, "runs in a generator or coroutine that is "
                           "being iterated by C code; it cannot be resumed")
    if kind == 4:
        _fail(code, lasti, "is a frame object evaluated by C code")
    modname = _module_of_globals(glob)
    if modname is None:
        _fail(code, lasti, "runs in a namespace that is not a module's")
    if loc is not None and loc is not glob:
        _fail(code, lasti, "has a locals mapping of its own (class body or "
                           "exec), which is not supported")
    try:
        a = _analysis(code)
    except ValueError as e:
        _fail(code, lasti, "has bytecode that cannot be analysed (%s)" % e)
    if kind == 1:
        resume, push, stack = lasti + 1, True, st
    elif not top and depth >= 0:
        ins = a.containing(lasti)
        if ins is None:
            _fail(code, lasti, "is not suspended in a call")
        resume, push, stack = ins[3], True, st
    elif depth >= 0:
        # interrupted by a trace function before the instruction at lasti
        resume, push, stack = lasti, False, st
    else:
        # in a call made by the eval loop: of a builtin (the top frame), or
        # of the Python function above it (checked by the caller)
        call = _in_call(code, a, lasti)
        if call is None:
            ins = a.containing(lasti)
            _fail(code, lasti, "is suspended in %s, which cannot be resumed"
                  % (opcode.opname[ins[1]] if ins else "no instruction"))
        ins, name, prefix, nxt = call
        stack = _stackless._frame_stack(t, level, prefix, NULL)
        resume, push = nxt, True
    ref = _refs.get(code)
    if ref is None or ref[0] != modname:
        ref = (modname, code.co_qualname, code.co_firstlineno, _digest(code))
        if _find_code(*ref) is not code:
            _fail(code, lasti, "has code that cannot be found by name in "
                               "module %r (a nested function that was not "
                               "called through its module, or code built at "
                               "run time)" % modname)
        if len(_refs) >= _CACHE_MAX:
            _refs.clear()
        _refs[code] = ref
    lp = tuple(lp)
    _check_state(code, a, lp, tuple(stack), resume, push,
                 pickle.PicklingError)
    if values:
        _check_values(code, lasti, lp, stack)
    return (_FRAME_TAG, _LAYOUT, ref, modname,
            None if loc is None else "globals", lp, tuple(stack), resume,
            push)


# values that pickle whatever they hold (or hold only such values) are not
# tried on their own; others are, so that an unpicklable one is reported
# with its frame and variable
_TRIVIAL = (int, float, complex, str, bytes, bool, type(None), _Null,
            types.FunctionType, types.BuiltinFunctionType, type,
            types.ModuleType, types.CellType)
_TRIVIAL_TYPES = frozenset(_TRIVIAL)
_checking = set()


def _local_names(code):
    names = list(code.co_varnames)
    names += [c for c in code.co_cellvars if c not in code.co_varnames]
    return names + list(code.co_freevars)


def _check_values(code, lasti, lp, stack):
    names = None
    for i, v in enumerate(lp + tuple(stack)):
        if type(v) in _TRIVIAL_TYPES:
            continue
        if isinstance(v, types.CellType):
            try:
                v = v.cell_contents
            except ValueError:
                continue
        tv = type(v)
        if tv in _TRIVIAL_TYPES:
            continue
        if isinstance(v, _TRIVIAL) or isinstance(
                v, (_stackless.tasklet, _stackless.channel)):
            continue
        if (tv is tuple or tv is list) and all(
                type(x) in _TRIVIAL_TYPES for x in v):
            continue
        if id(v) in _checking:
            continue
        _checking.add(id(v))
        try:
            pickle.dumps(v, pickle.HIGHEST_PROTOCOL)
        except Exception as e:
            if names is None:
                names = _local_names(code)
            what = ("variable %r" % names[i] if i < len(names)
                    else "value stack entry %d" % (i - len(lp)))
            _fail(code, lasti, "holds %s, which cannot be pickled: %s: %s"
                  % (what, type(e).__name__, e))
        finally:
            _checking.discard(id(v))


def _handled_exception(t):
    return _stackless._handled_exc(t)


def reduce_suspended(t, values=True):
    """The frames and pending operation of a suspended tasklet t (not the
    current one): (frames, extra) for the tasklet's state."""
    if not _SUPPORTED:
        raise pickle.PicklingError(
            "cannot pickle %r: pickling a tasklet suspended in Python code "
            "is supported on CPython 3.11 only (this is %d.%d)"
            % ((t,) + sys.version_info[:2]))
    if t.blocked == 2:
        raise pickle.PicklingError(
            "cannot pickle %r: it waits in the hub (sleep, I/O, DNS), whose "
            "waits do not pickle" % (t,))
    recs = _stackless._frames_of(t, NULL)
    if not recs and (t._channel is None or not t.blocked):
        raise pickle.PicklingError("cannot pickle %r: it has no Python "
                                   "frame" % (t,))
    n = len(recs)
    for i, rec in enumerate(recs):
        if rec[5] == 0 and rec[6] and i > 0 and not \
                _callee_is_called_directly(t, n - i, recs[i - 1], rec[10],
                                           rec[7][0] if rec[7] else NULL):
            _fail(rec[0], rec[3], "is called from C code (a callback from a "
                                  "builtin or an extension); C frames "
                                  "cannot be pickled")
    frames = [_frame_record(t, rec, i == n - 1, n - 1 - i, values)
              for i, rec in enumerate(recs)]
    extra = {"suspended": True}
    ch = t._channel
    if ch is not None and t.blocked:
        extra["blocked_on"] = (ch, -1 if ch.balance < 0 else 1)
    exc = _handled_exception(t)
    if exc is not None:
        extra["handled"] = exc
    return frames, extra


# --------------------------------------------------------------------------
# Validation and unpickling

def _ok(kind, v):
    if kind == "N":
        return True
    if v is NULL:
        return False
    if kind == "A":
        return True
    if kind == "L":
        return type(v) is list
    if kind == "S":
        return type(v) is set
    if kind == "D":
        return type(v) is dict
    if kind == "I":
        return hasattr(type(v), "__next__")
    if kind == "W":
        return (isinstance(v, (types.GeneratorType, types.CoroutineType))
                or hasattr(type(v), "__next__"))
    if kind == "E":
        return isinstance(v, BaseException)
    if kind == "e":
        return v is None or isinstance(v, BaseException)
    return False


def _position(code, a, resume, push):
    """(depth, strict, nonnull) the value stack must have to continue at
    resume, or a string saying why it cannot; cached per position."""
    key = (resume, push)
    r = a.positions.get(key)
    if r is not None:
        return r
    kinds = a.states.get(resume) if type(resume) is int else None
    if type(resume) is not int or type(push) is not bool:
        r = "malformed position"
    elif kinds is None:
        r = ("position %d is not an instruction boundary that the code can "
             "reach" % (resume * 2))
    else:
        ok = True
        if push:
            ins = a.containing(resume - 1)
            prev = ins and opcode.opname[ins[1]]
            if ins is None or ins[3] != resume or \
                    _call_pops(prev, ins[2]) is None:
                r = "position %d does not follow a call" % (resume * 2)
                ok = False
            depth = len(kinds) - 1
        else:
            depth = len(kinds)
        if ok:
            strict = tuple((i, k) for i, k in enumerate(kinds[:depth])
                           if k != "A" and k != "N")
            nonnull = tuple(i for i, k in enumerate(kinds[:depth])
                            if k == "A")
            r = (depth, strict, nonnull)
    if len(a.positions) < 4096:
        a.positions[key] = r
    return r


def _check_state(code, a, lp, stack, resume, push, error):
    def bad(why):
        raise error("%s: %s" % (_where(code, resume if type(resume) is int
                                       else None), why))
    if len(lp) != a.nlocalsplus:
        bad("wrong number of local variables")
    r = _position(code, a, resume, push)
    if type(r) is str:
        bad(r)
    depth, strict, nonnull = r
    if len(stack) != depth:
        bad("value stack of %d entries, the code has %d there"
            % (len(stack), depth))
    for i in nonnull:
        if stack[i] is NULL:
            bad("stack entry %d does not match the code ('A')" % i)
    for i, k in strict:
        v = stack[i]
        if k == "T":
            if type(v) is not int or a.containing(v) is None or \
                    a.containing(v)[0] != v:
                bad("stack entry %d is not an instruction index" % i)
        elif not _ok(k, v):
            bad("stack entry %d does not match the code (%r)" % (i, k))
    if _reads_unbound(a, resume, _empty_slots(lp)):
        bad("an unbound variable would be read unchecked")


_loaded = {}     # (code reference, module name) -> (code, analysis, module)


def _load_frame(rec):
    if type(rec) is not tuple or len(rec) != 9 or rec[0] != _FRAME_TAG:
        raise pickle.UnpicklingError("not a frame record")
    _, layout, ref, modname, loc, lp, stack, resume, push = rec
    try:
        hit = _loaded.get((ref, modname))
    except TypeError:
        hit = None
    if hit is not None and layout == _LAYOUT and \
            sys.modules.get(modname) is hit[2]:
        code, a, mod = hit
        if type(lp) is not tuple or type(stack) is not tuple or \
                loc not in (None, "globals"):
            raise pickle.UnpicklingError("malformed frame")
        _check_state(code, a, lp, stack, resume, push,
                     pickle.UnpicklingError)
        g = mod.__dict__
        return (code, g, g if loc == "globals" else None, lp, stack, resume,
                push)
    return _load_frame_slow(rec)


def _load_frame_slow(rec):
    _, layout, ref, modname, loc, lp, stack, resume, push = rec
    if layout != _LAYOUT:
        raise pickle.UnpicklingError(
            "the frames were pickled by another interpreter version "
            "(format %r, this is %r)" % (layout, _LAYOUT))
    if not (isinstance(ref, tuple) and len(ref) == 4 and
            all(isinstance(x, str) for x in (ref[0], ref[1], ref[3])) and
            type(ref[2]) is int and isinstance(modname, str)):
        raise pickle.UnpicklingError("malformed code reference")
    if not isinstance(lp, tuple) or not isinstance(stack, tuple):
        raise pickle.UnpicklingError("malformed frame variables")
    if loc not in (None, "globals"):
        raise pickle.UnpicklingError("malformed frame locals")
    if ref[0] not in sys.modules:
        try:
            importlib.import_module(ref[0])
        except Exception as e:
            raise pickle.UnpicklingError(
                "cannot import module %r of a pickled frame: %s"
                % (ref[0], e)) from None
    code = _find_code(*ref)
    if code is None:
        raise pickle.UnpicklingError(
            "the code of frame %s (module %r, line %d) is not in this "
            "program (the code changed since it was pickled)"
            % (ref[1], ref[0], ref[2]))
    mod = sys.modules.get(modname)
    if mod is None:
        raise pickle.UnpicklingError("module %r is not loaded" % modname)
    try:
        a = _analysis(code)
    except ValueError as e:
        raise pickle.UnpicklingError("bytecode analysis failed: %s" % e)
    _check_state(code, a, lp, stack, resume, push, pickle.UnpicklingError)
    if len(_loaded) >= _CACHE_MAX:
        _loaded.clear()
    _loaded[(ref, modname)] = (code, a, mod)
    g = mod.__dict__
    return (code, g, g if loc == "globals" else None, lp, stack, resume,
            push)


def restore_suspended(t, frames, extra, tempval):
    """Bind the unpickled tasklet t to a resumer of its frames."""
    if not _SUPPORTED:
        raise pickle.UnpicklingError(
            "cannot restore a tasklet suspended in Python code: supported "
            "on CPython 3.11 only (this is %d.%d)" % sys.version_info[:2])
    specs = []
    for rec in frames:
        specs.append(_load_frame(rec))
    blocked = extra.get("blocked_on")
    pending = None
    if blocked is not None:
        if not (isinstance(blocked, tuple) and len(blocked) == 2 and
                isinstance(blocked[0], _stackless.channel) and
                blocked[1] in (1, -1)):
            raise pickle.UnpicklingError("malformed channel operation")
        ch, d = blocked
        pending = (ch.receive, ()) if d < 0 else (ch.send, (tempval,))
        if specs and not specs[-1][6]:
            raise pickle.UnpicklingError("a blocked frame must take a "
                                         "result")
    exc = extra.get("handled")
    if exc is not None and not isinstance(exc, BaseException):
        raise pickle.UnpicklingError("the handled exception is not an "
                                     "exception")
    try:
        r = _stackless._resumer(specs, pending, exc, NULL)
    except (ValueError, TypeError) as e:
        raise pickle.UnpicklingError(str(e)) from None
    t.bind(r, ())
    _unrun[t] = (list(frames), {k: v for k, v in extra.items()
                                if k != "__dict__"})
    return blocked


_unrun = weakref.WeakKeyDictionary()


def unrun_state(t):
    """(frames, extra) of an unpickled tasklet that has not run yet."""
    try:
        frames, extra = _unrun[t]
    except KeyError:
        raise pickle.PicklingError("cannot pickle %r: its frames are lost"
                                   % (t,)) from None
    return list(frames), dict(extra)


# Tasklets restored as blocked on a channel are made to block on it in the
# channel's queue order once both are unpickled.
_waiting = {}          # id(channel) -> [channel, order or None, ready set]


def _block(t, ch):
    t.run()             # the resumer blocks on ch straight away
    if not t.blocked:
        raise pickle.UnpicklingError(
            "%r did not block on %r when restored" % (t, ch))


def _advance(ch):
    w = _waiting.get(id(ch))
    if w is None or w[1] is None:
        return
    order, ready = w[1], w[2]
    while order and id(order[0]) in ready:
        t = order.pop(0)
        ready.pop(id(t))
        _block(t, ch)
    if not order:
        _waiting.pop(id(ch), None)


def tasklet_blocked(t, ch):
    """t's state is restored; it must block on ch."""
    w = _waiting.setdefault(id(ch), [ch, None, {}])
    w[2][id(t)] = t
    _advance(ch)


def channel_tasklets(ch, tasklets):
    """ch's state is restored; these tasklets were blocked on it, in
    order."""
    w = _waiting.get(id(ch), [ch, None, {}])
    for t in tasklets:
        if t.alive and id(t) not in w[2]:
            raise pickle.UnpicklingError(
                "channel state: %r was not restored as blocked on it" % (t,))
    _waiting[id(ch)] = w
    w[1] = [t for t in tasklets if not t.blocked]
    _advance(ch)


# --------------------------------------------------------------------------
# What Stackless pickles along: cells, modules by name, dict views,
# coroutine wrappers

def _new_cell(*contents):
    return types.CellType(*contents)


def _reduce_cell(c):
    try:
        return _new_cell, (c.cell_contents,)
    except ValueError:
        return _new_cell, ()


def _import(name):
    return importlib.import_module(name)


def _reduce_module(m):
    name = m.__name__
    if sys.modules.get(name) is not m:
        raise pickle.PicklingError("cannot pickle module %r: it is not "
                                   "sys.modules[%r]" % (m, name))
    return _import, (name,)


def _keys(d):
    return d.keys()


def _values(d):
    return d.values()


def _items(d):
    return d.items()


def _view_dict(view):
    # The dict a view shows.  view.mapping is a read-only proxy of it, and a
    # proxy does not pickle (nor would one unpickle as the same dict); the
    # view's only reference, as the garbage collector reports it, is the
    # dict itself, so a view pickles with its dict (by memo: the same dict
    # when both are in one pickle).
    refs = gc.get_referents(view)
    if len(refs) != 1 or not isinstance(refs[0], dict):
        raise pickle.PicklingError("cannot pickle %r object: its dict "
                                   "is not found" % type(view).__name__)
    return refs[0]


def _view_reducer(f):
    def reduce(view):
        return f, (_view_dict(view),)
    return reduce


def _await(coro):
    if type(coro) is not types.CoroutineType:
        raise pickle.UnpicklingError("a coroutine_wrapper wraps a coroutine, "
                                     "not %r" % type(coro).__name__)
    return coro.__await__()


def _reduce_coroutine_wrapper(w):
    # coro.__await__() holds the coroutine and nothing else (it is the
    # collector's one reference of it); it pickles as that call
    refs = gc.get_referents(w)
    if len(refs) != 1 or type(refs[0]) is not types.CoroutineType:
        raise pickle.PicklingError("cannot pickle %r: its coroutine is not "
                                   "found" % (w,))
    return _await, (refs[0],)


def _code_ref_checked(code, modname, error):
    ref = _refs.get(code)
    if ref is None or ref[0] != modname:
        ref = (modname, code.co_qualname, code.co_firstlineno, _digest(code))
        if _find_code(*ref) is not code:
            raise error("cannot pickle a frame of %s: its code cannot be "
                        "found by name in module %r" % (code.co_qualname,
                                                        modname))
        _refs[code] = ref
    return ref


def _reduce_frame(f):
    """A frame object pickles as a snapshot: its code (by reference), its
    variables and its position; it unpickles as a frame object that shows
    them (f_locals, f_lineno) and never runs (f_back is not kept)."""
    code, glob, lasti, lp = _stackless._frame_slots(f, NULL)
    modname = _module_of_globals(glob)
    if modname is None:
        raise pickle.PicklingError("cannot pickle %s: its globals are not "
                                   "a module's" % (_where(code, lasti),))
    ref = _code_ref_checked(code, modname, pickle.PicklingError)
    # the variables are the state: they may refer back to the frame
    return (_restore_frame, (_LAYOUT, ref, modname, max(lasti, 0)), lp,
            None, None, _fill_frame)


def _fill_frame(frame, lp):
    if not isinstance(lp, tuple):
        raise pickle.UnpicklingError("malformed frame variables")
    try:
        _stackless._fill_frame(frame, lp, NULL)
    except ValueError as e:
        raise pickle.UnpicklingError("malformed frame: %s" % e) from None


def _restore_frame(layout, ref, modname, lasti):
    if layout != _LAYOUT:
        raise pickle.UnpicklingError(
            "the frame was pickled by another interpreter version")
    if not (isinstance(ref, tuple) and len(ref) == 4 and
            isinstance(modname, str) and type(lasti) is int):
        raise pickle.UnpicklingError("malformed frame")
    if ref[0] not in sys.modules:
        try:
            importlib.import_module(ref[0])
        except Exception as e:
            raise pickle.UnpicklingError("cannot import module %r of a "
                                         "pickled frame: %s" % (ref[0], e))
    code = _find_code(*ref)
    mod = sys.modules.get(modname)
    if code is None or mod is None:
        raise pickle.UnpicklingError("the code of a pickled frame is not "
                                     "in this program")
    try:
        a = _analysis(code)
    except ValueError as e:
        raise pickle.UnpicklingError("bytecode analysis failed: %s" % e)
    ins = a.containing(lasti)
    if ins is None or (ins[0] != lasti and ins[3] - 1 != lasti):
        raise pickle.UnpicklingError("frame position %d is not on an "
                                     "instruction" % (lasti * 2))
    try:
        return _stackless._snapshot_frame(code, mod.__dict__, (), lasti,
                                          NULL)
    except ValueError as e:
        raise pickle.UnpicklingError("malformed frame: %s" % e) from None


def _new_traceback(tb_next, frame, lasti, lineno):
    try:
        return types.TracebackType(tb_next, frame, lasti, lineno)
    except (TypeError, ValueError) as e:
        raise pickle.UnpicklingError("malformed traceback: %s" % e) from None


def _reduce_traceback(tb):
    return _new_traceback, (tb.tb_next, tb.tb_frame, tb.tb_lasti,
                            tb.tb_lineno)


# --------------------------------------------------------------------------
# Generators and coroutines that have not started or are suspended at a
# yield or await pickle as their code (by reference), names and state (the
# variables, the value stack, the position, the exception they handle).

def _gen_position(code, a, state, lasti, stack, error):
    """Check that a generator can continue after the instruction at lasti
    with that value stack; the stack kinds the code has there."""
    key = ("gen", state, lasti)
    r = a.positions.get(key) if type(lasti) is int else None
    if r is None:
        ins = a.containing(lasti) if type(lasti) is int else None
        want = "RETURN_GENERATOR" if state == 0 else "YIELD_VALUE"
        if ins is None or ins[0] != lasti or opcode.opname[ins[1]] != want:
            raise error("%s: position %r is not at a %s"
                        % (_where(code, ins and lasti), lasti, want))
        kinds = a.states.get(ins[3])
        if kinds is None or not kinds:
            raise error("%s: the code cannot continue after position %d"
                        % (_where(code, lasti), lasti * 2))
        depth = len(kinds) - 1
        r = (depth, tuple((i, k) for i, k in enumerate(kinds[:depth])
                          if k != "N"))
        if len(a.positions) < 4096:
            a.positions[key] = r
    depth, checks = r
    if len(stack) != depth:
        raise error("%s: value stack of %d entries, the code has %d there"
                    % (_where(code, lasti), len(stack), depth))
    for i, k in checks:
        v = stack[i]
        if k == "T":
            c = a.containing(v) if type(v) is int else None
            if c is None or c[0] != v:
                raise error("%s: stack entry %d is not an instruction index"
                            % (_where(code, lasti), i))
        elif not _ok(k, v):
            raise error("%s: stack entry %d does not match the code (%r)"
                        % (_where(code, lasti), i, k))


def _check_gen(code, a, st, error):
    if type(st) is not tuple or len(st) != 5:
        raise error("malformed generator state")
    state, lasti, lp, stack, exc = st
    if state not in (0, 1) or type(state) is not int or \
            type(lp) is not tuple or type(stack) is not tuple:
        raise error("malformed generator state")
    if len(lp) != a.nlocalsplus:
        raise error("%s: wrong number of local variables"
                    % _where(code, None))
    if exc is not None and not isinstance(exc, BaseException):
        raise error("the handled exception is not an exception")
    _gen_position(code, a, state, lasti, stack, error)
    if _reads_unbound(a, a.containing(lasti)[3], _empty_slots(lp)):
        raise error("%s: an unbound variable would be read unchecked"
                    % _where(code, lasti))


def _reduce_gen(g):
    try:
        code, glob, state, lasti, lp, stack, exc = _stackless._gen_state(
            g, NULL)
    except ValueError as e:
        raise pickle.PicklingError("cannot pickle %r: %s" % (g, e)) from None
    modname = _module_of_globals(glob)
    if modname is None:
        raise pickle.PicklingError("cannot pickle %r: its globals are not a "
                                   "module's" % (g,))
    ref = _code_ref_checked(code, modname, pickle.PicklingError)
    try:
        a = _analysis(code)
    except ValueError as e:
        raise pickle.PicklingError("cannot pickle %r: bytecode analysis "
                                   "failed: %s" % (g, e)) from None
    st = (state, lasti, lp, stack, exc)
    _check_gen(code, a, st, pickle.PicklingError)
    # the state is set after the generator exists: it may refer back to it
    return (_restore_gen, (_LAYOUT, ref, modname, g.__name__,
                           g.__qualname__), st, None, None, _fill_gen)


def _load_code(layout, ref, modname):
    if layout != _LAYOUT:
        raise pickle.UnpicklingError(
            "pickled by another interpreter version (format %r, this is %r)"
            % (layout, _LAYOUT))
    if not (isinstance(ref, tuple) and len(ref) == 4 and
            all(type(x) is str for x in (ref[0], ref[1], ref[3])) and
            type(ref[2]) is int and type(modname) is str):
        raise pickle.UnpicklingError("malformed code reference")
    if ref[0] not in sys.modules:
        try:
            importlib.import_module(ref[0])
        except Exception as e:
            raise pickle.UnpicklingError("cannot import module %r: %s"
                                         % (ref[0], e)) from None
    code = _find_code(*ref)
    mod = sys.modules.get(modname)
    if code is None or mod is None:
        raise pickle.UnpicklingError(
            "the code of %s (module %r, line %d) is not in this program"
            % (ref[1], ref[0], ref[2]))
    return code, mod


def _restore_gen(layout, ref, modname, name, qualname):
    code, mod = _load_code(layout, ref, modname)
    if type(name) is not str or type(qualname) is not str:
        raise pickle.UnpicklingError("malformed generator name")
    try:
        return _stackless._gen_new(code, mod.__dict__, name, qualname)
    except ValueError as e:
        raise pickle.UnpicklingError("malformed generator: %s" % e) \
            from None


def _fill_gen(g, st):
    if type(g) not in (types.GeneratorType, types.CoroutineType):
        raise pickle.UnpicklingError("malformed generator")
    code = g.gi_code if type(g) is types.GeneratorType else g.cr_code
    try:
        a = _analysis(code)
    except ValueError as e:
        raise pickle.UnpicklingError("bytecode analysis failed: %s" % e) \
            from None
    try:
        _check_gen(code, a, st, pickle.UnpicklingError)
        state, lasti, lp, stack, exc = st
        try:
            _stackless._gen_fill(g, state, lasti, lp, stack, exc, NULL)
        except ValueError as e:
            raise pickle.UnpicklingError("malformed generator: %s" % e) \
                from None
    except pickle.UnpicklingError:
        if not g.gi_suspended if type(g) is types.GeneratorType \
                else not g.cr_suspended:
            g.close()       # (a coroutine that never ran would warn)
        raise


def _copy_gen(g):
    # a new generator at the same point whose variables are the same
    # objects (copy.copy() does not take a state setter either)
    rv = _reduce_gen(g)
    y = rv[0](*rv[1])
    _fill_gen(y, rv[2])
    return y


def _deepcopy_gen(g, memo):
    # copy.deepcopy() does not take a reduce value's state setter
    rv = _reduce_gen(g)
    y = rv[0](*rv[1])
    memo[id(g)] = y
    _fill_gen(y, copy.deepcopy(rv[2], memo))
    return y


async def _a_coroutine():
    pass


def _coroutine_wrapper_type():
    c = _a_coroutine()
    try:
        return type(c.__await__())
    finally:
        c.close()


_COROUTINE_WRAPPER = _coroutine_wrapper_type()


def _register():
    copyreg.pickle(types.CellType, _reduce_cell)
    copyreg.pickle(types.FrameType, _reduce_frame)
    copyreg.pickle(types.TracebackType, _reduce_traceback)
    for tp in (types.GeneratorType, types.CoroutineType):
        copyreg.pickle(tp, _reduce_gen)
        copy._deepcopy_dispatch[tp] = _deepcopy_gen
        copy._copy_dispatch[tp] = _copy_gen
    copyreg.pickle(types.ModuleType, _reduce_module)
    copyreg.pickle(type({}.keys()), _view_reducer(_keys))
    copyreg.pickle(type({}.values()), _view_reducer(_values))
    copyreg.pickle(type({}.items()), _view_reducer(_items))
    copyreg.pickle(_COROUTINE_WRAPPER, _reduce_coroutine_wrapper)


_register()
