"""selectors.DefaultSelector on the cooperative select.poll; EpollSelector
on the cooperative select.epoll."""
import select as _stdselect
import selectors as _stdselectors

from . import select as _coselect

__implements__ = ["DefaultSelector", "PollSelector", "EpollSelector"]
__target__ = "selectors"


class HubSelector(_stdselectors._PollLikeSelector):
    """Poll-like selector whose select() parks the calling tasklet."""
    _selector_cls = _coselect.poll
    _EVENT_READ = _stdselect.POLLIN
    _EVENT_WRITE = _stdselect.POLLOUT


DefaultSelector = HubSelector
PollSelector = HubSelector


if hasattr(_stdselectors, "EpollSelector"):
    class EpollSelector(_stdselectors.EpollSelector):
        """selectors.EpollSelector whose select() parks the tasklet."""
        _selector_cls = _coselect.epoll
