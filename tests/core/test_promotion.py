import shutil

import pytest

from octopi_core.model_config import default_checkpoint_dir, read_config
from octopi_core.pipeline import PredictOptions
from octopi_core.promotion import (
    DEFAULT_MAX_FORGETTING_F_BETA,
    DEFAULT_MIN_GAIN_F_BETA,
    held_out_set,
    promote,
    promotion_decision,
)
from octopi_core.registry import Registry
from octopi_core.settings import Settings

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
    (decision,) = registry.decisions(result.candidate_version)
    assert not decision["promoted"] and decision["reason"] == result.reason
    assert decision["champion_score"] == result.champion_score and decision["data"] == {"kind": "synthetic"}


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
    assert registry.decisions(result.candidate_version)[-1]["promoted"] is True


# -- the decision rule ----------------------------------------------------------------------------------


def test_a_candidate_better_on_the_users_data_that_keeps_the_guard_is_promoted():
    promoted, reason = promotion_decision(
        0.80, 0.70, 0.89, 0.90, min_gain_f_beta=0.05, max_forgetting_f_beta=0.02
    )
    assert promoted and "0.8000" in reason and "0.7000" in reason and "gain +0.1000" in reason
    # Exactly at both margins still promotes (float rounding does not tip it).
    assert promotion_decision(0.75, 0.70, 0.88, 0.90, min_gain_f_beta=0.05, max_forgetting_f_beta=0.02)[0]


def test_a_candidate_not_better_on_the_users_data_is_refused():
    for candidate in (0.70, 0.69, 0.74):
        promoted, reason = promotion_decision(
            candidate, 0.70, 0.95, 0.90, min_gain_f_beta=0.05, max_forgetting_f_beta=0.02
        )
        assert not promoted and "user data" in reason and "not better" in reason
    assert not promotion_decision(0.70, 0.70, 0.95, 0.90, min_gain_f_beta=0.0)[0], "a tie is no gain"


def test_a_candidate_that_forgets_beyond_the_margin_is_refused():
    promoted, reason = promotion_decision(
        0.90, 0.70, 0.87, 0.90, min_gain_f_beta=0.0, max_forgetting_f_beta=0.02
    )
    assert not promoted and "forgets more than the allowed 0.0200" in reason and "drop +0.0300" in reason
    assert promotion_decision(0.90, 0.70, 0.87, 0.90, max_forgetting_f_beta=0.05)[0]


def test_without_users_data_the_candidate_must_be_strictly_better_on_the_synthetic_set():
    assert promotion_decision(None, None, 0.91, 0.90) == (True, "weighted F-beta 0.9100 > 0.9000")
    assert promotion_decision(None, None, 0.90, 0.90) == (
        False,
        "weighted F-beta 0.9000 <= champion's 0.9000",
    )
    assert DEFAULT_MIN_GAIN_F_BETA == Settings().promotion_min_gain_f_beta
    assert DEFAULT_MAX_FORGETTING_F_BETA == Settings().promotion_max_forgetting_f_beta


def test_bad_margins_and_half_the_data_scores_are_refused():
    with pytest.raises(ValueError, match="min_gain_f_beta must be a finite number >= 0, got -0.1"):
        promotion_decision(0.8, 0.7, 0.9, 0.9, min_gain_f_beta=-0.1)
    with pytest.raises(ValueError, match="max_forgetting_f_beta"):
        promotion_decision(0.8, 0.7, 0.9, 0.9, max_forgetting_f_beta=float("nan"))
    with pytest.raises(ValueError, match="both data scores or neither"):
        promotion_decision(0.8, None, 0.9, 0.9)
