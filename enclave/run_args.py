# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Checking and mapping the arguments of a run (specs/threat-model.md §5.3).

An argument, or the value after `=` in an `--option=value` argument, that looks like a path
is held to these rules before the entrypoint sees it:

- it MUST NOT contain `//`, a `..` component or a NUL byte;
- if absolute, its first component MUST be one of the session roots (`dataset`, `model`,
  `output`); it is rewritten to the real directory the root was exported to for the run;
- no existing component of what it names (under a root, or under the decrypted app for a
  relative path) may be a symlink.

Everything else passes unchanged; relative paths resolve against the decrypted app directory,
the entrypoint's working directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from enclave.runner_errors import BadRunArgumentError

#: The session directories an argument may name with an absolute path.
ROOTS = ("dataset", "model", "output")
MAX_ARGS = 256
MAX_ARG_BYTES = 4096


def check_arguments(args: Sequence[str]) -> None:
    """Check the syntax of every argument (before any key is asked for).

    Raises:
        BadRunArgumentError: An argument breaks one of the rules of this module.
    """
    if len(args) > MAX_ARGS:
        raise BadRunArgumentError(f"run: more than {MAX_ARGS} arguments")
    for index, arg in enumerate(args):
        _split_checked(arg, index)


def map_arguments(args: Sequence[str], roots: Mapping[str, Path], app_dir: Path) -> list[str]:
    """Return the arguments with session paths rewritten to the run's real directories.

    Args:
        args: The arguments the user sent.
        roots: Real directory of each session root (`dataset` -> /.../dataset).
        app_dir: The decrypted bundle, the entrypoint's working directory.

    Raises:
        BadRunArgumentError: An argument breaks a rule, or names a symlink.
    """
    check_arguments(args)
    mapped: list[str] = []
    for index, arg in enumerate(args):
        prefix, value = _split_checked(arg, index)
        if value.startswith("/"):
            parts = [p for p in value.split("/") if p]
            root = roots[parts[0]]
            _refuse_symlinks(root, parts[1:], index)
            real = str(root.joinpath(*parts[1:]))
            if value.endswith("/"):
                real += "/"
            mapped.append(prefix + real)
        else:
            parts = [p for p in value.split("/") if p not in {"", "."}]
            if parts:
                _refuse_symlinks(app_dir, parts, index)
            mapped.append(arg)
    return mapped


def _split_checked(arg: str, index: int) -> tuple[str, str]:
    """Split `--opt=value` into (`--opt=`, `value`); check the value; return both."""
    if not isinstance(arg, str):
        raise BadRunArgumentError(f"run argument {index}: not a string")
    if len(arg.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
        raise BadRunArgumentError(f"run argument {index}: longer than {MAX_ARG_BYTES} bytes")
    if "\x00" in arg:
        raise BadRunArgumentError(f"run argument {index}: contains a nul byte")
    prefix, value = "", arg
    if arg.startswith("-") and "=" in arg:
        head, _, value = arg.partition("=")
        prefix = head + "="
    if "//" in value:
        raise BadRunArgumentError(f"run argument {index}: {value!r} contains '//'")
    if ".." in value.split("/"):
        raise BadRunArgumentError(f"run argument {index}: {value!r} contains '..'")
    if value.startswith("/"):
        first = value[1:].split("/", 1)[0]
        if first not in ROOTS:
            raise BadRunArgumentError(
                f"run argument {index}: absolute path {value!r} is outside "
                "/dataset/, /model/ and /output/"
            )
    return prefix, value


def _refuse_symlinks(base: Path, parts: Sequence[str], index: int) -> None:
    """Refuse if `base` or any existing component of base/parts is a symlink."""
    path = base
    if path.is_symlink():
        raise BadRunArgumentError(f"run argument {index}: names a symlink")
    for part in parts:
        path /= part
        if path.is_symlink():
            raise BadRunArgumentError(f"run argument {index}: {part!r} is a symlink")
        if not path.exists():
            return
