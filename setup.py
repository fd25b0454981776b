# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Build hook for the one compiled piece: the sync mount's hot path (specs/sync.md §8.1).

Everything else is declared in pyproject.toml. `_fastpath.c` uses neither the Python API
nor libfuse's headers; it is loaded with ctypes (user_runtime/sync/fastpath.py). The
extension is optional: without a C compiler the install still succeeds and the mount answers
every getattr in Python (same results, fewer files per second).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "user_runtime.sync._fastpath",
            sources=["user_runtime/sync/_fastpath.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
            optional=True,
        )
    ]
)
