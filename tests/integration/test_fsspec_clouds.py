"""fsspec's own abstract test suite over the three emulators (moto, azurite, fake-gcs).

The same wiring as ``tests/unit/test_fsspec.py`` (a fixtures class deriving from
``AbstractFixtures``, one test class per mixin), with three fresh buckets per test on the
session's emulators instead of memory:// stores.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fsspec.tests.abstract.copy import AbstractCopyTests
from fsspec.tests.abstract.get import AbstractGetTests
from fsspec.tests.abstract.open import AbstractOpenTests
from fsspec.tests.abstract.pipe import AbstractPipeTests
from fsspec.tests.abstract.put import AbstractPutTests

from failover.fsspec import FailoverFileSystem
from failover.testing.emulators import EmulatorProcess, create_bucket

from ..conftest import unique_bucket
from ..unit.test_fsspec import FailoverFixtures, _close_fs, _open_fs

pytestmark = pytest.mark.integration


class CloudFixtures(FailoverFixtures):
    """fsspec's abstract fixtures over a fresh bucket on each emulator."""

    @pytest.fixture
    def fs(  # type: ignore[override]
        self,
        moto_server: EmulatorProcess,
        azurite_server: EmulatorProcess,
        fake_gcs_server: EmulatorProcess,
    ) -> Iterator[FailoverFileSystem]:
        urls = [
            create_bucket(moto_server, unique_bucket("s3"), name="aws"),
            create_bucket(azurite_server, unique_bucket("az"), name="azure"),
            create_bucket(fake_gcs_server, unique_bucket("gcs"), name="gcp"),
        ]
        filesystem = _open_fs(urls)
        yield filesystem
        _close_fs(filesystem)


class TestCloudCopy(AbstractCopyTests, CloudFixtures):  # type: ignore[misc]
    pass


class TestCloudGet(AbstractGetTests, CloudFixtures):  # type: ignore[misc]
    pass


class TestCloudPut(AbstractPutTests, CloudFixtures):  # type: ignore[misc]
    pass


class TestCloudPipe(AbstractPipeTests, CloudFixtures):  # type: ignore[misc]
    pass


class TestCloudOpen(AbstractOpenTests, CloudFixtures):  # type: ignore[misc]
    pass
