import pytest
import torch

from octopi_core.exceptions import CheckpointError
from octopi_core.model import build_model, save_checkpoint
from octopi_core.model_config import ModelConfig, default_checkpoint_dir, read_config
from octopi_core.registry import SHIPPED_VERSION_ALIAS, Registry, ServedModel


def _checkpoint(path, seed):
    torch.manual_seed(seed)
    return save_checkpoint(
        build_model(), ModelConfig(scores={"validation": {"weighted_f_beta": seed / 10}}), path
    )


def test_add_is_immutable_and_idempotent(tmp_path):
    registry = Registry(tmp_path / "registry")
    assert registry.versions() == [] and registry.champion_version() is None
    saved = _checkpoint(tmp_path / "a", 1)
    assert registry.add(tmp_path / "a") == saved.version
    assert registry.add(tmp_path / "a") == saved.version  # same weights: nothing changes
    assert registry.versions() == [saved.version]
    # A different checkpoint claiming the same version is refused.
    other = _checkpoint(tmp_path / "b", 2)
    (tmp_path / "b" / "config.json").write_text(
        other.model_copy(update={"version": saved.version}).model_dump_json()
    )
    with pytest.raises(CheckpointError, match="immutable"):
        registry.add(tmp_path / "b")


def test_champion_pointer_history_and_rollback(tmp_path):
    registry = Registry(tmp_path / "registry")
    first, second = _checkpoint(tmp_path / "a", 1), _checkpoint(tmp_path / "b", 2)
    registry.add(tmp_path / "a")
    registry.add(tmp_path / "b")
    registry.set_champion(first.version, reason="first")
    registry.set_champion(second.version, reason="better")
    assert registry.champion_version() == second.version
    assert registry.resolve() == tmp_path / "registry" / "models" / second.version
    registry.set_champion(first.version, reason="rollback")
    assert registry.champion_version() == first.version
    assert [h["reason"] for h in registry.champion_history()] == ["first", "better", "rollback"]
    entries = {e.version: e for e in registry.entries()}
    assert entries[first.version].champion and not entries[second.version].champion
    with pytest.raises(CheckpointError, match="not in the registry"):
        registry.set_champion("octopi-unet-000000000000")
    with pytest.raises(CheckpointError, match="not in the registry"):
        registry.resolve("octopi-unet-000000000000")


def test_no_champion_resolves_to_the_shipped_model(tmp_path):
    assert Registry(tmp_path / "empty").resolve() == default_checkpoint_dir()


def test_served_model_is_the_champion_else_the_shipped_one(tmp_path):
    registry = Registry(tmp_path / "registry")
    shipped = ServedModel(read_config(default_checkpoint_dir()).version, True)
    assert registry.served_model() == shipped
    assert registry.served_model(SHIPPED_VERSION_ALIAS) == shipped
    assert registry.served_model(shipped.version) == shipped  # its own version names it too
    saved = _checkpoint(tmp_path / "a", 1)
    registry.add(tmp_path / "a")
    registry.set_champion(saved.version)
    assert registry.served_model() == ServedModel(saved.version, False)
    assert registry.served_model(SHIPPED_VERSION_ALIAS) == shipped
    # Not checked here: config() and resolve() refuse an unknown version.
    assert registry.served_model("octopi-unet-000000000000") == ServedModel("octopi-unet-000000000000", False)


def test_s3_registry_copies_into_a_local_cache(tmp_path, s3_bucket):
    registry = Registry(f"s3://{s3_bucket}/models", cache_dir=tmp_path / "cache")
    saved = _checkpoint(tmp_path / "a", 3)
    registry.add(tmp_path / "a")
    registry.set_champion(saved.version)
    local = registry.resolve()
    assert local == tmp_path / "cache" / saved.version
    assert (local / "model.safetensors").read_bytes() == (tmp_path / "a" / "model.safetensors").read_bytes()
    assert Registry(f"s3://{s3_bucket}/models").champion_version() == saved.version
