"""Builds the one C extension; all other metadata is in pyproject.toml (setuptools merges the two).

``optional=True``: on a host where it cannot compile, the install still succeeds
and the pure-Python twin is used; the test suite fails under CI when that happens
(tests/unit/test_heartbeat_timer.py::test_c_extension_built_under_ci).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wolfpack.runtime.heartbeat._hbtimer",
            ["runtime/heartbeat/_hbtimer.c"],
            extra_compile_args=["-O2", "-Wall", "-Werror"],
            optional=True,
        ),
    ],
)
