# Type stubs of stackless_compat.patches.time.
from stackless_compat._stackless import sleep as sleep

__implements__: list[str]
__target__: str
