"""The SPOF audit (failover.doctor): each finding, with and without its cause."""

from __future__ import annotations

import json
import socket
import time
import uuid
from pathlib import Path

import pytest

from failover.backends.memory import MemoryBackend
from failover.config import Settings
from failover.doctor import DoctorReport, audit, audit_env, find_mount, probe_conditional_writes
from failover.errors import PermissionDeniedError

CLOUDS = ["s3://a?region=us-east-1", "az://b", "gs://c"]


EXPOSURE_NOTES = {"storage-overhead", "unencrypted"}  # info notes every plain config gets


def codes(report: DoctorReport, severity: str | None = None) -> list[str]:
    return [
        f.code
        for f in report.findings
        if (severity is None or f.severity == severity) and f.code not in EXPOSURE_NOTES
    ]


@pytest.fixture
def journal(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "journal.sqlite")


def offline(urls: list[str], journal: str, **options: object) -> DoctorReport:
    """Audit without touching the network."""
    return audit(Settings.from_urls(urls, journal=journal, **options), probe=False)


@pytest.fixture
def memory_urls() -> list[str]:
    run = uuid.uuid4().hex[:8]
    return [f"memory://doctor-{run}-{i}?name=m{i}" for i in range(3)]


# -- topology -----------------------------------------------------------------------------


def test_three_providers_with_majority_quorum_have_no_critical_finding(journal: str) -> None:
    report = offline(CLOUDS, journal)
    assert report.ok
    assert codes(report) == []


def test_a_single_backend_is_critical(journal: str) -> None:
    report = offline(["s3://only?region=us-east-1"], journal)
    assert codes(report, "critical") == ["single-backend"]
    assert "FAILOVER_BACKENDS" in report.critical[0].fix
    assert not report.ok


def test_all_backends_on_one_provider_is_critical(journal: str) -> None:
    report = offline(["s3://a", "s3://b", "s3://c"], journal)
    assert codes(report, "critical") == ["one-provider"]
    assert "AWS" in report.critical[0].message


def test_all_backends_on_this_host_is_critical(journal: str, tmp_path: Path) -> None:
    urls = [f"file://{tmp_path}/{name}" for name in "abc"]
    report = offline(urls, journal)
    assert codes(report, "critical") == ["one-provider"]
    assert "losing this machine" in report.critical[0].message


def test_all_backends_in_one_region_is_a_warning(journal: str) -> None:
    same = offline([f"s3://{b}?region=eu-west-1" for b in "abc"], journal)
    assert "one-region" in codes(same, "warning")
    spread = offline(
        ["s3://a?region=eu-west-1", "s3://b?region=us-east-1", "s3://c?region=eu-west-1"],
        journal,
    )
    assert "one-region" not in codes(spread)


def test_a_provider_holding_too_many_backends_for_the_quorum_is_critical(journal: str) -> None:
    report = offline(["s3://a", "s3://b", "gs://c"], journal)  # majority: 2 of 3
    assert codes(report, "critical") == ["domain-quorum"]
    finding = report.critical[0]
    assert "s3:a, s3:b" in finding.message
    assert "AWS" in finding.message
    assert "1 remains but a write needs 2" in finding.message


def test_a_region_holding_too_many_backends_is_critical(journal: str) -> None:
    # AWS holds 2 of 4 (a write needs 3: losing AWS leaves 2); gs and az hold one each.
    urls = ["s3://a?region=us-east-1", "s3://b?region=us-east-1", "gs://c", "az://d"]
    report = offline(urls, journal)
    assert codes(report, "critical") == ["domain-quorum"]
    # One finding for the members AWS and AWS us-east-1 share, not two.
    assert len(report.critical) == 1


def test_a_lower_quorum_survives_losing_a_provider(journal: str) -> None:
    report = offline(["s3://a", "s3://b", "gs://c"], journal, write_quorum=1)
    assert "domain-quorum" not in codes(report)
    assert codes(report, "warning") == ["single-ack"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"write_policy": "all"}, "write policy 'all'"),
        ({"write_policy": "quorum", "write_quorum": 3}, "write quorum 3 with 3 backends"),
    ],
)
def test_a_write_policy_needing_every_backend_is_critical(
    journal: str, options: dict[str, object], expected: str
) -> None:
    report = offline(CLOUDS, journal, **options)
    assert codes(report, "critical") == ["write-policy"]
    assert expected in report.critical[0].message
    assert "FAILOVER_WRITE_POLICY=quorum" in report.critical[0].fix


def test_two_backends_cannot_survive_a_loss_with_a_majority(journal: str) -> None:
    report = offline(["s3://a", "gs://b"], journal)  # majority of 2 is 2
    assert codes(report, "critical") == ["write-policy"]
    assert "third backend" in report.critical[0].fix


def test_write_policy_one_is_a_warning(journal: str) -> None:
    report = offline(CLOUDS, journal, write_policy="one")
    assert report.ok
    assert codes(report, "warning") == ["single-ack"]


def test_memory_backends_are_flagged_as_not_durable(journal: str, memory_urls: list[str]) -> None:
    report = offline([memory_urls[0], "s3://b", "gs://c"], journal)
    assert codes(report, "warning") == ["memory-backend"]
    assert report.findings[0].backend == "m0"


def test_a_custom_endpoint_is_noted(journal: str) -> None:
    report = offline(
        ["s3://a?endpoint_url=http://minio.internal:9000", "az://b", "gs://c"], journal
    )
    assert codes(report, "info") == ["custom-endpoint"]
    assert "minio.internal" in report.findings[0].message
    public = offline(
        ["s3://a?endpoint_url=https://s3.eu-west-1.amazonaws.com", "az://b", "gs://c"], journal
    )
    assert codes(public) == []


# -- the journal --------------------------------------------------------------------------


def test_a_journal_that_cannot_be_created_is_critical(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    report = offline(CLOUDS, str(blocker / "state" / "journal.sqlite"))
    assert codes(report, "critical") == ["journal-unwritable"]
    assert "FAILOVER_JOURNAL" in report.critical[0].fix


def test_a_journal_path_that_is_a_directory_is_critical(tmp_path: Path) -> None:
    report = offline(CLOUDS, str(tmp_path))
    assert codes(report, "critical") == ["journal-unwritable"]


def test_an_existing_writable_journal_is_fine_and_left_unchanged(tmp_path: Path) -> None:
    journal = tmp_path / "journal.sqlite"
    journal.write_bytes(b"existing")
    assert codes(offline(CLOUDS, str(journal))) == []
    assert journal.read_bytes() == b"existing"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite"]


def _mounts(tmp_path: Path, fstype: str) -> str:
    table = tmp_path / "mounts"
    table.write_text(
        f"/dev/vda / ext4 rw,relatime 0 0\nserver:/x {tmp_path}/mnt\\040dir {fstype} rw 0 0\n"
    )
    (tmp_path / "mnt dir").mkdir()
    return str(table)


@pytest.mark.parametrize(
    ("fstype", "expected"), [("tmpfs", "journal-volatile"), ("nfs4", "journal-network")]
)
def test_a_journal_on_tmpfs_or_nfs_is_a_warning(tmp_path: Path, fstype: str, expected: str) -> None:
    mounts = _mounts(tmp_path, fstype)
    journal = tmp_path / "mnt dir" / "failover" / "journal.sqlite"
    settings = Settings.from_urls(CLOUDS, journal=str(journal))
    report = audit(settings, probe=False, mounts_file=mounts)
    assert codes(report) == [expected]
    assert fstype in report.findings[0].message


def test_a_journal_on_the_real_tmpfs_is_a_warning() -> None:
    shm = Path("/dev/shm")
    mount = find_mount(str(shm))
    if mount is None or mount[1] != "tmpfs":
        pytest.skip("no tmpfs at /dev/shm here")
    report = offline(CLOUDS, str(shm / f"failover-doctor-{uuid.uuid4().hex}" / "j.sqlite"))
    assert codes(report) == ["journal-volatile"]


def test_find_mount_picks_the_longest_mount_point_and_unescapes(tmp_path: Path) -> None:
    mounts = _mounts(tmp_path, "tmpfs")
    assert find_mount(str(tmp_path / "mnt dir" / "x" / "y"), mounts_file=mounts) == (
        f"{tmp_path}/mnt dir",
        "tmpfs",
    )
    assert find_mount(str(tmp_path), mounts_file=mounts) == ("/", "ext4")
    assert find_mount("/", mounts_file=str(tmp_path / "missing")) is None


# -- network checks -----------------------------------------------------------------------


def test_probing_memory_backends_finds_nothing_more(journal: str, memory_urls: list[str]) -> None:
    report = audit(Settings.from_urls(memory_urls, journal=journal), probe=True)
    assert report.probed
    assert set(codes(report)) == {"one-provider", "memory-backend"}


def test_a_missing_directory_is_reported_without_creating_it(journal: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    urls = [f"file://{missing}?name=disk&create=false", f"file://{tmp_path}/new?name=new"]
    report = audit(Settings.from_urls(urls, journal=journal), probe=True)
    assert [f.backend for f in report.findings if f.code == "bucket-missing"] == ["disk"]
    assert not missing.exists()
    assert not (tmp_path / "new").exists()  # would be created by the backend, not the audit


def test_missing_azure_credentials_are_critical(
    journal: str, monkeypatch: pytest.MonkeyPatch, memory_urls: list[str]
) -> None:
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING", raising=False)
    report = audit(
        Settings.from_urls([memory_urls[0], "az://c"], journal=journal, write_quorum=1),
        probe=True,
    )
    finding = next(f for f in report.findings if f.code == "missing-credentials")
    assert finding.backend == "az:c"
    assert "AZURE_STORAGE_CONNECTION_STRING" in finding.fix


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.mark.usefixtures("no_aws_credentials")
def test_missing_aws_credentials_are_critical(journal: str, memory_urls: list[str]) -> None:
    urls = ["s3://bucket?region=us-east-1", *memory_urls[:2]]
    report = audit(Settings.from_urls(urls, journal=journal), probe=True)
    finding = next(f for f in report.findings if f.code == "missing-credentials")
    assert finding.backend == "s3:bucket"
    assert "AWS_ACCESS_KEY_ID" in finding.fix


@pytest.fixture
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


@pytest.mark.usefixtures("aws_test_credentials")
def test_an_endpoint_refusing_connections_is_unreachable(
    journal: str, memory_urls: list[str]
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    urls = [f"s3://b?region=us-east-1&endpoint_url=http://127.0.0.1:{port}", *memory_urls[:2]]
    report = audit(Settings.from_urls(urls, journal=journal), probe_timeout_seconds=2)
    finding = next(f for f in report.findings if f.code == "endpoint-unreachable")
    assert finding.backend == "s3:b"
    assert f"127.0.0.1:{port}" in finding.fix


@pytest.mark.usefixtures("aws_test_credentials")
def test_an_endpoint_that_never_answers_does_not_hang_the_audit(
    journal: str, memory_urls: list[str]
) -> None:
    # Accepts connections (the kernel's backlog) but never answers a request.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        urls = [f"s3://b?region=us-east-1&endpoint_url=http://127.0.0.1:{port}", *memory_urls[:2]]
        started = time.monotonic()
        report = audit(Settings.from_urls(urls, journal=journal), probe_timeout_seconds=1)
        elapsed = time.monotonic() - started
    # The 1 s probe timeout ends the probe; without it the audit would wait forever. The
    # bound is 10x that: only an audit the timeout did not end, not a loaded machine,
    # fails it.
    assert elapsed < 10, f"the audit took {elapsed:.1f} s"
    finding = next(f for f in report.findings if f.code == "endpoint-unreachable")
    assert finding.backend == "s3:b"


# -- the environment ----------------------------------------------------------------------


def test_an_unset_configuration_is_a_critical_finding_not_an_exception() -> None:
    report = audit_env({}, probe=False)
    assert codes(report) == ["config-invalid"]
    assert "FAILOVER_BACKENDS" in report.findings[0].message


def test_an_invalid_variable_is_named(journal: str) -> None:
    env = {
        "FAILOVER_BACKENDS": ",".join(CLOUDS),
        "FAILOVER_WRITE_POLICY": "most",
        "FAILOVER_JOURNAL": journal,
    }
    report = audit_env(env, probe=False)
    assert codes(report) == ["config-invalid"]
    assert "FAILOVER_WRITE_POLICY" in report.findings[0].message


def test_the_report_serialises_to_json(journal: str) -> None:
    env = {"FAILOVER_BACKENDS": "s3://only", "FAILOVER_JOURNAL": journal}
    data = json.loads(json.dumps(audit_env(env, probe=False).to_dict()))
    assert data["ok"] is False
    assert data["backends"] == ["s3:only"]
    assert data["findings"][0]["code"] == "single-backend"
    assert data["findings"][0]["severity"] == "critical"


# -- exposure and storage cost -------------------------------------------------------------


def _finding(report: DoctorReport, code: str):
    (finding,) = [f for f in report.findings if f.code == code]
    return finding


def test_replicas_report_overhead_and_what_a_breach_reveals(journal: str) -> None:
    report = offline(CLOUDS, journal)
    overhead = _finding(report, "storage-overhead")
    assert "3 full replicas" in overhead.message
    assert "3.00x" in overhead.message
    assert "survive losing 2" in overhead.message
    assert "every object, readable" in overhead.message
    assert _finding(report, "unencrypted").severity == "info"


def test_sensitive_data_without_encryption_is_critical(journal: str) -> None:
    report = audit(Settings.from_urls(CLOUDS, journal=journal), probe=False, sensitive=True)
    assert _finding(report, "unencrypted").severity == "critical"
    assert not report.ok


def test_encrypted_erasure_coding_reports_its_cost_and_reveals_nothing(journal: str) -> None:
    from failover.segmentation import generate_master_key

    settings = Settings.from_urls(
        CLOUDS,
        journal=journal,
        redundancy="erasure",
        encryption_key=generate_master_key(),
        write_quorum=2,  # k: writes go on with one cloud down (see the test below)
    )
    report = audit(settings, probe=False, sensitive=True)
    overhead = _finding(report, "storage-overhead")
    assert "erasure-coded 2-of-3" in overhead.message
    assert "1.50x" in overhead.message
    assert "survive losing 1" in overhead.message
    assert "nothing readable" in overhead.message
    assert "unencrypted" not in [f.code for f in report.findings]
    assert report.ok


def test_erasure_default_quorum_needs_every_cloud_of_three_and_says_how_to_choose(
    journal: str,
) -> None:
    settings = Settings.from_urls(CLOUDS, journal=journal, redundancy="erasure")
    assert settings.required_acks == 3  # k + 1 with k = 2
    finding = _finding(audit(settings, probe=False), "write-policy")
    assert finding.severity == "critical"
    assert "FAILOVER_WRITE_QUORUM=2" in finding.fix


class _IgnoresConditions(MemoryBackend):
    """An endpoint that accepts every write, conditional or not (last to arrive wins)."""

    def put(self, key, payload, *, content_type, metadata, if_absent=False, if_match=None):  # type: ignore[no-untyped-def]
        return super().put(key, payload, content_type=content_type, metadata=metadata)


class _ReadOnly(MemoryBackend):
    def put(self, key, payload, **_options):  # type: ignore[no-untyped-def]
        raise PermissionDeniedError("write refused", backend=self.name)


def test_conditional_write_probe_passes_an_endpoint_that_honours_them() -> None:
    backend = MemoryBackend("honest")
    assert probe_conditional_writes(backend) is None
    assert list(backend.list("")) == []  # the scratch object is gone


def test_conditional_write_probe_reports_an_endpoint_that_ignores_them() -> None:
    backend = _IgnoresConditions("lax")
    finding = probe_conditional_writes(backend)
    assert finding is not None
    assert (finding.code, finding.severity, finding.backend) == (
        "conditional-writes",
        "critical",
        "lax",
    )
    assert "create-only write" in finding.message
    assert "replaced revision" in finding.message
    assert list(backend.list("")) == []


def test_conditional_write_probe_that_cannot_write_is_a_warning() -> None:
    finding = probe_conditional_writes(_ReadOnly("ro"))
    assert finding is not None
    assert (finding.code, finding.severity) == ("probe-write-failed", "warning")
    assert "PermissionDeniedError" in finding.message
