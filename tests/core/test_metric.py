"""Tests for octopi_core.metric: exact counts on hand-built cases and hand-computed scores."""

from __future__ import annotations

import numpy as np
import pytest

from octopi_core.metric import ClassScore, Score, f_beta, match_counts, score_documents, score_picks
from octopi_core.particles import particle_by_name
from octopi_core.picks import PickPoint, PicksDocument

APO = particle_by_name("apo-ferritin")  # radius 60 Å, match distance 30 Å, weight 1
EMPTY = np.zeros((0, 3))


def _by_name(score: Score) -> dict[str, ClassScore]:
    return {c.particle: c for c in score.classes}


def _f4(p: float, r: float) -> float:
    return 17 * p * r / (16 * p + r) if (p or r) else 0.0


# ---------------------------------------------------------------- match_counts
def test_pick_just_inside_threshold_matches():
    d = APO.match_distance_a
    truth = np.array([[100.0, 200.0, 300.0]])
    picks = truth + [d - 1e-6, 0.0, 0.0]
    assert match_counts(picks, truth, d) == (1, 0, 0)


def test_pick_just_outside_threshold_misses():
    d = APO.match_distance_a
    truth = np.array([[100.0, 200.0, 300.0]])
    picks = truth + [0.0, 0.0, d + 1e-6]
    assert match_counts(picks, truth, d) == (0, 1, 1)


def test_threshold_is_half_the_radius():
    assert APO.match_distance_a == pytest.approx(0.5 * APO.radius_a)


def test_duplicate_picks_on_one_particle():
    truth = np.array([[0.0, 0.0, 0.0]])
    picks = np.array([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]])
    assert match_counts(picks, truth, 30.0) == (1, 1, 0)


def test_one_pick_between_two_particles_counts_once():
    truth = np.array([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    picks = np.array([[20.0, 0.0, 0.0]])  # 20 Å from both, both within 30 Å
    assert match_counts(picks, truth, 30.0) == (1, 0, 1)


def test_matching_is_one_to_one_and_maximal():
    # pick 0 reaches both particles, pick 1 only the first: the best matching finds both particles.
    truth = np.array([[0.0, 0.0, 0.0], [40.0, 0.0, 0.0]])
    picks = np.array([[20.0, 0.0, 0.0], [-10.0, 0.0, 0.0]])
    assert match_counts(picks, truth, 30.0) == (2, 0, 0)


def test_empty_inputs():
    truth = np.array([[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]])
    assert match_counts(EMPTY, EMPTY, 30.0) == (0, 0, 0)
    assert match_counts(truth, EMPTY, 30.0) == (0, 2, 0)
    assert match_counts(EMPTY, truth, 30.0) == (0, 0, 2)
    assert match_counts([], truth, 30.0) == (0, 0, 2)


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros(3), np.zeros((2, 3, 1))])
def test_wrong_shape_names_argument(bad):
    with pytest.raises(ValueError, match="picks_xyz_a"):
        match_counts(bad, np.zeros((1, 3)), 30.0)
    with pytest.raises(ValueError, match="truth_xyz_a"):
        match_counts(np.zeros((1, 3)), bad, 30.0)


def test_nan_and_bad_distance_rejected():
    with pytest.raises(ValueError, match="truth_xyz_a"):
        match_counts(np.zeros((1, 3)), np.array([[np.nan, 0, 0]]), 30.0)
    with pytest.raises(ValueError, match="match_distance_a"):
        match_counts(np.zeros((1, 3)), np.zeros((1, 3)), 0.0)


# ---------------------------------------------------------------- f_beta
def test_f_beta_hand_value():
    # P = 0.5, R = 1: (1 + 16) * 0.5 * 1 / (16 * 0.5 + 1) = 8.5 / 9
    assert f_beta(0.5, 1.0, 4.0) == pytest.approx(8.5 / 9)
    assert f_beta(0.0, 0.0) == 0.0
    assert f_beta(1.0, 1.0) == pytest.approx(1.0)


def test_beta_four_in_score_picks():
    truth = {"TS": {"apo-ferritin": [[0.0, 0.0, 0.0]]}}
    picks = {"TS": {"apo-ferritin": [[0.0, 0.0, 0.0], [500.0, 0.0, 0.0]]}}
    c = _by_name(score_picks(picks, truth))["apo-ferritin"]
    assert (c.tp, c.fp, c.fn) == (1, 1, 0)
    assert (c.precision, c.recall) == (0.5, 1.0)
    assert c.f_beta == pytest.approx(8.5 / 9)


# ---------------------------------------------------------------- score_picks
def test_empty_classes():
    truth = {"TS": {"ribosome": [[0.0, 0.0, 0.0], [1000.0, 0.0, 0.0]]}}
    picks = {"TS": {"thyroglobulin": [[0.0, 0.0, 0.0]]}}
    s = _by_name(score_picks(picks, truth))
    # truth but no picks: all FN
    assert (s["ribosome"].tp, s["ribosome"].fp, s["ribosome"].fn) == (0, 0, 2)
    assert s["ribosome"].precision == 0.0 and s["ribosome"].f_beta == 0.0
    # picks but no truth: all FP
    assert (s["thyroglobulin"].tp, s["thyroglobulin"].fp, s["thyroglobulin"].fn) == (0, 1, 0)
    assert s["thyroglobulin"].recall == 0.0 and s["thyroglobulin"].f_beta == 0.0
    # neither: zero counts, F-beta 0
    apo = s["apo-ferritin"]
    assert (apo.tp, apo.fp, apo.fn, apo.precision, apo.recall, apo.f_beta) == (0, 0, 0, 0.0, 0.0, 0.0)


def test_counts_summed_over_tomograms_before_ratio():
    far = 1000.0
    truth = {
        "TS_A": {"ribosome": [[0.0, 0.0, 0.0]]},
        "TS_B": {"ribosome": [[0.0, 0.0, 0.0], [far, 0.0, 0.0], [2 * far, 0.0, 0.0]]},
    }
    picks = {"TS_A": {"ribosome": [[0.0, 0.0, 0.0]]}, "TS_B": {"ribosome": [[0.0, 0.0, 0.0]]}}
    rib = _by_name(score_picks(picks, truth))["ribosome"]
    assert (rib.tp, rib.fp, rib.fn) == (2, 0, 2)
    summed = _f4(1.0, 0.5)  # = 17/33
    per_tomogram_mean = (_f4(1.0, 1.0) + _f4(1.0, 1 / 3)) / 2  # = 33/49
    assert summed == pytest.approx(17 / 33)
    assert abs(summed - per_tomogram_mean) > 0.1
    assert rib.f_beta == pytest.approx(summed)


def test_runs_only_in_truth_or_only_in_picks():
    truth = {"TS_T": {"ribosome": [[0.0, 0.0, 0.0]]}}
    picks = {"TS_P": {"ribosome": [[0.0, 0.0, 0.0]]}}
    rib = _by_name(score_picks(picks, truth))["ribosome"]
    assert (rib.tp, rib.fp, rib.fn) == (0, 1, 1)


def _weighted_case():
    far = [900.0, 900.0, 900.0]
    truth = {
        "TS": {
            "apo-ferritin": [[0.0, 0.0, 0.0], far],  # 1 found, 1 missed; plus one FP below
            "thyroglobulin": [[0.0, 0.0, 0.0]],  # found
            "beta-galactosidase": [[0.0, 0.0, 0.0]],  # missed
        }
    }
    picks = {
        "TS": {
            "apo-ferritin": [[5.0, 0.0, 0.0], [-600.0, 0.0, 0.0]],
            "thyroglobulin": [[0.0, 10.0, 0.0]],
        }
    }
    return picks, truth


def test_weighted_score_hand_computed():
    picks, truth = _weighted_case()
    score = score_picks(picks, truth)
    s = _by_name(score)
    assert s["apo-ferritin"].f_beta == pytest.approx(0.5)  # P = R = 0.5
    assert s["thyroglobulin"].f_beta == pytest.approx(1.0)
    # weights: apo 1, amylase 0, galactosidase 2, ribosome 1, thyroglobulin 2, vlp 1 -> sum 7
    assert score.weighted_f_beta == pytest.approx((1 * 0.5 + 2 * 1.0) / 7)
    assert score.beta == 4.0
    assert score.classes[0].particle == "apo-ferritin"


def test_skip_empty_classes():
    picks, truth = _weighted_case()
    score = score_picks(picks, truth, skip_empty_classes=True)
    # ribosome, vlp and beta-amylase are empty: left out -> weights 1 + 2 + 2
    assert score.weighted_f_beta == pytest.approx((1 * 0.5 + 2 * 1.0) / 5)
    assert _by_name(score)["ribosome"].weight == 0.0
    assert _by_name(score)["apo-ferritin"].weight == 1.0


def test_beta_amylase_weight_zero_does_not_move_score():
    picks, truth = _weighted_case()
    base = score_picks(picks, truth).weighted_f_beta
    amylase = [[0.0, 0.0, 0.0], [400.0, 0.0, 0.0]]
    truth_with = {"TS": {**truth["TS"], "beta-amylase": amylase}}
    perfect = score_picks({"TS": {**picks["TS"], "beta-amylase": amylase}}, truth_with)
    awful = score_picks({"TS": {**picks["TS"], "beta-amylase": [[-999.0, 0.0, 0.0]]}}, truth_with)
    assert _by_name(perfect)["beta-amylase"].f_beta == pytest.approx(1.0)
    assert _by_name(awful)["beta-amylase"].f_beta == 0.0
    assert perfect.weighted_f_beta == pytest.approx(base)
    assert awful.weighted_f_beta == pytest.approx(base)


def test_particles_subset_and_alias():
    picks, truth = _weighted_case()
    score = score_picks(picks, truth, particles=["apoferritin", "thyroglobulin"])
    assert [c.particle for c in score.classes] == ["apo-ferritin", "thyroglobulin"]
    assert score.weighted_f_beta == pytest.approx((0.5 + 2 * 1.0) / 3)


def test_wrong_shape_in_score_picks_names_argument():
    with pytest.raises(ValueError, match=r"picks\['TS'\]\['ribosome'\]"):
        score_picks({"TS": {"ribosome": np.zeros((4, 2))}}, {})
    with pytest.raises(ValueError, match=r"truth\['TS'\]\['ribosome'\]"):
        score_picks({}, {"TS": {"ribosome": np.zeros(5)}})


def test_unknown_class_name_rejected():
    with pytest.raises(ValueError, match="unknown particle class"):
        score_picks({"TS": {"proteasome": np.zeros((1, 3))}}, {})
    with pytest.raises(ValueError, match="unknown particle class"):
        score_picks({}, {}, particles=["proteasome"])


def test_bad_beta_rejected():
    with pytest.raises(ValueError, match="beta"):
        score_picks({}, {}, beta=0)


# ---------------------------------------------------------------- documents and output
def _doc(run: str, picks: dict[str, list[tuple[float, float, float]]]) -> PicksDocument:
    return PicksDocument(
        tomogram_uri=f"/data/{run}.zarr",
        run_name=run,
        voxel_size_xyz_a=(10.0, 10.0, 10.0),
        picks={k: [PickPoint(x=x, y=y, z=z) for x, y, z in v] for k, v in picks.items()},
    )


def test_score_documents_pairs_by_run():
    truth = [_doc("A", {"ribosome": [(0, 0, 0)]}), _doc("B", {"ribosome": [(0, 0, 0)]})]
    picks = [_doc("B", {"ribosome": [(5, 0, 0)]}), _doc("A", {"ribosome": [(500, 0, 0)]})]
    rib = _by_name(score_documents(picks, truth))["ribosome"]
    assert (rib.tp, rib.fp, rib.fn) == (1, 1, 1)


def test_score_documents_rejects_duplicate_runs():
    with pytest.raises(ValueError, match="picks holds two documents"):
        score_documents([_doc("A", {}), _doc("A", {})], [])


def test_table_and_as_dict():
    picks, truth = _weighted_case()
    score = score_picks(picks, truth)
    text = score.table()
    assert "apo-ferritin" in text and "virus-like-particle" in text
    assert "weighted F4" in text
    d = score.as_dict()
    assert d["weighted_f_beta"] == score.weighted_f_beta
    assert len(d["classes"]) == 6 and d["classes"][0]["particle"] == "apo-ferritin"
