import shutil

import pytest

from octopi_core.model_config import default_checkpoint_dir, read_config
from octopi_core.pipeline import PredictOptions
from octopi_core.promotion import held_out_set, promote
from octopi_core.registry import Registry

SHIPPED = default_checkpoint_dir()
pytestmark = pytest.mark.skipif(
    not (SHIPPED / "config.json").is_file(), reason="no shipped model in the package"
)
OPTIONS = PredictOptions(window_vox=64, batch_size=2)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    return held_out_set(tmp_path_factory.mktemp("held-out"), count=1, shape_zyx=(64, 128, 128))


@pytest.mark.slow
def test_worse_candidate_is_recorded_but_not_promoted(tmp_path, evaluation, random_checkpoint):
    registry = Registry(tmp_path / "registry")
    candidate = tmp_path / "candidate"
    shutil.copytree(random_checkpoint, candidate)
    result = promote(registry, candidate, evaluation, options=OPTIONS)
    assert not result.promoted and result.champion_version == read_config(SHIPPED).version
    assert result.candidate_score < result.champion_score
    assert registry.champion_version() is None  # the shipped model stays in charge
    assert result.candidate_version in registry.versions()
    assert "held_out" in registry.config(result.candidate_version).scores


@pytest.mark.slow
def test_better_candidate_is_promoted(tmp_path, evaluation, random_checkpoint):
    registry = Registry(tmp_path / "registry")
    weak = registry.add(random_checkpoint)
    registry.set_champion(weak, reason="a weak champion to beat")
    candidate = tmp_path / "candidate"
    shutil.copytree(SHIPPED, candidate)
    result = promote(registry, candidate, evaluation, options=OPTIONS)
    assert result.promoted and result.candidate_score > result.champion_score
    assert registry.champion_version() == result.candidate_version != weak
    assert registry.champion_history()[-1]["reason"].startswith("weighted F-beta")
