# Type stubs of stackless_compat.patches.zmq: pyzmq's namespace with
# cooperative Context, Socket and Poller (as gevent's zmq.green).  The rest
# of the namespace is pyzmq's own (module __getattr__ below).
from typing import Any

import zmq as _zmq

class Socket(_zmq.Socket[Any]):
    """zmq.Socket whose blocking send/recv park the tasklet."""

    def send(self, data: Any, flags: int = 0, copy: bool = True,  # type: ignore[override]
             track: bool = False, **kwargs: Any) -> Any: ...
    def recv(self, flags: int = 0, copy: bool = True,
             track: bool = False) -> Any: ...
    def poll(self, timeout: int | None = None, flags: int = ...) -> int: ...
    def close(self, linger: int | None = None) -> None: ...

class Context(_zmq.Context[Socket]):
    """zmq.Context making cooperative Sockets."""

class Poller(_zmq.Poller):
    """zmq.Poller whose poll() parks the tasklet."""

    def poll(self, timeout: int | None = None) -> list[tuple[Any, int]]: ...

def select(rlist: Any, wlist: Any, xlist: Any,
           timeout: float | None = None) -> tuple[list[Any], list[Any], list[Any]]: ...

COPY_THRESHOLD: int
DRAFT_API: bool
IPC_PATH_MAX_LEN: int
PYZMQ_DRAFT_API: bool
__revision__: str

# everything else: pyzmq's names
def __getattr__(name: str) -> Any: ...
