# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Checking the arguments of a run (specs/threat-model.md §5.3).

Arguments reach the entrypoint unchanged: each run sees only its own view of the file
system (`enclave.runner.view`), so a path in an argument, in a config file or in an
environment variable means the same thing and can name nothing the run may not see. What is
left to check is what the view cannot bound: the number and size of the arguments (the
kernel's limits and the server's memory), and that each is text without a NUL byte (which
`exec` cannot carry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from enclave.runner.errors import BadRunArgumentError

#: The session directories a run sees at `/<name>` (specs/threat-model.md §5.3).
ROOTS = ("dataset", "model", "output")
MAX_ARGS = 256
MAX_ARG_BYTES = 4096


def check_arguments(args: Sequence[str]) -> None:
    """Check the count, size and text of the arguments (before any key is asked for).

    Raises:
        BadRunArgumentError: Too many arguments, one too long, not text or with a NUL.
    """
    if len(args) > MAX_ARGS:
        raise BadRunArgumentError(f"run: more than {MAX_ARGS} arguments")
    for index, arg in enumerate(args):
        if not isinstance(arg, str):
            raise BadRunArgumentError(f"run argument {index}: not a string")
        if len(arg.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
            raise BadRunArgumentError(f"run argument {index}: longer than {MAX_ARG_BYTES} bytes")
        if "\x00" in arg:
            raise BadRunArgumentError(f"run argument {index}: contains a nul byte")


def run_environment(
    requested: Sequence[tuple[str, str]], allow: AbstractSet[str], defaults: Mapping[str, str]
) -> dict[str, str]:
    """The run's own variables: the owner's defaults, then the user's (threat-model.md §5.2).

    Raises:
        BadRunArgumentError: A name the manifest does not allow, or a value that is not text
            of at most 4096 bytes without NUL.
    """
    env = dict(defaults)
    for name, value in requested:
        if name not in allow:
            raise BadRunArgumentError(
                f"run: environment variable {name!r} is not allowed by the bundle's manifest"
            )
        if "\x00" in value or len(value.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
            raise BadRunArgumentError(
                f"run: environment variable {name!r}: value must be text of at most "
                f"{MAX_ARG_BYTES} bytes without NUL"
            )
        env[name] = value
    return env
