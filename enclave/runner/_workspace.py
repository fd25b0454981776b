# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The run's private directory: the app's layout, its key, the session's files in and out.

What `enclave.runner.runner.Runner` does around the entrypoint (specs/threat-model.md §5
steps 4, 5 and 7): lay out the signed file table while the data key is released, export the
session's dataset and model for the run, and copy its outputs back.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from enclave.errors import EnclaveError
from enclave.runner.api import OpenedBundle, PreparableBundle, SessionFiles
from enclave.runner.args import ROOTS
from enclave.runner.errors import RunSetupError


def key_while_preparing(
    opened: OpenedBundle, app: Path, get_key: Callable[[], bytes], name: str
) -> bytes:
    """Release the data key (`get_key`) while another thread lays out the app's files.

    The signature verified already, so the sizes come from the signed file table; no
    plaintext exists before the key does (specs/threat-model.md §3 step 4). If either side
    fails, what was laid out is removed (the caller's `PrivateDir` wipes the rest).

    Raises:
        RunSetupError: The files cannot be laid out (e.g. they do not fit).
        RunError: As `get_key`.
    """
    if not isinstance(opened, PreparableBundle):
        return get_key()
    failed: list[BaseException] = []

    def prepare() -> None:
        try:
            opened.prepare(app)
        except BaseException as exc:  # noqa: BLE001 - a thread's failure, re-raised by the caller
            failed.append(exc)

    thread = threading.Thread(target=prepare, name="prepare", daemon=True)
    thread.start()
    try:
        key = get_key()
    except BaseException:
        thread.join()
        opened.discard()
        raise
    thread.join()
    if failed:
        opened.discard()
        raise RunSetupError(
            f"bundle {name}: cannot lay out its files in the enclave's memory: {_reason(failed[0])}"
        ) from failed[0]
    return key


def _layout(work: Path) -> Path:
    """Make a private directory's `app-<random>/` and `session/`; return the app.

    The app's name is random, and the run sees it at `/<that name>` (enclave.runner.view), so
    that no fixed path, e.g. a link inside a user's file to `/app/model.h5`, reaches the
    owner's files (specs/threat-model.md §4, §5.3).
    """
    app = work / f"app-{secrets.token_hex(8)}"
    for sub in (app, work / "session"):
        sub.mkdir(mode=0o700)
    return app


def _export_roots(base: Path, session: SessionFiles) -> dict[str, Path]:
    """Make the run's /dataset/, /model/ (exported from the session) and a fresh /output/.

    The session's `output/` is emptied here, as the entrypoint is about to start: after the
    run it holds this run's files only (specs/sync.md §2).
    """
    roots = {name: base / name for name in ROOTS}
    try:
        session.clear_dir("output")
        for name, path in roots.items():
            path.mkdir(mode=0o700)
            if name != "output":
                session.export_dir(name, path)
    except (OSError, EnclaveError) as exc:
        raise RunSetupError(f"session: cannot export for the run: {_reason(exc)}") from exc
    return roots


def _import_outputs(out: Path, limit: int, session: SessionFiles) -> tuple[str, ...]:
    """Copy the run's /output/ back into the session, within the manifest's size limit."""
    total = 0
    for path in out.rglob("*"):
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            raise RunSetupError(f"output: {path.relative_to(out)} is not a regular file")
        if path.is_file():
            total += path.stat().st_size
    if total > limit:
        raise RunSetupError(
            f"output: {total} bytes of files exceed the {limit} bytes the bundle allows"
        )
    try:
        return tuple(session.import_dir(out, "output"))
    except (OSError, EnclaveError) as exc:
        raise RunSetupError(f"session: cannot copy outputs back: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
