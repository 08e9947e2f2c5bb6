# Type stubs of stackless_compat.patches.socket: socket.socket whose
# blocking calls park the calling tasklet (the stdlib's interface).
import socket as _stdsocket

__implements__: list[str]
__target__: str

class socket(_stdsocket.socket):
    def settimeout(self, value: float | None) -> None: ...
    def setblocking(self, flag: bool) -> None: ...
    def shutdown(self, how: int) -> None: ...

SocketType = socket
