import pytest

from octopi_core.exceptions import CheckpointError
from octopi_core.registry import Registry
from worker.model_cache import ModelCache


@pytest.fixture
def registry(model_registry, tmp_path):
    """A private copy of the test registry, so changing its champion affects no other test."""
    source = Registry(model_registry.root)
    copy = Registry(tmp_path / "registry")
    for version in (model_registry.champion, model_registry.quiet):
        copy.add(source.resolve(version))
    copy.set_champion(model_registry.champion)
    return copy


def test_models_are_loaded_once_and_evicted_least_recently_used(registry, model_registry):
    cache = ModelCache(registry, device="cpu", capacity=1)
    champion = cache.get(None)
    assert champion.version == model_registry.champion
    assert cache.get(model_registry.champion) is champion
    quiet = cache.get(model_registry.quiet)
    assert cache.loaded_versions() == [model_registry.quiet]
    assert cache.get(model_registry.quiet) is quiet
    with pytest.raises(CheckpointError):
        cache.get("octopi-unet-ffffffffffff")


def test_a_new_champion_is_loaded_between_jobs(registry, model_registry):
    cache = ModelCache(registry, device="cpu", capacity=2)
    assert cache.refresh_champion() == model_registry.champion
    assert cache.loaded_versions() == [model_registry.champion]
    registry.set_champion(model_registry.quiet, reason="test")
    assert cache.refresh_champion() == model_registry.quiet
    assert cache.loaded_versions() == [model_registry.champion, model_registry.quiet]
    with pytest.raises(ValueError):
        ModelCache(registry, capacity=0)


def test_the_precision_setting_reaches_every_loaded_model(registry, model_registry, monkeypatch):
    from octopi_core.settings import Settings

    monkeypatch.setenv("OCTOPI_AMP", "false")
    settings = Settings(redis_url="r://", registry_uri=registry.root, device="cpu", model_cache_size=2)
    assert settings.amp is False and Settings(redis_url="r://", amp=True).amp is True
    cache = ModelCache.from_settings(settings)
    assert cache.capacity == 2 and cache.device == "cpu"
    assert not cache.get(None).amp and not cache.get(model_registry.quiet).amp
    assert ModelCache(registry, device="cpu").get(None).amp  # on by default
