# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Checking and mapping the arguments of a run (specs/threat-model.md §5.3).

The entrypoint may read any part of an argument as a path: a whole argument, the value after
`=` (`--out=/x`, `key=/x`), the rest of a short option (`-o/x`, `-d..`), an item of a list
(`a,/x`, `/x:/y`). So the rule is structural: every argument is cut into *segments* at `=`,
`,`, `:`, `;` and whitespace; the option letters that begin a segment (`-o`, `--out`, `-Ifx`)
are set aside; what is left of each segment is a *path part*, and every path part is held to
the rules of §5.3:

- no NUL byte anywhere; no `..` component; no empty component (`//`);
- an absolute path part (it starts with `/`) MUST start with a session root (`/dataset`,
  `/model`, `/output`) and is rewritten to the run's copy of that root;
- a relative one resolves against the entrypoint's working directory (the run's session
  folder, which holds only those roots), never against the decrypted app;
- `~name` (another user's home) is refused;
- no existing component of what a path part names may be a symlink, and nothing it names
  may lie inside the decrypted app.

A URL (`scheme://host/...`, scheme other than `file`) is one segment up to the next
whitespace, `,` or `;`; it is not rewritten but it MUST have a host and no `..` component.
`file://` is followed by an absolute path part, checked as above.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from enclave.runner_errors import BadRunArgumentError

#: The session directories an argument may name with an absolute path.
ROOTS = ("dataset", "model", "output")
MAX_ARGS = 256
MAX_ARG_BYTES = 4096

_DELIMITERS = frozenset("=,:; \t\n\r\v\f")
_URL_END = frozenset(",; \t\n\r\v\f")
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://")
_OPTION = re.compile(r"-+[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class _Part:
    """One path part of an argument: `arg[start:end]`; `url` parts are checked, not mapped."""

    start: int
    end: int
    url: bool = False


def check_arguments(args: Sequence[str]) -> None:
    """Check the syntax of every argument (before any key is asked for).

    Raises:
        BadRunArgumentError: An argument breaks one of the rules of this module.
    """
    if len(args) > MAX_ARGS:
        raise BadRunArgumentError(f"run: more than {MAX_ARGS} arguments")
    for index, arg in enumerate(args):
        for part in _parts(arg, index):
            _check_part(arg, part, index)


def named_roots(args: Sequence[str]) -> set[str]:
    """The session roots the (checked) arguments name with an absolute path part."""
    named: set[str] = set()
    for index, arg in enumerate(args):
        for part in _parts(arg, index):
            text = arg[part.start : part.end]
            if not part.url and text.startswith("/"):
                named.add(text[1:].split("/", 1)[0])
    return named


def map_arguments(
    args: Sequence[str], roots: Mapping[str, Path], cwd: Path, app_dir: Path
) -> list[str]:
    """Return the arguments with session paths rewritten to the run's real directories.

    Args:
        args: The arguments the user sent.
        roots: Real directory of each session root (`dataset` -> /.../dataset).
        cwd: The entrypoint's working directory (relative parts resolve there).
        app_dir: The decrypted bundle: nothing an argument names may lie inside it.

    Raises:
        BadRunArgumentError: An argument breaks a rule, names a symlink or the app.
    """
    check_arguments(args)
    mapped: list[str] = []
    for index, arg in enumerate(args):
        out: list[str] = []
        at = 0
        for part in _parts(arg, index):
            if part.url:
                continue
            text = arg[part.start : part.end]
            out.append(arg[at : part.start])
            out.append(_map_part(text, roots, cwd, app_dir, index))
            at = part.end
        out.append(arg[at:])
        mapped.append("".join(out))
    return mapped


def _parts(arg: str, index: int) -> Iterator[_Part]:
    """Cut `arg` into segments and yield each segment's path part (may be empty)."""
    if not isinstance(arg, str):
        raise BadRunArgumentError(f"run argument {index}: not a string")
    if len(arg.encode("utf-8", "surrogatepass")) > MAX_ARG_BYTES:
        raise BadRunArgumentError(f"run argument {index}: longer than {MAX_ARG_BYTES} bytes")
    if "\x00" in arg:
        raise BadRunArgumentError(f"run argument {index}: contains a nul byte")
    i = 0
    while i <= len(arg):
        url = _URL.match(arg, i)
        if url is not None and url.group(1).lower() != "file":
            end = _find(arg, url.end(), _URL_END)
            yield _Part(i, end, url=True)
            i = end + 1
            continue
        if url is not None:
            i = url.end()  # file://: what follows is an absolute path part
        end = _find(arg, i, _DELIMITERS)
        option = _OPTION.match(arg, i, end)
        start = option.end() if option is not None else i
        yield _Part(start, end)
        i = end + 1


def _find(text: str, start: int, stops: frozenset[str]) -> int:
    for i in range(start, len(text)):
        if text[i] in stops:
            return i
    return len(text)


def _check_part(arg: str, part: _Part, index: int) -> None:
    text = arg[part.start : part.end]
    if part.url:
        rest = text.partition("://")[2]
        if not rest or rest.startswith("/"):
            raise BadRunArgumentError(f"run argument {index}: url {text!r} has no host")
        if ".." in re.split(r"[/?#&=]", rest):
            raise BadRunArgumentError(f"run argument {index}: url {text!r} contains '..'")
        return
    components = text.split("/")
    if ".." in components:
        raise BadRunArgumentError(f"run argument {index}: {arg!r} contains a '..' path")
    if "//" in text:
        raise BadRunArgumentError(f"run argument {index}: {arg!r} contains '//'")
    if text.startswith("~") and not (text == "~" or text.startswith("~/")):
        raise BadRunArgumentError(f"run argument {index}: {arg!r} names another user's home")
    if text.startswith("/") and components[1] not in ROOTS:
        raise BadRunArgumentError(
            f"run argument {index}: {arg!r} names an absolute path outside "
            "/dataset/, /model/ and /output/"
        )


def _map_part(text: str, roots: Mapping[str, Path], cwd: Path, app: Path, index: int) -> str:
    if not text:
        return text
    if text.startswith("/"):
        parts = [p for p in text.split("/") if p]
        base, rest = roots[parts[0]], parts[1:]
        real = str(base.joinpath(*rest)) + ("/" if text.endswith("/") else "")
    else:
        base, rest, real = cwd, [p for p in text.split("/") if p not in {"", "."}], text
    _refuse_symlinks(base, rest, index)
    resolved = Path(os.path.realpath(base.joinpath(*rest)))
    if resolved == app or app in resolved.parents:
        raise BadRunArgumentError(f"run argument {index}: names a file of the bundle")
    return real


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
