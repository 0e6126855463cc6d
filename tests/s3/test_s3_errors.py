"""S3Storage failures: at open time, with clear messages, never leaking credentials.

Bad credentials are tested on SeaweedFS only: moto accepts any credentials (it does not
check signatures), so there is nothing to refuse there.
"""

import subprocess
import sys
import time
import uuid
from typing import Any

import botocore.exceptions
import pytest

from durableflow.errors import StorageFullError, StorageUnavailableError, StorageURLError
from durableflow.storage import s3 as s3_module
from durableflow.storage.s3 import S3Storage
from durableflow.storage.urls import open_storage
from durableflow.testing.s3server import S3Server, free_ports, start_moto

SECRET = "wrong-secret-must-not-leak"
KEY_ID = "AKIAWRONGKEYID000000"


def _client_error(code: str, status: int, retries: int = 0) -> botocore.exceptions.ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"message for {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": retries},
    }
    return botocore.exceptions.ClientError(response, "PutObject")


# -- at open time -------------------------------------------------------------------------------


def test_missing_bucket_fails_at_open_naming_bucket_and_endpoint(s3_server: S3Server) -> None:
    with pytest.raises(StorageURLError) as caught:
        open_storage(s3_server.url("p", bucket="no-such-bucket-here"))
    message = str(caught.value)
    assert "no-such-bucket-here" in message
    assert s3_server.endpoint_url in message
    assert "does not exist" in message


def test_unreachable_endpoint_fails_at_open_quickly() -> None:
    [closed_port] = free_ports(1)
    endpoint = f"http://127.0.0.1:{closed_port}"
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        open_storage(f"s3://some-bucket/p?endpoint_url={endpoint}")
    assert time.monotonic() - started < 10  # bounded retries, not a hang
    assert endpoint in str(caught.value)
    assert "some-bucket" in str(caught.value)


def test_bad_credentials_fail_at_open_without_leaking_them(seaweedfs_server: S3Server) -> None:
    with pytest.raises(StorageUnavailableError) as caught:
        S3Storage(
            seaweedfs_server.bucket,
            endpoint_url=seaweedfs_server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=KEY_ID,
            aws_secret_access_key=SECRET,
        )
    message = str(caught.value)
    assert seaweedfs_server.bucket in message
    assert seaweedfs_server.endpoint_url in message
    assert "credentials" in message
    assert SECRET not in message
    assert KEY_ID not in message


def test_bad_credentials_from_the_environment_fail_at_open(
    seaweedfs_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    with pytest.raises(StorageUnavailableError, match="refused"):
        open_storage(seaweedfs_server.url("p"))


def test_no_credentials_at_all_is_a_configuration_error(
    seaweedfs_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(StorageURLError, match="no AWS credentials"):
        open_storage(seaweedfs_server.url("p"))


def test_credentials_never_appear_in_url_or_repr(s3_server: S3Server) -> None:
    storage = S3Storage(
        s3_server.bucket,
        "p",
        endpoint_url=s3_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=s3_server.access_key_id,
        aws_secret_access_key=s3_server.secret_access_key,
    )
    try:
        for text in (storage.url, repr(storage), str(vars(storage).get("_options"))):
            assert s3_server.secret_access_key not in text
            assert s3_server.access_key_id not in text
    finally:
        storage.close()


@pytest.mark.parametrize(
    "url",
    [
        f"s3://{KEY_ID}:{SECRET}@bucket/p",
        f"s3://bucket/p?endpoint_url=http://{KEY_ID}:{SECRET}@127.0.0.1:9000",
        f"s3://bucket/p?aws_secret_access_key={SECRET}",
    ],
)
def test_credentials_in_the_url_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(StorageURLError) as caught:
        open_storage(url)
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("s3://bucket/p?colour=red", "unknown s3 storage parameter"),
        ("s3://bucket/p?addressing_style=sideways", "addressing_style"),
        ("s3://bucket/p?max_attempts=lots", "max_attempts"),
        ("s3://bucket/p?max_attempts=0", "must be > 0"),
        ("s3:///p", "malformed s3 storage URL"),
        ("s3:/bucket", "expected s3://bucket"),
        ("s3://bu/p", "invalid S3 bucket name"),
        ("s3://bucket/a//b", "invalid S3 key prefix"),
        ("s3://bucket/a/../b", "invalid S3 key prefix"),
        ("s3://bucket/p?endpoint_url=ftp://host", "endpoint_url must be"),
    ],
)
def test_bad_urls_raise_storage_url_error(url: str, match: str) -> None:
    with pytest.raises(StorageURLError, match=match):
        open_storage(url)


def test_missing_boto3_gives_the_install_hint() -> None:
    code = (
        "import sys; sys.modules['boto3'] = None\n"
        "from durableflow.storage.urls import open_storage\n"
        "from durableflow.errors import StorageURLError\n"
        "try:\n    open_storage('s3://bucket/p')\n"
        "except StorageURLError as err:\n    print(err)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "pip install '.[s3]'" in result.stdout


# -- the URL ----------------------------------------------------------------------------------


def test_url_round_trips_with_non_default_parameters_only(s3_server: S3Server) -> None:
    url = (
        f"s3://{s3_server.bucket}/a%20b/c?endpoint_url={s3_server.endpoint_url}"
        "&region_name=us-east-1&max_attempts=2&read_timeout=60"
    )
    storage = open_storage(url)
    assert isinstance(storage, S3Storage)
    assert storage.prefix == "a b/c"
    assert "max_attempts=2" in storage.url
    assert "read_timeout" not in storage.url  # the default is left out
    assert "addressing_style" not in storage.url  # path is implied by endpoint_url
    reopened = open_storage(storage.url)
    assert reopened.url == storage.url
    storage.put("k", b"v")
    assert reopened.get("k") == b"v"


def test_pickling_reopens_from_the_url(s3_url: str) -> None:
    import pickle

    storage = open_storage(s3_url)
    storage.put("k", b"v")
    copy = pickle.loads(pickle.dumps(storage))
    assert copy.url == storage.url
    assert copy.get("k") == b"v"


# -- errors after open ------------------------------------------------------------------------


def test_operations_on_a_deleted_bucket_raise_with_the_key(s3_server: S3Server) -> None:
    bucket = f"gone-{uuid.uuid4().hex[:12]}"
    s3_server.create_bucket(bucket)
    storage = open_storage(s3_server.url("p", bucket=bucket))
    s3_server.client().delete_bucket(Bucket=bucket)
    for call in (
        lambda: storage.get("some/key"),
        lambda: storage.put("some/key", b"v"),
        lambda: storage.create("some/key", b"v"),
        lambda: storage.swap("some/key", b"", b"v"),
    ):
        with pytest.raises(StorageUnavailableError) as caught:
            call()
        assert caught.value.key == "some/key"
        assert bucket in str(caught.value)
    with pytest.raises(StorageUnavailableError):
        storage.list("some/")


def test_a_server_that_goes_away_gives_storage_unavailable_in_bounded_time() -> None:
    server = start_moto(bucket="short-lived")
    storage = open_storage(server.url("p") + "&max_attempts=2&connect_timeout=1")
    storage.put("k", b"v")
    server.stop()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as caught:
        storage.get("k")
    assert time.monotonic() - started < 10
    assert caught.value.key == "k"
    assert server.endpoint_url in str(caught.value)


def test_delete_prefix_deletes_in_batches(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.put_many([(f"batch/{i:03d}", b"") for i in range(25)] + [("keep/x", b"")])
    calls = []
    real = storage._client.delete_objects
    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 10)
    monkeypatch.setattr(
        storage._client, "delete_objects", lambda **kw: calls.append(kw) or real(**kw)
    )
    storage.delete_prefix("batch/")
    assert [len(c["Delete"]["Objects"]) for c in calls] == [10, 10, 5]
    assert storage.list("") == ["keep/x"]


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("QuotaExceeded", 403, StorageFullError),
        ("InsufficientStorage", 507, StorageFullError),
        ("AccessDenied", 403, StorageUnavailableError),
        ("SlowDown", 503, StorageUnavailableError),
        ("InternalError", 500, StorageUnavailableError),
    ],
)
def test_error_mapping_keeps_the_key(
    s3_url: str, code: str, status: int, error: type[Exception]
) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    translated = storage._translate(_client_error(code, status), "write", "a/key")
    assert type(translated) is error
    assert translated.key == "a/key"
    assert "a/key" in str(translated)
    if status == 403 and error is StorageUnavailableError:
        assert "message for" not in str(translated)  # the server's text may quote the key id


# -- conditional writes: lost replies and conflicts -------------------------------------------


class _ScriptedPut:
    """Wraps put_object: runs the real call and/or raises scripted errors, in order."""

    def __init__(self, real: Any, script: list[tuple[bool, Exception | None]]) -> None:
        self.real, self.script, self.calls = real, list(script), 0

    def __call__(self, **kwargs: Any) -> Any:
        self.calls += 1
        run_real, error = self.script.pop(0) if self.script else (True, None)
        result = self.real(**kwargs) if run_real else None
        if error is not None:
            raise error
        return result


def _script(storage: S3Storage, monkeypatch: pytest.MonkeyPatch, script: Any) -> _ScriptedPut:
    scripted = _ScriptedPut(storage._client.put_object, script)
    monkeypatch.setattr(storage._client, "put_object", scripted)
    return scripted


def test_create_whose_reply_was_lost_and_retried_reports_its_win(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    # The write lands, its reply is lost, botocore's retry meets our own object: 412.
    _script(storage, monkeypatch, [(True, _client_error("PreconditionFailed", 412, retries=1))])
    assert storage.create("lost/reply", b"mine") is True
    assert storage.get("lost/reply") == b"mine"


def test_retried_412_over_someone_elses_value_is_a_loss(
    s3_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.put("lost/other", b"theirs")
    _script(storage, monkeypatch, [(False, _client_error("PreconditionFailed", 412, retries=1))])
    assert storage.create("lost/other", b"mine") is False


def test_conflict_409_is_retried_then_decided(s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    conflict = _client_error("ConditionalRequestConflict", 409)
    scripted = _script(storage, monkeypatch, [(False, conflict), (False, conflict)])
    assert storage.create("conflict/k", b"v") is True  # third attempt is real and wins
    assert scripted.calls == 3
    scripted = _script(storage, monkeypatch, [(False, conflict)] * 10)
    assert storage.create("conflict/k2", b"v") is False
    assert storage.get("conflict/k2") is None


@pytest.mark.parametrize(("code", "status"), [("NoSuchKey", 404), ("PreconditionFailed", 412)])
def test_swap_losing_its_condition_returns_false(
    s3_url: str, monkeypatch: pytest.MonkeyPatch, code: str, status: int
) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.put("swap/k", b"old")
    _script(storage, monkeypatch, [(False, _client_error(code, status))])
    assert storage.swap("swap/k", b"old", b"new") is False
    assert storage.get("swap/k") == b"old"


def test_if_match_on_a_missing_key_loses_on_either_server(s3_server: S3Server) -> None:
    """AWS and moto answer 404, SeaweedFS 412: both are a lost condition."""
    client = s3_server.client()
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.put_object(
            Bucket=s3_server.bucket, Key=f"nokey-{uuid.uuid4().hex}", Body=b"x", IfMatch='"abc"'
        )
    status = caught.value.response["ResponseMetadata"]["HTTPStatusCode"]
    assert status == {"moto": 404, "seaweedfs": 412}[s3_server.kind]


# -- no credentials at all (issue 10, item 3) ----------------------------------------------------


def _no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe


def test_missing_credentials_say_so_and_where_boto3_looks(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    _no_credentials_anywhere(monkeypatch, tmp_path)
    with pytest.raises(StorageURLError) as caught:
        open_storage(s3_server.url("p"))
    message = str(caught.value)
    assert "None" not in message  # was: "cannot open None in bucket ..."
    assert "no AWS credentials found" in message
    assert "AWS_ACCESS_KEY_ID" in message and "~/.aws/credentials" in message
    assert "profile_name" in message
    assert s3_server.bucket in message


def test_a_missing_bucket_is_no_storage_for_read_only_opening(s3_server: S3Server) -> None:
    url = s3_server.url("p", bucket="no-such-bucket-here")
    with pytest.raises(StorageURLError, match="no durableflow storage at s3://no-such-bucket"):
        open_storage(url, create=False)
    assert open_storage(s3_server.url("fresh-prefix"), create=False).list("") == []
