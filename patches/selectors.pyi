# Type stubs of stackless_compat.patches.selectors.
import selectors

__implements__: list[str]
__target__: str

class HubSelector(selectors.PollSelector): ...

DefaultSelector = HubSelector
PollSelector = HubSelector

class EpollSelector(selectors.EpollSelector): ...
