import pytest

from tests.gateway.fakes import Setup


@pytest.fixture
async def setup():
    return Setup()
