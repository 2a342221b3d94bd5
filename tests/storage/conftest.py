import pytest

from streamserver.storage.crypto import KeyRing


class FakeClock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def keyring() -> KeyRing:
    return KeyRing.parse(f"k1:{KeyRing.generate_key()}")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# A real PostgreSQL for the metadata-in-PostgreSQL variants of the store tests
# (one server per run, shared with tests/cluster).
from tests.cluster.postgres import pg_url, postgres  # noqa: E402, F401
