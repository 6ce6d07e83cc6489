"""Hypothesis profiles for the whole test suite.

Choose one with the environment variable ``WOLFPACK_HYPOTHESIS_PROFILE``:

``ci`` (the default, locally too, so a local run is exactly the CI run)
    derandomized, no example database, at least 200 examples per test and
    50 steps per state machine run; a failure prints its reproduction blob.
``dev``
    a quicker derandomized run (50 examples) while editing.
``large``
    randomized, 2000 examples of up to 100 steps, with the example database
    in ``.hypothesis/`` so failures found once are replayed first (nightly).

Example: ``WOLFPACK_HYPOTHESIS_PROFILE=large .venv/bin/pytest tests/property``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "WOLFPACK_HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=200,
    stateful_step_count=50,
)
settings.register_profile(
    "dev",
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=50,
    stateful_step_count=50,
)
settings.register_profile(
    "large",
    derandomize=False,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=2000,
    stateful_step_count=100,
)

PROFILES = ("ci", "dev", "large")
_profile = os.environ.get(PROFILE_VARIABLE, DEFAULT_PROFILE)
if _profile not in PROFILES:
    raise pytest.UsageError(
        f"{PROFILE_VARIABLE}={_profile!r} is not a hypothesis profile of this suite; use one of {', '.join(PROFILES)}"
    )
settings.load_profile(_profile)
