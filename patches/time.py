"""Cooperative time.sleep: parks the tasklet (sleep(0) is schedule())."""
from stackless_compat._stackless import sleep

__implements__ = ["sleep"]
__target__ = "time"
