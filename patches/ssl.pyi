# Type stubs of stackless_compat.patches.ssl: an SSLContext whose
# wrap_socket() returns cooperative SSLSockets (the stdlib's interface).
import ssl
from typing import Any, NoReturn

__implements__: list[str]
__target__: str

class SSLSocket(ssl.SSLSocket):
    def settimeout(self, value: float | None) -> None: ...
    def setblocking(self, flag: bool) -> None: ...

class SSLContext(ssl.SSLContext):
    sslsocket_class: type[SSLSocket]

def wrap_socket(sock: Any, *args: Any, **kwds: Any) -> NoReturn: ...
