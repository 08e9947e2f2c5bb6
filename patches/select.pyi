# Type stubs of stackless_compat.patches.select: select() and poll() that
# park the calling tasklet, with the stdlib's signatures.
import select as _stdselect
from collections.abc import Iterable
from typing import Any

__implements__: list[str]
__target__: str

POLLIN: int
POLLOUT: int
POLLPRI: int

def select(rlist: Iterable[Any], wlist: Iterable[Any], xlist: Iterable[Any],
           timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]: ...

class poll:
    def __init__(self) -> None: ...
    def register(self, fd: Any, eventmask: int = ...) -> None: ...
    def modify(self, fd: Any, eventmask: int) -> None: ...
    def unregister(self, fd: Any) -> None: ...
    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]: ...
