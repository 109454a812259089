import math

import pytest
import torch

from octopi_core.loss import FocalTverskyLoss, focal_tversky_loss


def _logits_from_probs(probs):
    return torch.log(torch.tensor(probs, dtype=torch.float64))


def test_matches_hand_computed_two_class_value():
    # Two voxels, two classes. Softmax probabilities [[0.8, 0.2], [0.3, 0.7]]; truth labels [0, 1].
    probs = [[0.8, 0.3], [0.2, 0.7]]  # (C, N)
    logits = _logits_from_probs(probs).reshape(1, 2, 1, 1, 2)
    target = torch.tensor([0, 1]).reshape(1, 1, 1, 2)
    alpha, beta, gamma = 0.3, 0.7, 2.0
    # class 0: TP 0.8, FP 0.3, FN 0.2 -> TI = 0.8 / (0.8 + 0.09 + 0.14) = 0.776699...
    # class 1: TP 0.7, FP 0.2, FN 0.3 -> TI = 0.7 / (0.7 + 0.06 + 0.21) = 0.721649...
    ti0, ti1 = 0.8 / 1.03, 0.7 / 0.97
    expected = ((1 - ti0) ** gamma + (1 - ti1) ** gamma) / 2
    value = focal_tversky_loss(logits, target, alpha=alpha, beta=beta, gamma=gamma, smooth=0.0)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_card_defaults_alpha_0152_gamma_1889():
    probs = [[0.6], [0.4]]
    logits = _logits_from_probs(probs).reshape(1, 2, 1, 1, 1)
    target = torch.tensor([1]).reshape(1, 1, 1, 1)
    # class 0: TP 0, FP 0.6, FN 0 -> TI = 0; class 1: TP 0.4, FP 0, FN 0.6 -> TI = 0.4 / (0.4 + 0.848*0.6)
    ti1 = 0.4 / (0.4 + 0.848 * 0.6)
    expected = (1.0 + (1 - ti1) ** 1.889) / 2
    assert focal_tversky_loss(logits, target, smooth=0.0).item() == pytest.approx(expected, rel=1e-6)
    assert FocalTverskyLoss(smooth=0.0)(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_perfect_prediction_gives_zero_and_gradient_flows():
    target = torch.randint(0, 3, (2, 4, 4, 4))
    logits = torch.nn.functional.one_hot(target, 3).permute(0, 4, 1, 2, 3).float() * 50
    assert focal_tversky_loss(logits, target).item() == pytest.approx(0.0, abs=1e-6)
    noisy = torch.randn(2, 3, 4, 4, 4, requires_grad=True)
    focal_tversky_loss(noisy, target).backward()
    assert noisy.grad is not None and torch.isfinite(noisy.grad).all() and noisy.grad.abs().sum() > 0


def test_one_hot_target_and_class_weights():
    logits = torch.randn(1, 3, 2, 2, 2)
    labels = torch.randint(0, 3, (1, 2, 2, 2))
    one_hot = torch.nn.functional.one_hot(labels, 3).permute(0, 4, 1, 2, 3).float()
    assert focal_tversky_loss(logits, labels).item() == pytest.approx(
        focal_tversky_loss(logits, one_hot).item()
    )
    only_first = focal_tversky_loss(logits, labels, class_weights=torch.tensor([1.0, 0.0, 0.0]))
    per_class_first = focal_tversky_loss(logits[:, :], labels, class_weights=torch.tensor([1.0, 0, 0]))
    assert math.isfinite(only_first.item()) and only_first.item() == pytest.approx(per_class_first.item())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="logits"):
        focal_tversky_loss(torch.zeros(2, 3, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="alpha"):
        focal_tversky_loss(torch.zeros(1, 2, 1, 1, 1), torch.zeros(1, 1, 1, 1), alpha=2.0)
    with pytest.raises(ValueError, match="target shape"):
        focal_tversky_loss(torch.zeros(1, 2, 2, 2, 2), torch.zeros(1, 3, 3, 3))


def _swap_channels(logits, sample, a, b):
    swapped = logits.clone()
    swapped[sample, a], swapped[sample, b] = logits[sample, b], logits[sample, a]
    return swapped


@pytest.mark.parametrize("loss", ["focal_tversky", "cross_entropy"])
def test_an_unlabelled_class_contributes_nothing_and_a_labelled_absent_one_does(loss):
    from octopi_core.loss import cross_entropy_loss

    def value(logits, target, labelled):
        if loss == "cross_entropy":
            return cross_entropy_loss(logits, target, labelled=labelled).item()
        return focal_tversky_loss(logits, target, alpha=0.3, gamma=1.0, labelled=labelled).item()

    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 4, 4, dtype=torch.float64)
    target = torch.randint(0, 3, (2, 3, 4, 4))
    target[1][target[1] == 2] = 0  # sample 1 holds no class-2 voxels: unlabelled or absent
    unlabelled = torch.tensor([[True, True, True, True], [True, True, False, True]])
    # Moving sample 1's probability between background and class 2 changes nothing when class 2 is
    # unlabelled there: the network is neither taught class 2 nor background in its place.
    moved = _swap_channels(logits, 1, 0, 2)
    assert value(moved, target, unlabelled) == pytest.approx(value(logits, target, unlabelled), rel=1e-6)
    # Labelled and absent, class 2 predicted in sample 1 is a false positive.
    every = torch.ones(2, 4, dtype=torch.bool)
    assert value(moved, target, every) != pytest.approx(value(logits, target, every), rel=1e-6)
    # All labelled is the unmasked loss exactly.
    plain = (
        torch.nn.functional.cross_entropy(logits, target).item()
        if loss == "cross_entropy"
        else focal_tversky_loss(logits, target, alpha=0.3, gamma=1.0).item()
    )
    assert value(logits, target, every) == pytest.approx(plain, rel=1e-6)
    with pytest.raises(ValueError, match="labelled"):
        value(logits, target, torch.ones(2, 3, dtype=torch.bool))
