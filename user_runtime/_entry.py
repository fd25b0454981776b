# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The `user-runtime` console script: `run` on a lean path, everything else through typer.

`user-runtime run` is on the critical path of every run, so it must start fast (issue 5
item 4): importing typer and click costs more than a trivial entrypoint. This entry point
parses `run -f BUNDLE -s ENTRY [-a ARGS] [--state-dir DIR]` by hand and imports only what a
run needs; any other command, `--help`, or anything it does not recognise goes to the typer
app (`user_runtime._cli`), which also prints the usage errors. Output, errors and exit codes
are the same on both paths (specs/cli.md).
"""

from __future__ import annotations

import sys

_OPTIONS = {
    "-f": "file",
    "--file": "file",
    "-s": "script",
    "--script": "script",
    "-a": "args",
    "--args": "args",
    "--state-dir": "state_dir",
    "--timeout": "timeout",
}


def parse_run(argv: list[str]) -> dict[str, str] | None:
    """Parse `run`'s options; None when anything is unusual (the typer path handles it)."""
    values: dict[str, str] = {}
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if eq and name.startswith("--") and name in _OPTIONS:
            key = _OPTIONS[name]
        elif word in _OPTIONS and i + 1 < len(argv):
            key, value = _OPTIONS[word], argv[i + 1]
            i += 1
        else:
            return None
        if key in values:
            return None
        values[key] = value
        i += 1
    if "file" not in values or "script" not in values:
        return None
    if "timeout" in values and not (
        values["timeout"].isascii() and values["timeout"].isdigit() and int(values["timeout"]) > 0
    ):
        return None  # the typer path reports the usage error
    return values


def run_fast(argv: list[str]) -> int | None:
    """Run `user-runtime run ARGV` without typer; None to fall back to the typer app.

    Errors become one line and an exit code through the same map as the typer app's.
    """
    values = parse_run(argv)
    if values is None:
        return None
    from cli_shell.guard import guard  # noqa: PLC0415
    from user_runtime._cli_common import ERRORS, run_and_show  # noqa: PLC0415
    from user_runtime.run import split_args  # noqa: PLC0415

    def run() -> int:
        args = split_args(values.get("args"))
        timeout = int(values["timeout"]) if "timeout" in values else None
        return run_and_show(
            values["file"], values["script"], args, values.get("state_dir"), timeout
        )

    return guard(ERRORS, run)


def entry() -> None:
    """Console-script entry point."""
    argv = sys.argv[1:]
    if argv[:1] == ["run"]:
        code = run_fast(argv[1:])
        if code is not None:
            sys.exit(code)
    from user_runtime._cli import entry as typer_entry  # noqa: PLC0415

    typer_entry()


if __name__ == "__main__":
    entry()
