# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
# ruff: noqa: INP001 - a script the kernel build runs, not part of a package
"""Check that a kernel .config holds every option a Kconfig fragment asks for.

`make olddefconfig` silently drops an option whose dependencies are not met, so a fragment
line can vanish without an error; this check makes that loud (specs/toolchain.md §4).

    python3 check_config.py FRAGMENT CONFIG    # exit 1 and one line per mismatch
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


def parse_kconfig(text: str) -> dict[str, str]:
    """Map each option of a fragment or .config to its value, `n` for "is not set".

    Args:
        text: The file's text.

    Returns:
        Option name (with the CONFIG_ prefix) to value as written (`y`, `m`, `"str"`, `n`).
    """
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if m := _SET.match(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.match(line):
            values[m.group(1)] = "n"
    return values


def check_kconfig(fragment: str, config: str) -> list[str]:
    """List the fragment's options that the final .config does not hold as asked.

    An option absent from the .config counts as `n` (Kconfig omits options whose menu is
    off), so `# CONFIG_X is not set` in the fragment is satisfied by its absence.

    Args:
        fragment: The fragment's text.
        config: The resulting .config's text.

    Returns:
        One message per mismatch, in fragment order; empty when all hold.
    """
    want = parse_kconfig(fragment)
    have = parse_kconfig(config)
    return [
        f"{name}: asked {value}, got {have.get(name, 'n (absent)')}"
        for name, value in want.items()
        if have.get(name, "n") != value
    ]


def main(argv: list[str]) -> int:
    """Compare FRAGMENT with CONFIG; print mismatches on stderr.

    Args:
        argv: [FRAGMENT, CONFIG].

    Returns:
        0 when every option holds, 1 otherwise, 2 on usage errors.
    """
    if len(argv) != 2:
        print("usage: check_config.py FRAGMENT CONFIG", file=sys.stderr)  # noqa: T201 - a script
        return 2
    fragment, config = (Path(p).read_text(encoding="utf-8") for p in argv)
    problems = check_kconfig(fragment, config)
    for problem in problems:
        print(f"kernel config: {problem}", file=sys.stderr)  # noqa: T201 - a script
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
