# SPDX-License-Identifier: Apache-2.0
# Copyright the nitro-bundles authors
"""Wiring for `enclave-server serve`: image config + NSM + KMS client + runner + server.

`make_runner(config_path, workdir, fs)` builds the `Runner` the RPC server hands runs to
(enclave.runner.interface); `serve(...)` runs the whole server on a Unix socket or vsock.

What the image fixes (measured in PCR2): `enclave.json` (pinned owner keys, minimum bundle
versions, KMS region). What the launcher supplies through the environment (on Nitro, the
EIF's own `env`; locally, the launcher):

| variable | meaning |
|---|---|
| `NB_NSM` | `device` (/dev/nsm) or `simulated`; default: device when /dev/nsm exists |
| `NB_SIM_PKI_DIR` | simulator PKI directory (local only) |
| `NB_SIM_PCRS` | JSON `{"0": hex, ...}` the simulator reports (local only) |
| `NB_SIM_DEBUG` | `1`: report zero PCR0/1/2/8 like a debug-mode enclave |
| `NB_KMS_TARGET` | `unix:/path` or `vsock:CID:PORT`: where the KMS relay leads |
| `NB_KMS_ENDPOINT` | a KMS URL used directly instead (tests, hosts with network) |
| `NB_KEY_CACHE_SECONDS` | keep released data keys in enclave memory this long (default 300) |
| `NB_PRESTART` | `0`: start each entrypoint's interpreter at run time, not beforehand (default 1) |
| `NB_RECEIPTS` | `0`: no run receipts and no running input hashes (benchmarks only; default 1) |
| `AWS_ACCESS_KEY_ID` ... | credentials for KMS (never in the image) |
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from enclave.credentials import CredentialStore, HostCredentials
from enclave.errors import InputError, UsageError
from enclave.runner.api import KeyRelease
from enclave.runner.errors import KeyReleaseError
from enclave.runner.record import issuer_from_nsm
from enclave.runner.runner import Runner, RunnerConfig
from enclave.sessionfs import SessionFs

NSM_DEVICE = Path("/dev/nsm")
DEFAULT_KEY_CACHE_SECONDS = 300.0
_MAX_CONFIG_BYTES = 1 << 20


class ImageConfigError(InputError):
    """The image's enclave.json is missing, malformed or pins no owner key."""


@dataclass(frozen=True)
class ImageConfig:
    """What the image pins (specs/enclave-image.md: rootfs/etc/nitro-bundles/enclave.json)."""

    owner_keys: tuple[bytes, ...]
    min_versions: Mapping[str, str] = field(default_factory=dict)
    kms_region: str | None = None
    #: App environments (enclave-image.md §5.5): requirements' SHA-256 hex to interpreter;
    #: None for an image built without a rootfs (local backend only: no check).
    environments: Mapping[str, str] | None = None


def load_image_config(path: Path) -> ImageConfig:
    """Read enclave.json: owner keys (hex or key-file text), minimum versions, KMS region.

    Raises:
        ImageConfigError: The file is unreadable, malformed or has no owner key.
    """
    try:
        raw = path.read_bytes()[: _MAX_CONFIG_BYTES + 1]
        doc = json.loads(raw) if len(raw) <= _MAX_CONFIG_BYTES else None
    except (OSError, ValueError) as exc:
        raise ImageConfigError(f"{path}: cannot read the image config: {exc}") from exc
    if not isinstance(doc, dict):
        raise ImageConfigError(f"{path}: the image config must be a json object")
    keys = _owner_keys(doc.get("owner_keys"), path)
    versions = doc.get("min_bundle_versions", {})
    if not isinstance(versions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        raise ImageConfigError(f"{path}: min_bundle_versions must map names to versions")
    region = doc.get("kms_region")
    if region is not None and not isinstance(region, str):
        raise ImageConfigError(f"{path}: kms_region must be a string")
    return ImageConfig(keys, dict(versions), region, _environments(doc.get("environments"), path))


def _environments(value: object, path: Path) -> dict[str, str] | None:
    """`environments`: `[{"sha256": hex, "python": "/opt/nitro-bundles/app/<id>/..."}]`."""
    if value is None:  # built without a rootfs, or before environments: no check
        return None
    bad = ImageConfigError(f"{path}: environments must list {{sha256, python}} objects")
    if not isinstance(value, list):
        raise bad
    out: dict[str, str] = {}
    for item in value:
        if not isinstance(item, dict):
            raise bad
        digest, python = item.get("sha256"), item.get("python")
        if not isinstance(digest, str) or not isinstance(python, str) or not python.startswith("/"):
            raise bad
        out[digest] = python
    return out


def _owner_keys(value: object, path: Path) -> tuple[bytes, ...]:
    from package_format.bundle import load_public_key  # noqa: PLC0415
    from package_format.errors import PackageFormatError  # noqa: PLC0415

    if not isinstance(value, list) or not value:
        raise ImageConfigError(f"{path}: owner_keys must be a non-empty list")
    keys = []
    for item in value:
        text = item.get("public_key") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise ImageConfigError(f"{path}: an owner key must be a string")
        try:
            key = load_public_key(text) if "\n" in text.strip() else bytes.fromhex(text)
        except (ValueError, PackageFormatError) as exc:
            raise ImageConfigError(f"{path}: bad owner key: {exc}") from exc
        if len(key) != 32:
            raise ImageConfigError(f"{path}: an owner key must be 32 bytes")
        keys.append(key)
    return tuple(keys)


def make_nsm(environ: Mapping[str, str]) -> Any:
    """The NSM this enclave uses: /dev/nsm, or the simulator the launcher configured.

    Raises:
        UsageError: The simulator is asked for without its PKI or PCRs.
    """
    kind = environ.get("NB_NSM") or ("device" if NSM_DEVICE.exists() else "simulated")
    if kind == "device":
        from enclave.nsm.device import NsmDevice  # noqa: PLC0415

        device = NsmDevice()
        device.open()
        return device
    if kind != "simulated":
        raise UsageError(f"NB_NSM={kind!r}: expected device or simulated")
    from enclave.nsm.simulator import SimulatedNsm, load_sim_pki  # noqa: PLC0415

    pki_dir = environ.get("NB_SIM_PKI_DIR")
    pcrs_text = environ.get("NB_SIM_PCRS")
    if not pki_dir or not pcrs_text:
        raise UsageError("simulated nsm: NB_SIM_PKI_DIR and NB_SIM_PCRS are required")
    try:
        pcrs = {int(k): bytes.fromhex(v) for k, v in json.loads(pcrs_text).items()}
    except (ValueError, AttributeError) as exc:
        raise UsageError(f"NB_SIM_PCRS: not a json map of hex pcrs: {exc}") from exc
    debug = environ.get("NB_SIM_DEBUG") == "1"
    return SimulatedNsm(load_sim_pki(Path(pki_dir)), pcrs, debug=debug)


def credentials_from_env(environ: Mapping[str, str]) -> HostCredentials | None:
    """Credentials a local launcher put in the server's environment, if any."""
    access = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not access or not secret:
        return None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    return HostCredentials(access, secret, environ.get("AWS_SESSION_TOKEN") or None, region)


def make_key_release(
    environ: Mapping[str, str], nsm: Any, region: str | None, store: CredentialStore
) -> KeyRelease:
    """KMS Decrypt with attestation through the relay (or a direct endpoint).

    Credentials are read from `store` at each release (specs/rpc-protocol.md §7.5), so the
    host's latest ones are used; the image's `kms_region` wins over the host's region.
    """
    from enclave.kms_client import KmsClientConfig, KmsCredentials, KmsRecipientClient  # noqa: PLC0415

    endpoint = environ.get("NB_KMS_ENDPOINT")
    target = environ.get("NB_KMS_TARGET")
    if endpoint is None and target:
        from enclave.forwarder import LoopbackForwarder  # noqa: PLC0415

        endpoint = LoopbackForwarder(target).endpoint_url
    clients: dict[HostCredentials, KmsRecipientClient] = {}
    lock = threading.Lock()

    def client_for(creds: HostCredentials) -> KmsRecipientClient:
        chosen_region = region or creds.region
        if not chosen_region:
            raise KeyReleaseError("kms: no region was given to the enclave")
        with lock:
            if creds not in clients:
                clients.clear()  # only the newest credentials are kept
                config = KmsClientConfig(
                    region=chosen_region,
                    credentials=KmsCredentials(
                        creds.access_key_id, creds.secret_access_key, creds.session_token
                    ),
                    endpoint_url=endpoint,
                )
                clients[creds] = KmsRecipientClient(config, nsm)
            return clients[creds]

    def release(
        kms_key_id: str, wrapped_key: bytes, encryption_context: Mapping[str, str]
    ) -> bytes:
        creds = store.get()
        if creds is None:
            raise KeyReleaseError("kms: no credentials were given to the enclave")
        return client_for(creds).decrypt(wrapped_key, encryption_context, kms_key_id)

    return release


def make_runner(
    config_path: Path,
    workdir: Path,
    fs: SessionFs,
    environ: Mapping[str, str] | None = None,
    store: CredentialStore | None = None,
    *,
    nsm: Any = None,
) -> Runner:
    """Build the server's runner from the image config and the launcher's environment.

    Raises:
        ImageConfigError: enclave.json is unusable.
        UsageError: The environment names an unusable NSM or KMS target.
    """
    env = os.environ if environ is None else environ
    store = store if store is not None else CredentialStore(credentials_from_env(env))
    image = load_image_config(config_path)
    nsm = nsm if nsm is not None else make_nsm(env)
    cache = float(env.get("NB_KEY_CACHE_SECONDS", DEFAULT_KEY_CACHE_SECONDS))
    config = RunnerConfig(
        trusted_keys=image.owner_keys,
        work_base=workdir,
        min_versions=image.min_versions,
        key_cache_seconds=cache,
        prestart=env.get("NB_PRESTART", "1") != "0",
        environments=reachable_environments(image.environments),
        **_default_python(image),
    )
    release = make_key_release(env, nsm, image.kms_region, store)
    return Runner(config, _open_bundle, release, receipts=issuer_from_nsm(fs, nsm, env))


def reachable_environments(environments: Mapping[str, str] | None) -> dict[str, str] | None:
    """The environments, each interpreter missing from this file system replaced by ours.

    Inside the image (Nitro, QEMU, the local backend in the image's rootfs) every path is
    there. A server started outside the image's rootfs (the local backend on the host's
    Python) keeps the check by digest but runs entrypoints with its own interpreter.
    """
    if environments is None:
        return None
    return {d: p if os.path.exists(p) else sys.executable for d, p in environments.items()}  # noqa: PTH110


def _default_python(image: ImageConfig) -> dict[str, str]:
    """The interpreter of a bundle naming no environment (bundle-format.md §5.8).

    The image's one app environment when it has exactly one; otherwise the server's own
    interpreter (the default `RunnerConfig.python`), as before environments existed.
    """
    if image.environments is not None and len(image.environments) == 1:
        python = next(iter(image.environments.values()))
        if os.path.exists(python):  # noqa: PTH110 - see reachable_environments
            return {"python": python}
    return {}


def _open_bundle(stream: IO[bytes], trusted_keys: Sequence[bytes]) -> Any:
    from enclave.runner.bundle import open_bundle  # noqa: PLC0415

    return open_bundle(stream, trusted_keys)


@dataclass(frozen=True)
class ServeOptions:
    """How `enclave serve` runs (specs/rpc-protocol.md §11; the image's `cmd` gives them).

    Attributes:
        unix: listen on this Unix socket (local backend), or
        vsock_port: listen on this vsock port, any CID (QEMU and Nitro; the image says 5005).
        config_path: the image's enclave.json; None serves the session filesystem only and
            refuses every run (NOT_ALLOWED).
        workdir: private RAM-backed directory where runs decrypt.
        memory_budget: most bytes the session filesystem holds (ENOSPC past it).
        environ: the launcher's environment (NSM, KMS target, credentials); None: os.environ.
        ready: called with the address (`unix:PATH`, `vsock:any:PORT`) once the socket
            listens; the CLI says so on stderr.
    """

    unix: Path | None = None
    vsock_port: int | None = None
    config_path: Path | None = None
    workdir: Path = Path("/run/nitro-bundles")
    memory_budget: int = 2 << 30
    environ: Mapping[str, str] | None = None
    ready: Callable[[str], None] | None = None


def serve(opts: ServeOptions) -> None:
    """Serve the RPC protocol until SIGTERM/SIGINT (then close connections and return).

    The one entry of the enclave server: the `enclave serve` CLI, the image's `cmd` and the
    local backend all come here.

    Raises:
        UsageError: Neither or both of `unix` and `vsock_port` are given.
        ImageConfigError: enclave.json is unusable.
        ExternalError: The socket cannot be bound.
    """
    import signal  # noqa: PLC0415

    from enclave.runner.interface import UnavailableRunner  # noqa: PLC0415
    from enclave.server import Attester, EnclaveServer  # noqa: PLC0415
    from enclave.sessionfs import SessionLimits  # noqa: PLC0415
    from enclave.transport import SocketServer, listen_unix, listen_vsock  # noqa: PLC0415

    if (opts.unix is None) == (opts.vsock_port is None):
        raise UsageError("serve: give exactly one of a unix socket path or a vsock port")
    env = os.environ if opts.environ is None else opts.environ
    receipts = env.get("NB_RECEIPTS", "1") != "0"  # running input hashes (specs/receipts.md §4.1)
    fs = SessionFs(SessionLimits(budget_bytes=opts.memory_budget), digests=receipts)
    store = CredentialStore(credentials_from_env(env))
    runner: Runner | UnavailableRunner = UnavailableRunner()
    attester: Attester | None = None
    if opts.config_path is not None:
        opts.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        nsm = make_nsm(env)
        runner = make_runner(opts.config_path, opts.workdir, fs, env, store, nsm=nsm)

        def attest(nonce: bytes | None, user_data: bytes | None) -> bytes:
            return bytes(nsm.attestation(user_data=user_data, nonce=nonce))

        attester = attest

    if opts.unix is not None:
        listener, where = listen_unix(opts.unix), f"unix:{opts.unix}"
    else:
        listener, where = listen_vsock(opts.vsock_port or 0), f"vsock:any:{opts.vsock_port}"
    server = SocketServer(EnclaveServer(fs, runner, credentials=store, attester=attester), listener)

    def stop(_signum: int, _frame: object) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if isinstance(runner, Runner):
        runner.warm()
    if opts.ready is not None:
        opts.ready(where)
    try:
        server.serve_forever()
    finally:
        if isinstance(runner, Runner):
            runner.close()
