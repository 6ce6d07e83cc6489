"""Exponential backoff with jitter between reconnection attempts."""

from __future__ import annotations

import random

from wolfpack.errors import ConfigError


class Backoff:
    """Delays that double from ``minimum`` up to ``maximum``; each is drawn from [d/2, d] so that nodes
    that lost each other at the same moment do not redial in lockstep.  :meth:`reset` after a success."""

    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None) -> None:
        if not 0 < minimum <= maximum:
            raise ConfigError(
                f"reconnection backoff ({minimum}, {maximum}) is not 0 < min <= max seconds: give e.g. (0.1, 10.0)"
            )
        self.minimum = minimum
        self.maximum = maximum
        self.attempts = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        ceiling = min(self.maximum, self.minimum * 2.0 ** min(self.attempts, 64))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
