# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The runner: one bundle entrypoint, from ciphertext to wiped plaintext (specs/threat-model.md §5).

Order of a run, each step refusing before the next costs anything:

1. open the bundle from the session and verify its signature with the owner keys pinned in
   the image (`RunnerConfig.trusted_keys`), before KMS is asked for anything;
2. check the manifest's validity window on the enclave's clock and the image's minimum
   version for the bundle's name (replay of an older version);
3. refuse an entrypoint the signed manifest does not declare, bad arguments, and an app
   environment the image lacks (bundle-format.md §5.8);
4. create a fresh `0700` directory under the RAM-backed work base (`PrivateDir`), which no
   RPC can name, and obtain the data key through attestation (`KeyRelease`) while another
   thread lays out the signed file table's files there, pre-sized (no plaintext yet);
5. decrypt into that directory; export the session's dataset and model for the run;
6. run `python -B -E -s -u ENTRY ARGS` (the interpreter of its app environment, also
   `python` on its PATH) in its own process group, inside the run's own view
   of the file system (`enclave.runner.view`: `/dataset`, `/model` read-only, a fresh
   `/output`, `/tmp`, the app read-only at `/app-<random>`, the image's system, nothing of
   the session), arguments unchanged, streaming stdout and (when the manifest allows)
   stderr to the sink as they come, killed when the run's time limit passes;
7. copy /output/ back into the session (when the manifest allows files);
8. wipe everything (overwrite, unlink, rmdir) however the run ended.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from enclave.errors import EnclaveError
from enclave.plaintext import PrivateDir
from enclave.runner import view as run_view
from enclave.runner.api import (
    BundleFacts,
    BundleOpener,
    EntryFacts,
    KeyRelease,
    OpenedBundle,
    PreparableBundle,
    RunRequest,
    RunResult,
    RunSink,
    SessionFiles,
)
from enclave.runner.args import ROOTS, check_arguments, run_environment
from enclave.runner.data_bundles import DataPolicy, DataRun, check_app_kind, open_data_run
from enclave.runner.errors import (
    BadRunArgumentError,
    BundleExpiredRunError,
    BundleInvalidError,
    BundleNotYetValidRunError,
    BundleRollbackError,
    EntrypointNotDeclaredError,
    EnvironmentMissingError,
    KeyReleaseError,
    RunCancelledError,
    RunError,
    RunSetupError,
    RunTimedOutError,
    UntrustedBundleSignerError,
)
from enclave.runner.zygote import RUN_MODULE, Zygote
from package_format.bundle.errors import UntrustedSignerError
from package_format.errors import PackageFormatError

if TYPE_CHECKING:
    from enclave.runner.record import ReceiptIssuer

_READ_CHUNK = 1 << 16
_DRAIN_SECONDS = 2.0
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


def generic_failure_message(status: int) -> bytes:
    """The one line the user gets instead of a withheld stderr when the entrypoint fails."""
    return (
        f"entrypoint failed with exit status {status}; "
        "its error output is withheld by the bundle's policy\n"
    ).encode()


@dataclass(frozen=True)
class RunnerConfig:
    """What the image pins and where plaintext may live.

    Attributes:
        trusted_keys: Owner Ed25519 public keys pinned in the image's enclave.json.
        min_versions: Minimum bundle version per bundle name (replay protection).
        work_base: RAM-backed directory for the private per-run directories.
        python: The default interpreter: of bundles that name no environment (bundle-format.md
            §5.8), and of the prestarted one.
        key_cache_seconds: Keep a released data key in memory this long (0: never).
        prestart: Start the next Python entrypoint's interpreter (`enclave.runner.zygote`)
            as soon as a run is over, so a run does not wait for it.
        environments: The image's app environments, requirements' SHA-256 hex to
            interpreter (enclave-image.md §5.5); None: the image declares none (no check).
    """

    trusted_keys: tuple[bytes, ...]
    work_base: Path
    min_versions: Mapping[str, str] = field(default_factory=dict)
    python: str = sys.executable
    key_cache_seconds: float = 0.0
    prestart: bool = False
    environments: Mapping[str, str] | None = None


@dataclass
class _Spare:
    """The next run's Python interpreter, started before the run (no directory yet)."""

    zygote: Zygote | None


class Runner:
    """Runs one entrypoint at a time; `cancel()` may be called from any thread."""

    _data: DataRun  # the current run's data bundles (enclave.runner.data_bundles)

    def __init__(
        self,
        config: RunnerConfig,
        opener: BundleOpener,
        key_release: KeyRelease,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        receipts: ReceiptIssuer | None = None,
    ) -> None:
        self._config = config
        # specs/receipts.md §3.2: the issuer learns the app's verified facts as it opens.
        self._opener = opener if receipts is None else receipts.opener(opener)
        self._receipts = receipts
        self._key_release = key_release
        self._clock = clock
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._limit: float | None = None
        self._timed_out = False
        self._run_env: dict[str, str] = {}
        self._python = config.python
        self._keys: dict[bytes, tuple[bytes, float]] = {}
        self._spare: _Spare | None = None
        self._spare_thread: threading.Thread | None = None
        self._closed = False

    def warm(self) -> None:
        """Start the next run's interpreter in the background (`prestart`)."""
        if self._config.prestart and self._spare is None and self._spare_thread is None:
            self._spare_thread = threading.Thread(target=self._make_spare, daemon=True)
            self._spare_thread.start()

    def settle(self) -> None:
        """Wait until the background preparation of the next run (if any) is done."""
        thread = self._spare_thread
        if thread is not None:
            thread.join()

    def close(self) -> None:
        """Kill a waiting interpreter (idempotent)."""
        self._closed = True
        spare = self._take_spare()
        if spare is not None:
            _drop_spare(spare)

    def _make_spare(self) -> None:
        try:
            zygote = Zygote(self._config.python, _entry_env(self._config.python))
        except OSError:
            return  # the run starts its interpreter itself (and reports a failure)
        self._spare = _Spare(zygote)
        if self._closed:
            _drop_spare(self._take_spare_now())

    def _take_spare_now(self) -> _Spare:
        spare, self._spare = self._spare, None
        assert spare is not None
        return spare

    def _take_spare(self) -> _Spare | None:
        thread, self._spare_thread = self._spare_thread, None
        if thread is not None:
            thread.join()
        spare, self._spare = self._spare, None
        return spare

    def cancel(self) -> None:
        """Cancel the current run: kill the entrypoint's whole process group."""
        self._cancel.set()
        with self._lock:
            self._kill_group()

    def run(
        self,
        request: RunRequest,
        session: SessionFiles,
        sink: RunSink,
        cancel: threading.Event | None = None,
    ) -> RunResult:
        """Run `request`; return how the entrypoint ended.

        `cancel`, when given, is watched for the whole run (as `cancel()` is): once set, the
        entrypoint's process group is killed within a tenth of a second.

        Raises:
            RunError: A typed refusal or failure (see enclave.runner.errors); the plaintext is
                wiped before it propagates.
        """
        if self._receipts is None:
            return self._run(request, session, sink, cancel)
        # specs/receipts.md §4: the record watches the run through its sink and session.
        pending = self._receipts.begin(request, sink, session)
        try:
            return pending.finish(self._run(request, pending.session, pending.sink, cancel))
        finally:
            pending.abandon()

    def _run(
        self,
        request: RunRequest,
        session: SessionFiles,
        sink: RunSink,
        cancel: threading.Event | None,
    ) -> RunResult:
        self._cancel = cancel if cancel is not None else threading.Event()
        stream = self._open_stream(session, request.bundle)
        with stream:
            opened = self._open_bundle(stream, request.bundle)
            facts = opened.facts
            check_app_kind(facts, request.bundle)
            self._check_policy(facts)
            entry = facts.entrypoints.get(request.entrypoint)
            if entry is None:
                raise EntrypointNotDeclaredError(
                    f"{request.bundle}: entrypoint {request.entrypoint!r} is not declared "
                    "in the signed manifest"
                )
            if request.args and not entry.allow_args:
                raise BadRunArgumentError(
                    f"{request.bundle}: entrypoint {request.entrypoint!r} takes no arguments"
                )
            check_arguments(request.args)
            self._run_env = run_environment(request.env, facts.env_allow, facts.env_defaults)
            self._limit = effective_timeout(request.timeout, facts.max_run_seconds)
            self._timed_out = False
            self._python = self._interpreter(facts)
            policy = DataPolicy(
                self._opener, self._clock(), self._config.min_versions, self._config.work_base
            )
            self._data = open_data_run(request, facts, session, policy)  # before any KMS call
            sink = self._data.sink(sink, self.cancel)
            spare = self._take_spare() if self._config.prestart else None
            if spare is not None and self._python != self._config.python:
                _drop_spare(spare)  # started with the default interpreter, not this one
                spare = None
            try:
                with self._data:
                    return self._run_with(spare, request, entry, opened, session, sink)
            finally:
                if self._config.prestart and not self._closed:
                    self.warm()

    def _run_with(  # noqa: PLR0917 - the run's parts
        self,
        spare: _Spare | None,
        request: RunRequest,
        entry: EntryFacts,
        opened: OpenedBundle,
        session: SessionFiles,
        sink: RunSink,
    ) -> RunResult:
        facts = opened.facts
        zygote = spare.zygote if spare is not None else None
        try:
            work = PrivateDir(self._config.work_base)
            app = _layout(work.path)
            with work:
                key = self._key_while_preparing(opened, app, facts)
                self._data.extract(work.path, self._data_key, key_while_preparing)
                if self._cancel.is_set():
                    raise RunCancelledError("run cancelled")
                return self._run_in(
                    work.path,
                    app=app,
                    request=request,
                    entry=entry,
                    opened=opened,
                    key=key,
                    session=session,
                    sink=sink,
                    zygote=zygote,
                )
        finally:
            if zygote is not None:
                zygote.discard()

    # -- steps ---------------------------------------------------------------------------

    def _open_stream(self, session: SessionFiles, path: str) -> IO[bytes]:
        try:
            return session.open_file(path)
        except (OSError, EnclaveError) as exc:
            raise BundleInvalidError(f"{path}: cannot open the bundle: {_reason(exc)}") from exc

    def _open_bundle(self, stream: IO[bytes], path: str) -> OpenedBundle:
        try:
            return self._opener(stream, self._config.trusted_keys)
        except UntrustedSignerError as exc:
            raise UntrustedBundleSignerError(f"{path}: {_format_reason(exc)}") from exc
        except PackageFormatError as exc:
            raise BundleInvalidError(f"{path}: {_format_reason(exc)}") from exc

    def _check_policy(self, facts: BundleFacts) -> None:
        # specs/threat-model.md §5.1: validity window on the enclave clock, then rollback.
        now = self._clock()
        if facts.not_before is not None and now < facts.not_before:
            raise BundleNotYetValidRunError(
                f"bundle {facts.name} {facts.version}: not valid before "
                f"{facts.not_before.isoformat()}"
            )
        if facts.expires is not None and now >= facts.expires:
            raise BundleExpiredRunError(
                f"bundle {facts.name} {facts.version}: expired at {facts.expires.isoformat()}"
            )
        minimum = self._config.min_versions.get(facts.name)
        if minimum is not None and version_key(facts.version) < version_key(minimum):
            raise BundleRollbackError(
                f"bundle {facts.name} {facts.version}: older than the minimum version "
                f"{minimum} pinned in the image"
            )

    def _interpreter(self, facts: BundleFacts) -> str:
        """The run's Python: its manifest's environment, else the default (§5.8)."""
        envs = self._config.environments
        if facts.environment is None or envs is None:
            return self._config.python
        python = envs.get(facts.environment)
        if python is None:
            raise EnvironmentMissingError(
                f"bundle {facts.name} {facts.version}: needs app environment "
                f"{facts.environment[:16]} (sha256 {facts.environment}), which this image "
                "lacks; build the image with build-eif --app-requirements of that file"
            )
        return python

    def _key_while_preparing(self, opened: OpenedBundle, app: Path, facts: BundleFacts) -> bytes:
        return key_while_preparing(opened, app, lambda: self._data_key(facts), facts.name)

    def _data_key(self, facts: BundleFacts) -> bytes:
        ttl = self._config.key_cache_seconds
        if ttl > 0 and facts.header_digest:
            cached = self._keys.get(facts.header_digest)
            if cached is not None and cached[1] > time.monotonic():
                return cached[0]
        try:
            key = self._key_release(facts.kms_key_id, facts.wrapped_key, facts.encryption_context)
        except RunError:
            raise
        except Exception as exc:
            raise KeyReleaseError(f"key release for {facts.name}: {exc}") from exc
        if ttl > 0 and facts.header_digest:
            self._keys[facts.header_digest] = (key, time.monotonic() + ttl)
        return key

    def _run_in(
        self,
        work: Path,
        *,
        app: Path,
        request: RunRequest,
        entry: EntryFacts,
        opened: OpenedBundle,
        key: bytes,
        session: SessionFiles,
        sink: RunSink,
        zygote: Zygote | None = None,
    ) -> RunResult:
        facts = self._data.effective(opened.facts)
        try:
            opened.extract(key, app)
        except PackageFormatError as exc:
            raise BundleInvalidError(f"{request.bundle}: {_format_reason(exc)}") from exc
        program = app / entry.path
        if program.is_symlink() or not program.is_file():
            raise EntrypointNotDeclaredError(
                f"{request.bundle}: entrypoint {request.entrypoint!r} is not a file of the bundle"
            )
        roots = _export_roots(work / "session", session)
        view = self._view(work, app, roots)
        # specs/threat-model.md §5.3: the arguments pass unchanged; the view confines them.
        argv = [f"/{app.name}/{entry.path}", *request.args]
        if entry.module is not None:  # python -m MODULE, the app's root first on sys.path
            argv = ["-m", f"/{app.name}", entry.module, *request.args]
        if entry.runtime == "python" and zygote is not None and zygote.usable():
            # The interpreter started with the same flags before the run (zygote.py).
            status = self._spawn_and_pump(view, argv=argv, facts=facts, sink=sink, zygote=zygote)
        else:
            if entry.module is not None:
                argv = ["-c", RUN_MODULE, *argv[1:]]
            if entry.runtime == "python":
                # -B: no bytecode beside the plaintext; -E -s: no environment or user site
                # reaches the entrypoint; -u: unbuffered, so its lines stream as printed.
                argv = [self._python, "-B", "-E", "-s", "-u", *argv]
            status = self._spawn_and_pump(view, argv=argv, facts=facts, sink=sink)
        if self._timed_out:
            # specs/threat-model.md §5.5: no outputs; the caller's PrivateDir wipes.
            raise RunTimedOutError(f"run timed out after {self._limit:g} s")
        self._data.check_stream()
        cancelled = self._cancel.is_set()
        outputs: tuple[str, ...] = ()
        if facts.allow_files and not cancelled:
            self._data.check_files(roots["output"])
            outputs = _import_outputs(roots["output"], facts.max_files_size, session)
        withheld = not facts.allow_stderr
        if withheld and status != 0 and not cancelled:
            sink.stderr(generic_failure_message(status))
        return self._data.decorate(RunResult(status, cancelled, withheld, outputs))

    def _view(self, work: Path, app: Path, roots: Mapping[str, Path]) -> dict[str, object]:
        """The run's view (`enclave.runner.view`): what its private namespace holds."""
        root = work / "root"
        root.mkdir(mode=0o700)
        return {
            "root": str(root),
            "system": system_dirs(self._python),
            **{name: str(path) for name, path in roots.items()},
            "app": str(app),
            "app_at": f"/{app.name}",
            "data": self._data.mounts(),
        }

    def _spawn_and_pump(
        self,
        view: dict[str, object],
        *,
        argv: list[str],
        facts: BundleFacts,
        sink: RunSink,
        zygote: Zygote | None = None,
    ) -> int:
        with self._lock:
            if self._cancel.is_set():
                raise RunCancelledError("run cancelled")
            try:
                if zygote is not None:
                    env = {**_entry_env(self._python), **self._run_env}
                    self._proc = zygote.go(view, env, argv)
                    report = zygote.report  # closed by zygote.discard()
                else:
                    self._proc, report = self._launch(view, argv)
            except OSError as exc:
                raise RunSetupError(f"cannot start the entrypoint: {exc.strerror}") from exc
        proc = self._proc
        try:
            try:
                _await_view(report)
            finally:
                if zygote is None:
                    os.close(report)
            self._pump(proc, facts, sink)
        finally:
            with self._lock:
                self._kill_group()
                proc.wait()
                self._proc = None
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        code = proc.returncode
        return 128 - code if code < 0 else code

    def _launch(
        self, view: dict[str, object], argv: list[str]
    ) -> tuple[subprocess.Popen[bytes], int]:
        """Start `argv` in its view through `view.py`'s launcher; return it and its report."""
        report, report_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [
                    self._python,
                    "-B",
                    "-E",
                    "-s",
                    "-c",
                    run_view.launcher(),
                    run_view.dump({**view, "report": report_end}),
                    *argv,
                ],
                cwd="/",
                env={**_entry_env(self._python), **self._run_env},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(report_end,),
            )
        except BaseException:
            os.close(report)
            raise
        finally:
            os.close(report_end)
        return proc, report

    def _pump(self, proc: subprocess.Popen[bytes], facts: BundleFacts, sink: RunSink) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        forward: dict[int, Callable[[bytes], None] | None] = {
            proc.stdout.fileno(): sink.stdout if facts.allow_stdout else None,
            proc.stderr.fileno(): sink.stderr if facts.allow_stderr else None,
        }
        deadline: float | None = None
        limit = None if self._limit is None else time.monotonic() + self._limit
        with selectors.DefaultSelector() as sel:
            for fd in forward:
                sel.register(fd, selectors.EVENT_READ)
            while sel.get_map():
                if limit is not None and not self._timed_out and time.monotonic() >= limit:
                    self._timed_out = True  # specs/threat-model.md §5.5: as a cancel
                if self._cancel.is_set() or self._timed_out:
                    with self._lock:
                        self._kill_group()
                for key, _ in sel.select(timeout=0.1):
                    data = os.read(key.fd, _READ_CHUNK)
                    if not data:
                        sel.unregister(key.fd)
                        continue
                    target = forward[key.fd]
                    if target is not None:
                        target(data)
                if deadline is None and _has_exited(proc.pid):
                    # The leader is a zombie, so its group id cannot be reused yet: kill any
                    # children it left, then drain what they wrote, for a bounded time.
                    with self._lock:
                        self._kill_group()
                    deadline = time.monotonic() + _DRAIN_SECONDS
                if deadline is not None and time.monotonic() > deadline:
                    break

    def _kill_group(self) -> None:
        """Kill the entrypoint's process group (caller holds `_lock`; leader not reaped)."""
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


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
        except BaseException as exc:
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


def _await_view(report: int) -> None:
    """Wait until the run's view is built (end of file on `report`).

    Raises:
        RunSetupError: The view could not be built (its one line says why).
    """
    parts: list[bytes] = []
    while chunk := os.read(report, 4096):
        parts.append(chunk)
    if parts:
        reason = b"".join(parts).decode(errors="replace")
        raise RunSetupError(f"{reason} (specs/threat-model.md §5.3)")


#: System directories of the image the run sees read-only, when present.
_SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


def system_dirs(python: str) -> list[str]:
    """The image's directories bound read-only into a run's view: system and interpreter."""
    prefixes = {sys.prefix, sys.base_prefix, str(Path(python).parent.parent)}
    prefixes.add(str(Path(python).resolve().parent.parent))
    found: list[str] = []
    for path in [*_SYSTEM, *sorted(prefixes, key=len)]:
        if path in {"", "/"} or not os.path.lexists(path):
            continue
        if any(path == d or path.startswith(d + "/") for d in found if not Path(d).is_symlink()):
            continue
        found.append(path)
    return found


def _entry_env(python: str) -> dict[str, str]:
    """The entrypoint's whole environment (specs/threat-model.md §5.2).

    `PATH` starts with the interpreter's own directory, so `python`, `python3` (and `pip`'s
    console scripts) there are the entrypoint's interpreter, with its packages.
    """
    return {
        "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",  # noqa: S108 - the run's own tmpfs (enclave.runner.view)
        "TMPDIR": "/tmp",  # noqa: S108
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }


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


def effective_timeout(requested: float | None, ceiling: int | None) -> float | None:
    """The run's time limit: the smaller of the user's and the manifest's (None: no limit)."""
    limits = [t for t in (requested, ceiling) if t is not None and t > 0]
    return min(limits) if limits else None


def _drop_spare(spare: _Spare) -> None:
    if spare.zygote is not None:
        spare.zygote.discard()


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


def _format_reason(exc: BaseException) -> str:
    """A format error's text without its own `bundle: ` subject (the caller names the file)."""
    return str(exc).removeprefix("bundle: ")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _has_exited(pid: int) -> bool:
    """Whether `pid` has exited, without reaping it (its pid and group id stay reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int | str], ...]]:
    """Order semantic versions: numbers, then a release above any of its pre-releases.

    Raises:
        BundleInvalidError: `version` is not a semantic version.
    """
    match = _SEMVER.match(version)
    if match is None:
        raise BundleInvalidError(f"version {version!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    ids = tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, ids)


def header_digest(header: bytes) -> bytes:
    """SHA-256 of the signed header bytes: the identity of a bundle for the key cache."""
    return hashlib.sha256(header).digest()
