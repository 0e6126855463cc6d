"""The storage contract on S3, against SeaweedFS and moto (see conftest.py)."""

from collections.abc import Iterator

import pytest

from durableflow.storage.base import Storage
from durableflow.storage.s3 import S3Storage
from durableflow.storage.urls import open_storage
from durableflow.testing import StorageContract
from durableflow.testing.s3server import S3Server

SIZES: dict[str, dict[str, int]] = {
    # SeaweedFS makes contended conditional writes wait in steps of about one second (a
    # per-object lock): fewer racers keep the races to a few seconds.
    "seaweedfs": {"race_threads": 8, "race_rounds": 2, "process_rounds": 2},
    # moto answers ~100 requests/s from a thread of this very process: smaller values and
    # fewer keys, still past the 1,000-key page boundary that matters on S3.
    "moto": {
        "many_keys": 1010,
        "large_value_size": 4 * 1024 * 1024,
        "atomic_value_size": 256 * 1024,
        "atomic_writes": 10,
        "race_threads": 8,
        "race_rounds": 2,
        "process_rounds": 2,
    },
}


class TestS3Storage(StorageContract):
    @pytest.fixture
    def storage(self, s3_server: S3Server, s3_url: str) -> Iterator[Storage]:
        for name, value in SIZES[s3_server.kind].items():
            setattr(self, name, value)
        storage = open_storage(s3_url)
        assert isinstance(storage, S3Storage)
        try:
            yield storage
        finally:
            storage.close()
