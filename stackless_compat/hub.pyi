# Type stubs of stackless_compat.hub: sleep, fd waits and Timeout.
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from ._stackless import sleep as sleep, wait_read as wait_read, wait_write as wait_write

__all__ = ["sleep", "wait_read", "wait_write", "Timeout", "with_timeout"]

_T = TypeVar("_T")
_U = TypeVar("_U")

class Timeout(BaseException):
    seconds: float | None
    exception: type[BaseException] | BaseException | bool | None
    def __init__(self, seconds: float | None = None,
                 exception: type[BaseException] | BaseException | bool | None = None,
                 ref: bool = True) -> None: ...
    def start(self) -> Self: ...
    @classmethod
    def start_new(cls, seconds: float | Timeout | None = None,
                  exception: type[BaseException] | BaseException | bool | None = None
                  ) -> Timeout: ...
    @property
    def pending(self) -> bool: ...
    def cancel(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, typ: type[BaseException] | None,
                 value: BaseException | None,
                 tb: TracebackType | None) -> bool | None: ...

@overload
def with_timeout(seconds: float | None, function: Callable[..., _T], *args: Any,
                 timeout_value: _U, **kwds: Any) -> _T | _U: ...
@overload
def with_timeout(seconds: float | None, function: Callable[..., _T], *args: Any,
                 **kwds: Any) -> _T: ...
