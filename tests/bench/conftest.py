import pytest
from bench_fakes import FakeZoo


@pytest.fixture
def fake_zoo():
    return FakeZoo()
