# Type stubs of stackless_compat._teststackless: Stackless's test helpers
# for code that does ``import _teststackless``.
from ._stackless import test_cframe as test_cframe, test_cstate as test_cstate

__all__ = ["test_cframe", "test_cstate"]
