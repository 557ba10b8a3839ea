"""Progress output: a live bar on a terminal, whole lines in a log file.

In a log (nohup, CI, a batch scheduler's output file) tqdm's redraws became carriage returns and
cursor-up escapes, and a notice printed while a bar was open was glued to the bar's line (found by
QA). There a run gets one plain line at most every ``interval`` seconds and one when it ends."""

from __future__ import annotations

import sys
import time
from typing import Any


def interactive() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


class LogProgress:
    """The subset of tqdm's interface the harness uses (update, set_postfix, close), as lines."""

    def __init__(self, total: int, desc: str, unit: str, disable: bool, interval: float = 30.0) -> None:
        self.total, self.desc, self.unit, self.disable, self.interval = total, desc, unit, disable, interval
        self.n, self.postfix = 0, ""
        self.start = self.last = time.monotonic()

    def _line(self) -> None:
        elapsed = time.monotonic() - self.start
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{pct}, {elapsed:.0f} s{self.postfix}",
              file=sys.stderr, flush=True)

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if not self.disable and now - self.last >= self.interval and self.n < self.total:
            self.last = now
            self._line()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.disable and self.n:
            self._line()
        self.disable = True


def progress(total: int, desc: str, unit: str, enabled: bool, position: int = 0):
    """A bar for ``total`` steps: tqdm on a terminal, :class:`LogProgress` otherwise."""
    disable = not enabled or total == 0
    if not interactive():
        return LogProgress(total, desc, unit, disable)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, mininterval=0.1,
                position=position)
