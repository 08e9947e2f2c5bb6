# Type stubs of stackless_compat.patches._deadline: the deadline and retry
# loop of the patches' timed waits.
from typing import Callable, Final, TypeVar

_T = TypeVar("_T")
_E = TypeVar("_E")

__all__ = ["AGAIN", "Deadline", "retry"]

AGAIN: Final[object]

class Deadline:
    def __init__(self, timeout: float | None) -> None: ...
    def remaining(self) -> float | None: ...
    def passed(self) -> bool: ...
    def slice(self, most: float) -> float: ...

def retry(
    attempt: Callable[[], _T | object],
    park: Callable[[float | None], object],
    timeout: float | None,
    expired: Callable[[], _E],
    attempted: bool = False,
) -> _T | _E: ...
