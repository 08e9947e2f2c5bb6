# Type stubs of stackless_compat.patches.signal: handlers that fire while the
# scheduler polls run in a tasklet of their own.
import signal as _stdsignal
from collections.abc import Callable
from types import FrameType
from typing import Any

__implements__: list[str]
__target__: str

_Handler = Callable[[int, FrameType | None], Any] | int | _stdsignal.Handlers | None

def signal(signalnum: int, handler: _Handler) -> _Handler: ...
def getsignal(signalnum: int) -> _Handler: ...
