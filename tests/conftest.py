import pytest

from musicvid_core.bootstrap import build_services
from musicvid_core.settings import Settings


@pytest.fixture
def settings(tmp_path, monkeypatch):
    # Isolate every test from the user's ~/.musicvid and environment.
    for var in [v for v in __import__("os").environ if v.startswith("MUSICVID_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("MUSICVID_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MUSICVID_USER", "tester")
    monkeypatch.setenv("MUSICVID_RETRY_TIME_SCALE", "0")
    return Settings()


@pytest.fixture
def services(settings):
    return build_services(settings)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_video(media_dir):
    """6 s, 320x180, 25 fps, three scenes (cuts at 2.0 and 4.0 s), quiet stereo tone."""
    from musicvid_core.lab.samples import make_video

    return make_video(media_dir / "short.mp4", (2, 2, 2), audio="tone")


@pytest.fixture
def aws(monkeypatch):
    """moto's in-memory AWS (S3, DynamoDB, Step Functions, IAM) with fake credentials; yields boto3."""
    moto = pytest.importorskip("moto")
    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_SESSION_TOKEN", "testing"), ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(var, value)
    with moto.mock_aws():
        import boto3

        yield boto3
