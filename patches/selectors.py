"""selectors.DefaultSelector on the cooperative select.poll."""
import select as _stdselect
import selectors as _stdselectors

from . import select as _coselect

__implements__ = ["DefaultSelector", "PollSelector"]
__target__ = "selectors"


class HubSelector(_stdselectors._PollLikeSelector):
    """Poll-like selector whose select() parks the calling tasklet."""
    _selector_cls = _coselect.poll
    _EVENT_READ = _stdselect.POLLIN
    _EVENT_WRITE = _stdselect.POLLOUT


DefaultSelector = HubSelector
PollSelector = HubSelector
