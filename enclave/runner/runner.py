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

Its parts: `_prestart` (the interpreter started before the run), `_process` (step 6: the
entrypoint's process and its output), `_workspace` (steps 4, 5 and 7: the private directory).
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from enclave.errors import EnclaveError
from enclave.plaintext import PrivateDir
from enclave.runner._prestart import Prestart, _drop_spare, _Spare
from enclave.runner._process import (
    EntryProcess,
    effective_timeout,
    generic_failure_message,
    system_dirs,
)
from enclave.runner._workspace import (
    _export_roots,
    _import_outputs,
    _layout,
    _reason,
    key_while_preparing,
)
from enclave.runner.api import (
    BundleFacts,
    BundleOpener,
    EntryFacts,
    KeyRelease,
    OpenedBundle,
    RunnerConfig,
    RunRequest,
    RunResult,
    RunSink,
    SessionFiles,
)
from enclave.runner.args import check_arguments, run_environment
from enclave.runner.data_bundles import DataRun, check_app_kind
from enclave.runner.data_checks import DataPolicy, open_data_run
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
    RunTimedOutError,
    UntrustedBundleSignerError,
)
from enclave.runner.zygote import RUN_MODULE, Zygote
from package_format.bundle.errors import UntrustedSignerError
from package_format.errors import PackageFormatError

if TYPE_CHECKING:
    from enclave.runner.record import ReceiptIssuer
# Re-exported where callers have imported them from (the parts live in private modules).
__all__ = [
    "Runner",
    "RunnerConfig",
    "effective_timeout",
    "generic_failure_message",
    "key_while_preparing",
    "system_dirs",
    "version_key",
]

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class Runner(Prestart, EntryProcess):
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


def _format_reason(exc: BaseException) -> str:
    """A format error's text without its own `bundle: ` subject (the caller names the file)."""
    return str(exc).removeprefix("bundle: ")


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
