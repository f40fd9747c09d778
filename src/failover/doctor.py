"""The single-point-of-failure audit behind ``failover doctor``.

:func:`audit` looks at a configuration (and, unless told not to, at the backends it
names) for the ways one failure could still take the application down or lose data:

=========================  ========  ====================================================
finding                    severity  when
=========================  ========  ====================================================
``config-invalid``         critical  the ``FAILOVER_*`` variables do not parse (URLs included)
``single-backend``         critical  only one backend is configured
``one-provider``           critical  every backend is on one provider (or this host)
``domain-quorum``          critical  one provider's or region's outage leaves fewer
                                     backends than a write needs
``write-policy``           critical  writes need every backend (``all``, or a quorum
                                     equal to their number): one loss stops writes
``one-region``             warning   every backend is in the same region
``single-ack``             warning   a write is acknowledged by one replica only
``journal-unwritable``     critical  the repair journal cannot be created or written
``journal-volatile``       warning   the journal is on tmpfs/ramfs (lost at reboot)
``journal-network``        warning   the journal is on a network filesystem
``memory-backend``         warning   a ``memory://`` backend keeps nothing past exit
``missing-credentials``    critical  no credentials for a cloud backend
``missing-sdk``            critical  the provider SDK extra is not installed
``backend-invalid``        critical  a backend cannot be built from its URL
``credentials-rejected``   critical  the provider refused the credentials
``bucket-missing``         critical  the bucket/container/directory does not exist
``endpoint-unreachable``   critical  the endpoint did not answer a one-page listing
``conditional-writes``     critical  the endpoint ignores create-only / if-match
                                     writes (a probe in a scratch prefix), so last
                                     writer wins would become last to arrive
``probe-write-failed``     warning   the scratch write of that probe failed
``custom-endpoint``        info      a backend talks to a custom endpoint (emulator,
                                     S3-compatible store): its provider is assumed from
                                     the URL scheme
=========================  ========  ====================================================

Providers and regions come from the backend URLs: the scheme names the provider
(``s3`` AWS, ``az`` Azure, ``gs`` Google Cloud; ``file`` and ``memory`` this host), and a
``region=`` parameter names the region. The network checks (credentials, endpoint) run
for all backends in parallel, each bounded by ``probe_timeout_seconds``, so an endpoint
that never answers cannot make the audit hang.

Example:
    >>> report = audit(Settings.from_urls(["memory://a"]), probe=False)
    >>> report.ok, report.critical[0].code
    (False, 'single-backend')
"""

from __future__ import annotations

import contextlib
import os
import queue
import secrets
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from failover.backends import Backend, BackendURL, from_url, parse_backend_url
from failover.config import ENV_PREFIX, Settings
from failover.errors import (
    BucketNotFoundError,
    ConfigError,
    FailoverError,
    PermissionDeniedError,
    PreconditionFailedError,
    TransientError,
)
from failover.payload import Payload

__all__ = [
    "PROBE_PREFIX",
    "PROVIDERS",
    "DoctorReport",
    "Finding",
    "Severity",
    "audit",
    "audit_env",
    "find_mount",
    "probe_conditional_writes",
]

#: Where :func:`probe_conditional_writes` writes (and then deletes) its scratch object.
PROBE_PREFIX = "failover-doctor-probe/"

#: How bad a finding is: ``critical`` findings make ``failover doctor`` exit 1.
Severity = Literal["critical", "warning", "info"]

#: Provider of each URL scheme (``file`` and ``memory`` live on this host).
PROVIDERS: Mapping[str, str] = {
    "s3": "AWS",
    "az": "Azure",
    "gs": "Google Cloud",
    "file": "this host",
    "memory": "this host",
}

_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
_VOLATILE_FS = frozenset({"tmpfs", "ramfs"})
_NETWORK_FS = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p"})
# Hosts of the public clouds' own endpoints: any other endpoint is "custom".
_CLOUD_HOSTS = ("amazonaws.com", "windows.net", "googleapis.com")
_ENDPOINT_PARAMS = ("endpoint_url", "account_url", "endpoint")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) the audit found.

    Attributes:
        code: stable identifier (``"single-backend"``, ...; see the module docs).
        severity: ``"critical"``, ``"warning"`` or ``"info"``.
        message: what is wrong, naming the backend or setting.
        fix: what to change.
        backend: the backend concerned, if only one is.
    """

    code: str
    severity: Severity
    message: str
    fix: str
    backend: str | None = None


@dataclass(frozen=True, slots=True)
class DoctorReport:
    """Everything :func:`audit` found, most severe first.

    Attributes:
        backends: backend names, in priority order (empty if the configuration did not
            parse).
        findings: the findings, critical first.
        probed: whether the network checks ran.
    """

    backends: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = field(default_factory=tuple)
    probed: bool = False

    @property
    def critical(self) -> tuple[Finding, ...]:
        """The critical findings."""
        return tuple(f for f in self.findings if f.severity == "critical")

    @property
    def ok(self) -> bool:
        """True when there is no critical finding."""
        return not self.critical

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (what ``failover doctor --json`` prints)."""
        return {
            "backends": list(self.backends),
            "probed": self.probed,
            "ok": self.ok,
            "findings": [asdict(f) for f in self.findings],
        }


def audit_env(
    environ: Mapping[str, str] | None = None,
    *,
    probe: bool = True,
    probe_timeout_seconds: float = 5.0,
    sensitive: bool = False,
) -> DoctorReport:
    """Audit the configuration in ``FAILOVER_*`` environment variables.

    A configuration that does not parse is itself a critical finding (never an
    exception), so the audit always produces a report.

    Args:
        environ: the environment (default: ``os.environ``).
        probe: also check credentials and endpoints over the network.
        probe_timeout_seconds: the longest any backend's network check may take.
        sensitive: the data must not be readable by any one provider (encryption off
            is then critical).
    """
    try:
        settings = Settings.from_env(environ)
    except ConfigError as exc:
        return DoctorReport(
            findings=(
                Finding(
                    "config-invalid",
                    "critical",
                    str(exc),
                    f"set the {ENV_PREFIX}* variables as docs/configuration.md describes",
                ),
            )
        )
    return audit(
        settings, probe=probe, probe_timeout_seconds=probe_timeout_seconds, sensitive=sensitive
    )


def audit(
    settings: Settings,
    *,
    probe: bool = True,
    probe_timeout_seconds: float = 5.0,
    mounts_file: str = "/proc/mounts",
    sensitive: bool = False,
) -> DoctorReport:
    """Look for single points of failure in ``settings`` (and the backends it names).

    Args:
        settings: the configuration to audit.
        probe: also build each backend and list one page of it, to check credentials
            and that the endpoint answers (bounded by ``probe_timeout_seconds``).
        probe_timeout_seconds: the longest any backend's network check may take; the
            checks run in parallel.
        mounts_file: the mount table used to tell which filesystem holds the journal.
        sensitive: the data must not be readable by any one provider: encryption off
            is then a critical finding rather than a note.

    Returns:
        The findings, most severe first.
    """
    urls: list[BackendURL] = []
    sources: dict[str, str] = {}
    findings: list[Finding] = []
    for raw in settings.backends:
        try:
            parsed = parse_backend_url(raw)
        except ConfigError as exc:
            findings.append(Finding("backend-invalid", "critical", str(exc), "fix the backend URL"))
        else:
            urls.append(parsed)
            sources[parsed.name] = raw
    findings += _topology(settings, urls)
    findings += _journal(settings.journal_path, mounts_file=mounts_file)
    for url in urls:
        findings += _static_backend(url)
    if probe:
        findings += _probe_all(urls, sources, timeout_seconds=probe_timeout_seconds)
    findings += _exposure(settings, len(urls), sensitive=sensitive)
    findings.sort(key=lambda f: _SEVERITY_ORDER[f.severity])
    return DoctorReport(
        backends=tuple(u.name for u in urls), findings=tuple(findings), probed=probe
    )


# -- exposure and cost: what one cloud's loss or breach means, at what storage price ----


def _exposure(settings: Settings, count: int, *, sensitive: bool) -> list[Finding]:
    if count == 0:
        return []
    encrypted = settings.encryption_key is not None
    if settings.redundancy == "erasure":
        k = settings.erasure_k
        overhead, survives = count / k, count - k
        layout = f"erasure-coded {k}-of-{count}"
        exposed = (
            "nothing readable (encrypted shares)"
            if encrypted
            else "part of every object in the clear (erasure shares are not encryption)"
        )
    else:
        overhead, survives = float(count), count - 1
        layout = f"{count} full replicas"
        exposed = "nothing readable (encrypted)" if encrypted else "every object, readable"
    findings = [
        Finding(
            "storage-overhead",
            "info",
            f"{layout}: stores {overhead:.2f}x the data written; reads survive losing "
            f"{survives} backend(s); a breach of one cloud reveals {exposed}",
            f"{ENV_PREFIX}REDUNDANCY=erasure stores n/k instead of n copies"
            if settings.redundancy != "erasure"
            else "no change needed",
        )
    ]
    if not encrypted:
        findings.append(
            Finding(
                "unencrypted",
                "critical" if sensitive else "info",
                "client-side encryption is off: each provider (and anyone who breaches one) "
                "can read the objects it stores",
                f"set {ENV_PREFIX}ENCRYPTION_KEY (a base64 256-bit key, kept outside the "
                "clouds it protects) and install failover[segmentation]",
            )
        )
    return findings


# -- topology: how many failure domains, and does a write survive losing one? ---------


def _provider(url: BackendURL) -> str:
    return PROVIDERS.get(url.scheme, url.scheme)


def _region(url: BackendURL) -> str | None:
    if url.scheme in ("file", "memory"):
        return "this host"
    return url.params.get("region") or None


def _topology(settings: Settings, urls: list[BackendURL]) -> list[Finding]:
    count = len(urls)
    if count == 0:
        return []
    if count == 1:
        return [
            Finding(
                "single-backend",
                "critical",
                f"only one backend ({urls[0].name}): when it is down, every read and write "
                "fails, and losing it loses the data",
                f"add backends on other clouds: {ENV_PREFIX}BACKENDS=s3://…,az://…,gs://…",
            )
        ]
    findings: list[Finding] = []
    required = settings.required_acks
    providers = {_provider(u) for u in urls}
    if len(providers) == 1:
        provider = providers.pop()
        outage = (
            "losing this machine (or its disk)"
            if provider == PROVIDERS["file"]
            else f"one {provider} outage"
        )
        findings.append(
            Finding(
                "one-provider",
                "critical",
                f"all {count} backends are on {provider}: {outage} takes every replica "
                "down at once",
                "put at least one replica on another provider (s3://, az://, gs://)",
            )
        )
    elif required < count:
        # (When every backend must acknowledge, the write-policy finding says it all.)
        findings += _domain_quorum(urls, required)
    regions = [_region(u) for u in urls]
    if None not in regions and len(set(regions)) == 1 and regions[0] != "this host":
        findings.append(
            Finding(
                "one-region",
                "warning",
                f"all {count} backends are in region {regions[0]}: a regional outage takes "
                "them all down",
                "place replicas in different regions",
            )
        )
    findings += _write_policy(settings, count, required)
    return findings


def _domain_quorum(urls: list[BackendURL], required: int) -> list[Finding]:
    """Losing one provider (or one provider's region) must leave enough for a write."""
    count = len(urls)
    domains: dict[str, list[str]] = {}
    for url in urls:
        domains.setdefault(_provider(url), []).append(url.name)
        region = _region(url)
        if region is not None and url.scheme not in ("file", "memory"):
            domains.setdefault(f"{_provider(url)} {region}", []).append(url.name)
    findings: list[Finding] = []
    reported: set[frozenset[str]] = set()
    for domain, members in sorted(domains.items(), key=lambda item: -len(item[1])):
        left = count - len(members)
        if left >= required or frozenset(members) in reported:
            continue
        reported.add(frozenset(members))
        findings.append(
            Finding(
                "domain-quorum",
                "critical",
                f"{len(members)} of {count} backends ({', '.join(members)}) are on {domain}: "
                f"if it fails, {left} {'remains' if left == 1 else 'remain'} but a write "
                f"needs {required}, so writes fail",
                "spread the backends so no provider or region holds more than "
                f"{count - required} of them, or lower {ENV_PREFIX}WRITE_QUORUM",
            )
        )
    return findings


def _write_policy(settings: Settings, count: int, required: int) -> list[Finding]:
    if required >= count:
        what = (
            "write policy 'all'"
            if settings.write_policy == "all"
            else f"write quorum {required} with {count} backends"
        )
        if settings.redundancy == "erasure" and settings.write_policy != "all":
            k = settings.erasure_k
            fix = (
                f"add a backend, or accept writes with k={k} acknowledgements "
                f"({ENV_PREFIX}WRITE_QUORUM={k}: each exposed to losing one acknowledging "
                "cloud until repair completes it)"
            )
        elif count // 2 + 1 < count:
            fix = (
                f"{ENV_PREFIX}WRITE_POLICY=quorum with the default majority "
                f"({count // 2 + 1} of {count})"
            )
        else:
            fix = "add a third backend on another provider (a majority of 3 is 2)"
        return [
            Finding(
                "write-policy",
                "critical",
                f"{what} needs every backend to acknowledge: while any one is down, "
                "every write fails",
                fix,
            )
        ]
    if required == 1:
        return [
            Finding(
                "single-ack",
                "warning",
                "a write is acknowledged once one replica has it: if that cloud is lost "
                "before the others catch up, the write is lost",
                f"{ENV_PREFIX}WRITE_POLICY=quorum (a majority acknowledges every write)",
            )
        ]
    return []


# -- the journal ----------------------------------------------------------------------


def find_mount(path: str, *, mounts_file: str = "/proc/mounts") -> tuple[str, str] | None:
    """Return ``(mount point, filesystem type)`` of the filesystem holding ``path``.

    Args:
        path: any path; its nearest existing ancestor is resolved.
        mounts_file: the mount table (Linux ``/proc/mounts`` format).

    Returns:
        The longest mount point containing the path, or ``None`` when the mount table
        cannot be read (not Linux).
    """
    try:
        text = Path(mounts_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    resolved = os.path.realpath(_existing_ancestor(Path(path)))
    best: tuple[str, str] | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = _unescape_mount(fields[1])
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > len(best[0])):
            best = (mount_point, fields[2])
    return best


def _unescape_mount(text: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(escaped, plain)
    return text


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _writable(journal: Path) -> str | None:
    """Why the journal could not be written there, or None if it could."""
    if journal.exists():
        if journal.is_dir():
            return f"{journal} is a directory"
        try:
            with journal.open("ab"):
                pass
        except OSError as exc:
            return f"cannot open {journal} for writing ({exc.strerror or exc})"
        directory = journal.parent
    else:
        directory = _existing_ancestor(journal.parent)
        if not directory.is_dir():
            return f"{directory} is not a directory, so {journal.parent} cannot be created"
    # SQLite in WAL mode creates -wal and -shm files beside the journal: the directory
    # (or the ancestor its missing parents would be created in) must take new files.
    try:
        with tempfile.NamedTemporaryFile(prefix=".failover-doctor-", dir=directory):
            pass
    except OSError as exc:
        return f"cannot create files in {directory} ({exc.strerror or exc})"
    return None


def _journal(path: str, *, mounts_file: str) -> list[Finding]:
    journal = Path(path).expanduser()
    problem = _writable(journal)
    if problem is not None:
        return [
            Finding(
                "journal-unwritable",
                "critical",
                f"the repair journal {journal} cannot be written: {problem}; writes that a "
                "replica missed would not be remembered for repair",
                f"set {ENV_PREFIX}JOURNAL to a writable path on persistent local disk",
            )
        ]
    mount = find_mount(str(journal), mounts_file=mounts_file)
    if mount is None:
        return []
    mount_point, fstype = mount
    if fstype in _VOLATILE_FS:
        return [
            Finding(
                "journal-volatile",
                "warning",
                f"the repair journal {journal} is on {fstype} ({mount_point}): a reboot "
                "forgets which replicas still need repair",
                f"set {ENV_PREFIX}JOURNAL to a path on persistent disk "
                "(default: $XDG_STATE_HOME/failover/journal.sqlite)",
            )
        ]
    if fstype in _NETWORK_FS:
        return [
            Finding(
                "journal-network",
                "warning",
                f"the repair journal {journal} is on a network filesystem ({fstype}); "
                "SQLite's locking is not reliable there",
                f"set {ENV_PREFIX}JOURNAL to a path on local disk",
            )
        ]
    return []


# -- each backend ---------------------------------------------------------------------


def _custom_endpoint(url: BackendURL) -> str | None:
    for param in _ENDPOINT_PARAMS:
        value = url.params.get(param)
        if not value:
            continue
        host = (urlsplit(value).hostname or "").lower()
        if not any(host == cloud or host.endswith("." + cloud) for cloud in _CLOUD_HOSTS):
            return host or value
    return None


def _static_backend(url: BackendURL) -> list[Finding]:
    findings: list[Finding] = []
    if url.scheme == "memory":
        findings.append(
            Finding(
                "memory-backend",
                "warning",
                f"{url.name} is a memory:// backend: its data lives in this process only "
                "and is gone when it exits",
                "use memory:// for tests and demos; use s3://, az://, gs:// or file:// "
                "for data you keep",
                backend=url.name,
            )
        )
    host = _custom_endpoint(url)
    if host is not None:
        findings.append(
            Finding(
                "custom-endpoint",
                "info",
                f"{url.name} uses a custom endpoint ({host}): an emulator or a compatible "
                f"store; its provider is taken to be {_provider(url)} from the URL scheme",
                "none needed if that is intended; make sure it is not on the same "
                "machine or site as another replica",
                backend=url.name,
            )
        )
    return findings


def _probe_all(
    urls: Iterable[BackendURL], sources: Mapping[str, str], *, timeout_seconds: float
) -> list[Finding]:
    """Check every backend in parallel; a check that overruns counts as unreachable."""
    results: queue.Queue[tuple[str, list[Finding]]] = queue.Queue()
    pending: dict[str, BackendURL] = {}
    for url in urls:
        pending[url.name] = url
        # Daemon threads: a check stuck on a dead endpoint must not keep the process
        # alive after the report is printed.
        threading.Thread(
            target=lambda u=url: results.put((u.name, _probe(u, sources[u.name], timeout_seconds))),
            name=f"failover-doctor-{url.name}",
            daemon=True,
        ).start()
    findings: list[Finding] = []
    give_up = time.monotonic() + timeout_seconds + 0.5
    while pending:
        try:
            name, found = results.get(timeout=max(0.0, give_up - time.monotonic()))
        except queue.Empty:
            break
        pending.pop(name, None)
        findings += found
    for name, url in pending.items():
        findings.append(
            Finding(
                "endpoint-unreachable",
                "critical",
                f"{name} did not answer within {timeout_seconds:g} s",
                _reach_fix(url),
                backend=name,
            )
        )
    return findings


def _probe(url: BackendURL, source: str, timeout_seconds: float) -> list[Finding]:
    """Build the backend and list one page: credentials present, accepted, answering."""
    if url.scheme == "file":
        # Checked without building the backend, which would create the directory.
        return _local_directory(url)
    missing = _missing_credentials(url)
    if missing is not None:
        return [missing]
    try:
        backend = from_url(source, timeout_seconds=timeout_seconds, max_connections=2)
    except ConfigError as exc:
        return [_config_finding(url, exc)]
    except (FailoverError, OSError) as exc:
        return [_listing_finding(url, exc)]
    try:
        next(iter(backend.list("")), None)
    except (FailoverError, OSError) as exc:
        with contextlib.suppress(Exception):
            backend.close()
        return [_listing_finding(url, exc)]
    try:
        found = probe_conditional_writes(backend)
    finally:
        with contextlib.suppress(Exception):
            backend.close()
    return [] if found is None else [found]


def probe_conditional_writes(backend: Backend) -> Finding | None:
    """Check that ``backend`` honours conditional writes, on a scratch object.

    Under :data:`PROBE_PREFIX`, a create-only write of an existing key and a write
    conditional on a revision that was since replaced must both be refused. Last writer
    wins rests on these conditions: an endpoint (an S3-compatible store, a proxy) that
    ignores them silently turns it into last to arrive. The scratch object is deleted
    afterwards.

    Returns:
        A critical ``conditional-writes`` finding when a condition was ignored, a
        ``probe-write-failed`` warning when the scratch writes failed, else None.
    """
    key = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    ignored: list[str] = []

    revisions = iter(range(1_000))

    def write(**condition: Any) -> str | None:
        # Different bytes each time: S3's etag is the content's MD5, so a revision with
        # the same bytes would carry the same etag and pass as unchanged.
        body = f"failover doctor probe, revision {next(revisions)}".encode()
        with Payload.from_bytes(body) as payload:
            stored = backend.put(key, payload, content_type="text/plain", metadata={}, **condition)
        return stored.etag

    try:
        replaced = write(if_absent=True)
        write()  # a new revision: the first one's etag is stale now
        checks: list[tuple[str, dict[str, Any]]] = [
            ("a create-only write of an existing key", {"if_absent": True})
        ]
        if replaced is not None:
            checks.append(("a write conditional on a replaced revision", {"if_match": replaced}))
        for label, condition in checks:
            try:
                write(**condition)
            except PreconditionFailedError:
                continue
            ignored.append(label)
    except (FailoverError, OSError) as exc:
        return Finding(
            "probe-write-failed",
            "warning",
            f"{backend.name}: the conditional-write probe could not write under "
            f"{PROBE_PREFIX!r} ({type(exc).__name__}: {exc})",
            "grant write access there, or run with --no-probe",
            backend=backend.name,
        )
    finally:
        with contextlib.suppress(Exception):
            backend.delete(key)
    if not ignored:
        return None
    return Finding(
        "conditional-writes",
        "critical",
        f"{backend.name} accepted {' and '.join(ignored)}: concurrent writers and repair "
        "would overwrite newer versions with older ones",
        "use an endpoint that honours If-None-Match / If-Match (or its provider's "
        "equivalent) for this backend",
        backend=backend.name,
    )


def _local_directory(url: BackendURL) -> list[Finding]:
    root = Path(url.bucket)
    creatable = url.params.get("create", "true").lower() not in ("false", "0", "no")
    if root.is_dir():
        problem = None if os.access(root, os.W_OK) else f"{root} is not writable"
    elif root.exists():
        problem = f"{root} is not a directory"
    elif not creatable:
        problem = f"{root} does not exist (and the URL says create=false)"
    else:
        ancestor = _existing_ancestor(root)
        writable = ancestor.is_dir() and os.access(ancestor, os.W_OK)
        problem = None if writable else f"{root} does not exist and cannot be created"
    if problem is None:
        return []
    return [
        Finding(
            "bucket-missing",
            "critical",
            f"{url.name}: {problem}",
            "create the directory (writable by this user) or correct the path",
            backend=url.name,
        )
    ]


def _listing_finding(url: BackendURL, exc: Exception) -> Finding:
    if isinstance(exc, PermissionDeniedError):
        code, message, fix = (
            "credentials-rejected",
            f"{url.name} refused the credentials: {exc}",
            _credentials_fix(url),
        )
    elif isinstance(exc, BucketNotFoundError):
        code, message, fix = (
            "bucket-missing",
            f"{url.name}: {exc}",
            f"create {url.bucket!r} or correct its name in the URL",
        )
    elif isinstance(exc, (TransientError, OSError)):
        code, message, fix = (
            "endpoint-unreachable",
            f"{url.name} did not answer: {exc}",
            _reach_fix(url),
        )
    else:
        code, message, fix = (
            "endpoint-unreachable",
            f"{url.name} refused a listing: {exc}",
            "check the bucket name and the permission to list it",
        )
    return Finding(code, "critical", message, fix, backend=url.name)


def _config_finding(url: BackendURL, exc: ConfigError) -> Finding:
    text = str(exc) if url.name in str(exc) else f"{url.name}: {exc}"
    lowered = text.lower()
    if "sdk" in lowered or "pip install" in lowered:
        return Finding("missing-sdk", "critical", text, _sdk_fix(url), backend=url.name)
    if "credential" in lowered:
        return Finding(
            "missing-credentials", "critical", text, _credentials_fix(url), backend=url.name
        )
    return Finding("backend-invalid", "critical", text, "fix the backend URL", backend=url.name)


def _missing_credentials(url: BackendURL) -> Finding | None:
    """The credential checks that need no network (the probe catches the rest)."""
    if url.scheme != "s3":
        # Azure and Google backends check their credentials when they are built.
        return None
    try:
        import botocore.session  # noqa: PLC0415 - optional extra
    except ImportError:
        return None  # reported as missing-sdk when the backend is built
    if botocore.session.get_session().get_credentials() is not None:
        return None
    return Finding(
        "missing-credentials",
        "critical",
        f"{url.name}: no AWS credentials found (environment, shared files, profile, instance role)",
        _credentials_fix(url),
        backend=url.name,
    )


_CREDENTIAL_FIXES: Mapping[str, str] = {
    "s3": "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an "
    "IAM role",
    "az": "set AZURE_STORAGE_CONNECTION_STRING, or add account_url=… to the URL with "
    "AZURE_STORAGE_KEY or an identity DefaultAzureCredential finds",
    "gs": "set GOOGLE_APPLICATION_CREDENTIALS to a service-account key file, or run "
    "`gcloud auth application-default login`",
}
_SDK_EXTRAS: Mapping[str, str] = {"s3": "aws", "az": "azure", "gs": "gcp"}


def _credentials_fix(url: BackendURL) -> str:
    return _CREDENTIAL_FIXES.get(url.scheme, "check the backend's credentials")


def _sdk_fix(url: BackendURL) -> str:
    extra = _SDK_EXTRAS.get(url.scheme, "all")
    return f"pip install 'failover[{extra}]'"


def _reach_fix(url: BackendURL) -> str:
    endpoint = next((url.params[p] for p in _ENDPOINT_PARAMS if url.params.get(p)), None)
    if endpoint:
        return f"check that {endpoint} is up and reachable from here (DNS, firewall, proxy)"
    return "check network access to the provider from here (DNS, firewall, proxy)"
