import pytest

from app.core.exceptions import NotAuthenticatedError
from app.core.security import authenticate
from octopi_core.settings import Settings


def test_without_keys_clients_are_named_by_address():
    assert authenticate(Settings(redis_url="r://"), None, "10.0.0.5") == "ip:10.0.0.5"


def test_keys_are_checked_and_name_the_client():
    settings = Settings(redis_url="r://", api_keys="alpha-key,beta-key")
    alpha = authenticate(settings, "Bearer alpha-key", "1.1.1.1")
    assert alpha.startswith("key:") and "alpha" not in alpha
    assert (
        alpha
        == authenticate(settings, "bearer alpha-key", "2.2.2.2")
        != authenticate(settings, "Bearer beta-key", None)
    )
    for header in (None, "", "Bearer", "Bearer wrong", "Basic alpha-key", "alpha-key"):
        with pytest.raises(NotAuthenticatedError):
            authenticate(settings, header, "1.1.1.1")
