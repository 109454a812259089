"""Segmentation losses for sparse particle labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "focal_tversky_loss",
    "cross_entropy_loss",
    "FocalTverskyLoss",
    "FOCAL_TVERSKY_ALPHA",
    "FOCAL_TVERSKY_GAMMA",
]

# Octopi model card values.
FOCAL_TVERSKY_ALPHA = 0.152
FOCAL_TVERSKY_GAMMA = 1.889


def focal_tversky_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    alpha: float = FOCAL_TVERSKY_ALPHA,
    beta: float | None = None,
    gamma: float = FOCAL_TVERSKY_GAMMA,
    smooth: float = 1e-5,
    class_weights: torch.Tensor | None = None,
    labelled: torch.Tensor | None = None,
) -> torch.Tensor:
    """Multi-class Focal Tversky loss.

    With softmax probabilities ``p`` and one-hot targets ``g``, for each class ``c`` over the whole
    batch: ``TP = Σ p·g``, ``FP = Σ p·(1-g)``, ``FN = Σ (1-p)·g`` and the Tversky index
    ``TI = (TP + smooth) / (TP + alpha·FP + beta·FN + smooth)``. The loss is the (weighted) mean
    over classes of ``(1 - TI) ** gamma``. A small ``alpha`` (the card's 0.152, with
    ``beta = 1 - alpha``) penalises missed particle voxels far more than extra ones, which suits
    a recall-heavy F-beta (beta = 4) score.

    Args:
        logits: ``(B, C, Z, Y, X)`` float, raw network output.
        target: ``(B, Z, Y, X)`` or ``(B, 1, Z, Y, X)`` integer labels in ``0..C-1``, or one-hot
            ``(B, C, Z, Y, X)`` float.
        alpha: weight of false positives. Default 0.152.
        beta: weight of false negatives. Default ``1 - alpha``.
        gamma: focal exponent. Default 1.889.
        smooth: added to numerator and denominator so empty classes give TI = 1 (no loss).
        class_weights: ``(C,)`` non-negative weights of each class in the mean; default equal.
        labelled: ``(B, C)`` bool, which classes each sample's targets label (partial labels); default
            None, every class of every sample. See :func:`_marginal_probs` for what an unlabelled class does.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: on mismatched shapes or out-of-range parameters.
    """
    if logits.ndim != 5:
        raise ValueError(f"logits must be (B, C, Z, Y, X), got shape {tuple(logits.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    beta = 1.0 - alpha if beta is None else beta
    num_classes = logits.shape[1]
    one_hot = _one_hot(target, num_classes, logits.shape).to(logits.dtype)
    probs = torch.softmax(logits.float(), dim=1)
    dims = (0, 2, 3, 4)
    if labelled is None:
        tp = (probs * one_hot).sum(dims)
        fp = (probs * (1 - one_hot)).sum(dims)
        fn = ((1 - probs) * one_hot).sum(dims)
    else:
        counted = _check_labelled(labelled, logits.shape)
        probs = _marginal_probs(probs, counted)
        # A class's counts come only from the samples that label it.
        weight = counted[:, :, None, None, None].to(probs)
        tp = (weight * probs * one_hot).sum(dims)
        fp = (weight * probs * (1 - one_hot)).sum(dims)
        fn = (weight * (1 - probs) * one_hot).sum(dims)
    tversky = (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)
    per_class = (1.0 - tversky).clamp_min(0.0) ** gamma
    if class_weights is None:
        return per_class.mean()
    weights = class_weights.to(per_class)
    if weights.shape != per_class.shape:
        raise ValueError(f"class_weights must have shape ({num_classes},), got {tuple(weights.shape)}")
    return (per_class * weights).sum() / weights.sum().clamp_min(1e-12)


def cross_entropy_loss(
    logits: torch.Tensor, target: torch.Tensor, *, labelled: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean voxel cross-entropy, with the marginal treatment of unlabelled classes.

    Args:
        logits: ``(B, C, Z, Y, X)`` float, raw network output.
        target: ``(B, Z, Y, X)`` integer labels in ``0..C-1``.
        labelled: ``(B, C)`` bool, which classes each sample labels; default None (all: plain
            ``F.cross_entropy``). A background voxel of a sample counts as "background or one of its
            unlabelled classes" (see :func:`_marginal_probs`).

    Returns:
        A scalar tensor.

    Raises:
        ValueError: on mismatched shapes.
    """
    if labelled is None:
        return F.cross_entropy(logits, target)
    mask = _check_labelled(labelled, logits.shape)
    log_probs = torch.log_softmax(logits.float(), dim=1)
    # log(p_background + the unlabelled classes' p), per sample: labelled classes are left out of the sum
    offset = torch.zeros(mask.shape, dtype=log_probs.dtype, device=log_probs.device)
    offset[mask] = -torch.inf
    offset[:, 0] = 0.0
    background = torch.logsumexp(log_probs + offset[:, :, None, None, None], dim=1, keepdim=True)
    log_probs = torch.cat([background, log_probs[:, 1:]], dim=1)
    return F.nll_loss(log_probs, target.long())


def _check_labelled(labelled: torch.Tensor, logits_shape: torch.Size) -> torch.Tensor:
    """``labelled`` as a bool tensor, refused unless it is ``(B, C)``; background always counts."""
    if tuple(labelled.shape) != (logits_shape[0], logits_shape[1]):
        raise ValueError(
            f"labelled must have shape (B, C) = {(logits_shape[0], logits_shape[1])}, "
            f"got {tuple(labelled.shape)}"
        )
    mask = labelled.to(torch.bool).clone()
    mask[:, 0] = True
    return mask


def _marginal_probs(probs: torch.Tensor, labelled: torch.Tensor) -> torch.Tensor:
    """Merge each sample's unlabelled classes into its background (the marginal loss of partial labels).

    A sample whose picks do not cover class ``c`` may hold ``c`` anywhere its targets say background,
    so its background probability becomes ``p_0 + sum of p_c`` over its unlabelled classes and class
    ``c`` is left out of the counts for that sample: predicting ``c`` there costs nothing, and is not
    taught as background either. A class labelled with no picks (absent) stays a normal class.

    Args:
        probs: ``(B, C, Z, Y, X)`` float softmax probabilities.
        labelled: ``(B, C)`` bool, background (column 0) True.

    Returns:
        The merged ``(B, C, Z, Y, X)`` probabilities (unlabelled channels unchanged; the caller leaves them out).
    """
    unlabelled = (~labelled).to(probs)[:, :, None, None, None]
    merged = probs.clone()
    merged[:, 0] = probs[:, 0] + (probs * unlabelled).sum(1)
    return merged


def _one_hot(target: torch.Tensor, num_classes: int, logits_shape: torch.Size) -> torch.Tensor:
    if target.shape == logits_shape:
        return target
    if target.ndim == 5 and target.shape[1] == 1:
        target = target[:, 0]
    if target.shape != (logits_shape[0], *logits_shape[2:]):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits_shape)}"
        )
    return F.one_hot(target.long(), num_classes).permute(0, 4, 1, 2, 3)


class FocalTverskyLoss(nn.Module):
    """Module form of :func:`focal_tversky_loss`; arguments as there."""

    def __init__(
        self,
        alpha: float = FOCAL_TVERSKY_ALPHA,
        beta: float | None = None,
        gamma: float = FOCAL_TVERSKY_GAMMA,
        smooth: float = 1e-5,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma, self.smooth = alpha, beta, gamma, smooth
        self.class_weights = class_weights

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_tversky_loss(
            logits,
            target,
            alpha=self.alpha,
            beta=self.beta,
            gamma=self.gamma,
            smooth=self.smooth,
            class_weights=self.class_weights,
        )
