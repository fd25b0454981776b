# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""The plug points of the runner: what it needs from the bundle format, KMS and the session.

Each is a small interface so the runner is tested with in-memory fakes and wired to the real
pieces (package_format.bundle, enclave.kms_client, enclave.sessionfs) in `enclave.app`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from package_format.bundle.access import AppGrant, DataRule, DataTerms


@dataclass(frozen=True)
class EntryFacts:
    """One entrypoint the signed manifest declares (specs/bundle-format.md §5.2).

    Attributes:
        path: Its file in the bundle (relative, normalised).
        runtime: `python` (run with the session's Python) or `exec` (run directly).
        allow_args: Whether the user may pass arguments.
        module: Run as `python -m MODULE` (its file is `path`), or None.
    """

    path: str
    runtime: str = "python"
    allow_args: bool = True
    module: str | None = None


@dataclass(frozen=True)
class AccessFacts:
    """A verified bundle's kind, identity and access rules (specs/bundle-format.md §5.7).

    Attributes:
        kind: `app` or `data`.
        signer: The Ed25519 public key that signed the bundle.
        manifest_digest: SHA-256 of the canonical CBOR of its signed manifest.
        data: An app's `[[data]]` rules (package_format.bundle.access.DataRule).
        apps: A data bundle's `[[apps]]` grants (package_format.bundle.access.AppGrant).
        terms: A data bundle's output terms (package_format.bundle.access.DataTerms), or None.
        payload_size: Plaintext bytes of its files.
    """

    kind: str = "app"
    signer: bytes = b""
    manifest_digest: bytes = b""
    data: tuple[DataRule, ...] = ()
    apps: tuple[AppGrant, ...] = ()
    terms: DataTerms | None = None
    payload_size: int = 0


@dataclass(frozen=True)
class BundleFacts:
    """What the runner needs from a bundle header whose signature has been verified.

    Attributes:
        name: The bundle's name (manifest).
        version: Its semantic version, e.g. `1.0.0`.
        entrypoints: The declared entrypoints, by name and by path.
        allow_stdout: The owner lets the entrypoint's stdout reach the user.
        allow_stderr: The owner lets stderr (and so tracebacks) reach the user.
        allow_files: The owner lets files the entrypoint writes to /output/ reach the user.
        not_before: Start of validity, or None.
        expires: End of validity, or None.
        kms_key_id: The KMS key that wraps the data key.
        wrapped_key: The wrapped data key (KMS ciphertext blob).
        encryption_context: The KMS encryption context bound to the wrapped key.
        header_digest: A digest of the signed header bytes (key-cache identity).
        max_files_size: Most bytes of output files the user may get back.
        max_run_seconds: The owner's ceiling on a run's duration (None: none).
        env_allow: Environment variables the user may set for a run.
        env_defaults: The owner's values of some of them, used unless the user sets them.
        environment: SHA-256 (hex) of the app environment the manifest names, or None.
        manifest_digest: SHA-256 of the signed manifest's canonical CBOR (specs/receipts.md).
        signer: The Ed25519 public key whose signature verified (32 bytes).
    """

    name: str
    version: str
    entrypoints: Mapping[str, EntryFacts]
    allow_stdout: bool
    allow_stderr: bool
    allow_files: bool
    not_before: datetime | None
    expires: datetime | None
    kms_key_id: str
    wrapped_key: bytes
    encryption_context: Mapping[str, str] = field(default_factory=dict)
    header_digest: bytes = b""
    max_files_size: int = 1 << 30
    max_run_seconds: int | None = None
    env_allow: frozenset[str] = frozenset()
    env_defaults: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    access: AccessFacts = field(default_factory=AccessFacts)
    manifest_digest: bytes = b""
    signer: bytes = b""


@dataclass(frozen=True)
class BundleRef:
    """One bundle a run used, as the run record names it (specs/receipts.md).

    Attributes:
        role: `app` (the `-f` bundle) or `data` (a `--data` bundle, issue 22).
        name: The bundle's signed name.
        version: Its signed semantic version.
        digest: SHA-256 identifying the bundle (specs/receipts.md says over what).
        manifest_digest: SHA-256 of its signed manifest bytes.
        signer: The Ed25519 public key that signed it (32 bytes).
        mount: Where the run saw it (`/data/NAME`, say); empty for the app.
    """

    role: str
    name: str
    version: str
    digest: bytes
    manifest_digest: bytes
    signer: bytes
    mount: str = ""


@dataclass(frozen=True)
class OutputTerms:
    """The strictest output terms of a run's bundles, as enforced (issue 22).

    Attributes:
        max_output_bytes: Most bytes of output files the run may release (None: no limit).
        stdout: Whether stdout reaches the user.
        stderr: Whether stderr reaches the user.
        output_paths: Output paths (glob patterns under `/output/`) allowed; None: any.
    """

    max_output_bytes: int | None = None
    stdout: bool = True
    stderr: bool = True
    output_paths: tuple[str, ...] | None = None


class OpenedBundle(Protocol):
    """A bundle whose header parsed and whose signature verified against a pinned key."""

    @property
    def facts(self) -> BundleFacts:
        """The verified header's facts."""
        ...

    def extract(self, data_key: bytes, dest: Path) -> None:
        """Decrypt and authenticate the payload, writing the bundle's files under `dest`.

        Raises:
            package_format.errors.PackageFormatError: The key or the payload is wrong.
        """
        ...


@runtime_checkable
class PreparableBundle(Protocol):
    """An `OpenedBundle` that can lay out its files before the data key is known (optional).

    The runner calls `prepare(dest)` while the key release runs (specs/threat-model.md §5,
    step 4): only the signed file table is used, no plaintext. `discard()` removes it again
    when the run stops before `extract`.
    """

    def prepare(self, dest: Path) -> None:
        """Create the file table's directories and (pre-sized, empty) files under `dest`."""
        ...

    def discard(self) -> None:
        """Remove what `prepare` made."""
        ...


class BundleOpener(Protocol):
    """Parses a bundle and verifies its signature with the pinned owner keys."""

    def __call__(self, stream: IO[bytes], trusted_keys: Sequence[bytes]) -> OpenedBundle:
        """Open `stream`; raise `PackageFormatError` subclasses on any failure."""
        ...


class KeyRelease(Protocol):
    """Obtains a bundle's data key from KMS through attestation (fails closed)."""

    def __call__(
        self, kms_key_id: str, wrapped_key: bytes, encryption_context: Mapping[str, str]
    ) -> bytes:
        """Return the 32-byte data key; raise on any failure."""
        ...


class SessionFiles(Protocol):
    """The part of the session filesystem the runner uses."""

    def open_file(self, path: str) -> IO[bytes]:
        """Open a regular file of the session (e.g. `encrypted/app.nb`) for reading."""
        ...

    def export_dir(self, name: str, dest: Path) -> None:
        """Copy the session directory `name` (regular files and dirs only) into `dest`."""
        ...

    def clear_dir(self, name: str) -> None:
        """Remove everything under the session directory `name` (kept itself)."""
        ...

    def import_dir(self, src: Path, name: str) -> list[str]:
        """Copy the regular files under `src` into session directory `name`; list them."""
        ...


class RunSink(Protocol):
    """Receives a run's output as it comes; called from the thread that runs `Runner.run`."""

    def stdout(self, data: bytes) -> None:
        """Forward bytes of the entrypoint's stdout."""
        ...

    def stderr(self, data: bytes) -> None:
        """Forward bytes of the entrypoint's stderr (or the runner's generic message)."""
        ...


@dataclass(frozen=True)
class RunRequest:
    """One run as the user asked for it.

    Attributes:
        bundle: The bundle's path in the session filesystem (e.g. `encrypted/app.nb`).
        entrypoint: The entrypoint's name or path, as declared in the manifest.
        args: The arguments, already split (the client splits `-a` like a POSIX shell).
        timeout: The user's time limit in seconds (None: only the manifest's, if any).
        env: Environment variables the user sets (`NAME`, value), checked against the
            manifest's allow-list.
        data: Session paths of the data bundles joining the run (issue 22).
        nonce: The user's nonce for the run's receipt (specs/receipts.md), or None.
    """

    bundle: str
    entrypoint: str
    args: tuple[str, ...] = ()
    timeout: float | None = None
    env: tuple[tuple[str, str], ...] = ()
    data: tuple[str, ...] = ()
    nonce: bytes | None = None


@dataclass(frozen=True)
class RunResult:
    """How a run ended.

    Attributes:
        exit_status: The entrypoint's exit status; 128+N when killed by signal N.
        cancelled: The run was cancelled.
        stderr_withheld: The manifest withheld stderr (some may have been discarded).
        outputs: Session paths of the files copied back into `output/`.
        bundles: The bundles the run used, app first (specs/receipts.md).
        terms: The output terms the run enforced (issue 22), or None.
        receipt: The run's receipt, a COSE_Sign1 attestation document (specs/receipts.md).
    """

    exit_status: int
    cancelled: bool = False
    stderr_withheld: bool = False
    outputs: tuple[str, ...] = ()
    bundles: tuple[BundleRef, ...] = ()
    terms: OutputTerms | None = None
    receipt: bytes | None = None


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
