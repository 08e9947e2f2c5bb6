# Type stubs of stackless_compat.patches.dns: cooperative name resolution.
from collections.abc import Iterable
from typing import Any, Literal

__implements__: list[str]
__target__: str

AF_INET: int
AF_INET6: int
AF_UNSPEC: int
AI_CANONNAME: int
AI_ADDRCONFIG: int
AI_NUMERICHOST: int
NI_NUMERICHOST: int
NI_NAMEREQD: int
type_none: type[None]

def set_resolver(kind: Literal["ares", "thread"]) -> None: ...
def get_resolver() -> Literal["ares", "thread"]: ...
def configure(servers: str | Iterable[str] | None = None,
              timeout: float | None = None, tries: int | None = None) -> None: ...
def getaddrinfo(host: bytes | str | None, port: bytes | str | int | None,
                family: int = 0, type: int = 0, proto: int = 0,
                flags: int = 0) -> list[tuple[Any, Any, int, str, tuple[Any, ...]]]: ...
def gethostbyname(hostname: str) -> str: ...
def gethostbyname_ex(hostname: str) -> tuple[str, list[str], list[str]]: ...
def gethostbyaddr(ip_address: str) -> tuple[str, list[str], list[str]]: ...
def getnameinfo(sockaddr: tuple[str, int] | tuple[str, int, int, int],
                flags: int) -> tuple[str, str]: ...
def getfqdn(name: str = "") -> str: ...
