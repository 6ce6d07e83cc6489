"""Virtual time: a clock and a queue of things to happen at given instants."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

Action = Callable[[], None]


@dataclass(order=True)
class _Entry:
    at: int
    seq: int
    action: Action = field(compare=False)
    label: str = field(compare=False, default="")
    cancelled: bool = field(compare=False, default=False)


class Handle:
    """Returned by :meth:`VirtualClock.call_at`; lets the caller cancel."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        self._entry.cancelled = True

    @property
    def due(self) -> int:
        return self._entry.at

    @property
    def cancelled(self) -> bool:
        return self._entry.cancelled


class VirtualClock:
    """Milliseconds since the start of the run; advances only when told.

    Actions scheduled for the same instant run in the order they were
    scheduled (a sequence number breaks ties), so a run depends only on its
    inputs.
    """

    def __init__(self, start_ms: int = 0) -> None:
        self.now = start_ms
        self._queue: list[_Entry] = []
        self._seq = 0

    def call_at(self, at: int, action: Action, label: str = "") -> Handle:
        if at < self.now:
            raise ValueError(f"cannot schedule in the past ({at} < now {self.now})")
        self._seq += 1
        entry = _Entry(at, self._seq, action, label)
        heapq.heappush(self._queue, entry)
        return Handle(entry)

    def call_later(self, delay: int, action: Action, label: str = "") -> Handle:
        if delay < 0:
            raise ValueError(f"delay must be >= 0, got {delay}")
        return self.call_at(self.now + delay, action, label)

    def next_due(self) -> int | None:
        self._drop_cancelled()
        return self._queue[0].at if self._queue else None

    def step(self) -> bool:
        """Run the next due action (advancing time to it); False if none."""
        self._drop_cancelled()
        if not self._queue:
            return False
        entry = heapq.heappop(self._queue)
        self.now = entry.at
        entry.action()
        return True

    def run_until(self, until: int, max_actions: int | None = None) -> int:
        """Run every action due up to ``until``; then set the time to it.

        Returns the number of actions run.  ``max_actions`` guards against a
        livelock (an action that keeps scheduling at the same instant).
        """
        count = 0
        while True:
            due = self.next_due()
            if due is None or due > until:
                break
            self.step()
            count += 1
            if max_actions is not None and count >= max_actions:
                raise RuntimeError(f"more than {max_actions} actions before t={until} ms: a livelock?")
        self.now = max(self.now, until)
        return count

    def run_for(self, duration: int, max_actions: int | None = None) -> int:
        return self.run_until(self.now + duration, max_actions)

    def pending(self) -> int:
        self._drop_cancelled()
        return len(self._queue)

    def _drop_cancelled(self) -> None:
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
