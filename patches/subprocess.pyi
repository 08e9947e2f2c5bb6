# Type stubs of stackless_compat.patches.subprocess: Popen's waits and pipe
# files park the tasklet.
import io as _io
import types
from typing_extensions import Buffer
from typing import Any

from .selectors import HubSelector

__implements__: list[str]
__target__: str

_PopenSelector = HubSelector
io: types.ModuleType

class PipeIO(_io.FileIO):
    """FileIO on a pipe that parks the tasklet until the pipe is ready."""

    def readinto(self, b: Buffer) -> int: ...
    def read(self, size: int | None = -1) -> bytes: ...
    def readall(self) -> bytes: ...
    def write(self, b: Buffer) -> int: ...

def _open(file: Any, mode: str = "r", buffering: int = -1, *args: Any,
          **kwargs: Any) -> Any: ...
def _wait(self: Any, timeout: float | None) -> int: ...
