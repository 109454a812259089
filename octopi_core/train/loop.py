"""The training loop: epochs over patches, EMA weights, cosine learning rate, validation and the best checkpoint.

Writes to the run's ``output_dir`` and resumes from its last state.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel

from ..device import select_device
from ..exceptions import OctopiError, TrainingDataError
from ..inference import autocast_dtype
from ..loss import cross_entropy_loss, focal_tversky_loss
from ..metric import Score
from ..model import build_model, save_checkpoint
from ..model_config import ModelConfig
from ..synth import make_phantom, settings_for_seed
from .config import TrainConfig
from .curves import plot_curves
from .sampling import Sample, TomogramMaker, TrainingData, cut_batches
from .tuning import LabelledVolume, tune_checkpoint, tune_checkpoint_on, validate_model

__all__ = ["TrainingResult", "train"]

log = logging.getLogger(__name__)
_RESUME_FILE = "last.pt"  # in the run's output_dir: weights, optimizer and loop state


class TrainingResult(BaseModel):
    """What a finished run reports."""

    best_checkpoint: str
    best_score: float
    best_epoch: int
    epochs_run: int
    stopped_because: str
    scores: dict[str, Any]


def _load_initial_weights(source: str, device: torch.device) -> tuple[dict[str, torch.Tensor], str]:
    """Weights and version of the checkpoint a warm-started run begins from (its dropout is ignored)."""
    from ..model import load_checkpoint
    from ..model_config import default_checkpoint_dir

    path = default_checkpoint_dir() if source == "default" else Path(source)
    log.info("starting from the weights of %s", path)
    model, model_config = load_checkpoint(path, device=device)
    return model.state_dict(), model_config.version


def _validation_seeds(config: TrainConfig) -> range:
    first = 1_000_000 + config.seed * 1000
    return range(first, first + config.val_tomograms)


def _lr_factor(progress: float, min_fraction: float) -> float:
    """The cosine schedule's factor at ``progress`` (0 at the start, 1 at the end of training)."""
    return min_fraction + (1 - min_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def train(
    config: TrainConfig,
    *,
    on_epoch: Callable[[dict], None] | None = None,
    data: TrainingData | None = None,
) -> TrainingResult:
    """Run (or resume) training as configured; return the best checkpoint and its scores.

    Writes to ``config.output_dir``: ``best/`` (checkpoint), ``last.pt`` (resume state: tensors
    and numbers only), ``metrics.jsonl`` (one line per epoch) and ``curves.png``.

    Args:
        config: every setting of the run.
        on_epoch: called with each epoch's record; default None.
        data: labelled tomograms to train, validate and tune on instead of generated ones
            (fine-tuning, :mod:`octopi_core.train.finetune`); generated tomograms of
            ``config.train_settings`` are then only mixed in at ``data.synthetic_fraction``.
            Default None: generated tomograms throughout.

    Raises:
        TrainingDataError: when the generated data hold no labelled particles.
        OctopiError: when the loss becomes NaN/inf.
    """
    device = select_device(
        config.device, asked_by="the training config"
    )  # refused before anything is written
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(config.model_dump_json(indent=2))
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    model_config = ModelConfig(dropout=config.dropout)
    model = build_model(model_config).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state: dict[str, Any] = {
        "epoch": 0,
        "step": 0,
        "best_score": -1.0,
        "best_epoch": -1,
        "stale": 0,
        "wall_s": 0.0,
    }
    resume_path = out / _RESUME_FILE
    if resume_path.exists():
        saved = torch.load(resume_path, map_location=device, weights_only=True)
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        state.update(json.loads(saved["state_json"]))
        log.info("resumed from %s at epoch %d", resume_path, state["epoch"])
    elif config.init_checkpoint:
        start, state["init_version"] = _load_initial_weights(config.init_checkpoint, device)
        model.load_state_dict(start)
        ema.load_state_dict(start)

    val_phantoms: list[LabelledVolume] = (
        list(data.validation)
        if data is not None
        else [
            make_phantom(seed, settings_for_seed(seed, config.val_settings, config.train_families))
            for seed in _validation_seeds(config)
        ]
    )
    maker = TomogramMaker(config)
    try:
        state, stopped_because = _train_epochs(
            config,
            model,
            ema,
            optimizer,
            model_config,
            val_phantoms,
            maker,
            state,
            device,
            out,
            on_epoch,
            data,
        )
    finally:
        maker.close()
    if state["best_epoch"] < 0:
        raise OctopiError("training finished without a validation; no checkpoint was written")
    if config.tune_localization and data is not None:
        # Fine-tuning: the thresholds are chosen on the user's held-out data, not generated ones.
        tune_checkpoint_on(
            out / "best",
            data.validation,
            tuned_on={"held_out": data.provenance.get("validation", {})},
            window_vox=config.val_window_vox,
            device=config.device,
            keep_thresholds=data.start_thresholds,
            min_particles=config.min_tuning_particles,
        )
    elif config.tune_localization:
        tune_checkpoint(
            out / "best",
            config.generator_settings(config.tune_data),
            count=config.tune_tomograms or config.val_tomograms,
            seed=2_000_000 + config.seed,
            window_vox=config.val_window_vox,
            device=config.device,
            families=config.train_families,
        )
    best = json.loads((out / "best" / "config.json").read_text())
    return TrainingResult(
        best_checkpoint=str(out / "best"),
        best_score=state.get("saved_score", state["best_score"]),  # the saved checkpoint's own score
        best_epoch=state["best_epoch"],
        epochs_run=state["epoch"],
        stopped_because=stopped_because,
        scores=best["scores"],
    )


def _train_epochs(
    config: TrainConfig,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    model_config: ModelConfig,
    val_phantoms: list[LabelledVolume],
    maker: TomogramMaker,
    state: dict[str, Any],
    device: torch.device,
    out: Path,
    on_epoch: Callable[[dict], None] | None,
    data: TrainingData | None,
) -> tuple[dict[str, Any], str]:
    """Train epoch by epoch from ``state`` until done, stale or out of time; return the state and why it stopped."""
    total_steps = config.epochs * config.steps_per_epoch
    # bf16 only (fp16 would need loss scaling, and GPUs without bf16 are rare among those that train):
    # on CUDA, and on CPUs that do bf16 in hardware, where a training step takes about half as long.
    use_bf16 = config.amp and autocast_dtype(device) == torch.bfloat16
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # one patch shape throughout
    # Generated tomograms: the whole pool, or (fine-tuning) only those mixed in, when any are.
    generated = data is None or data.synthetic_fraction > 0
    pool_seed = config.seed * 1_000_003
    pool: list[Sample] = (
        maker.submit(list(range(pool_seed, pool_seed + config.train_pool_size)))() if generated else []
    )
    if data is None and not any(s.centres_vox for s in pool):
        raise TrainingDataError("the generated training tomograms contain no labelled particles")
    if data is not None and not any(s.centres_vox for s in data.pool):
        raise TrainingDataError("the labelled training tomograms hold no picks in their training regions")
    refresh = config.refresh_per_epoch if generated else 0
    next_seed = pool_seed + config.train_pool_size + state["epoch"] * refresh
    stopped_because = "finished all epochs"
    started = time.monotonic() - state["wall_s"]
    if data is not None and data.validation_pass_s:
        # A pass over the held-out data already timed (the starting model's score): budget with it now.
        state.setdefault("last_val_s", data.validation_pass_s)

    def training_time_left_fraction() -> float:
        # Time is kept for a last validation and the threshold tuning after it (a pass over the
        # held-out data each), so the whole run ends near max_wall_s.
        training_budget_s = config.max_wall_s - 2 * state.get("last_val_s", 0.0)
        return 1.0 - (time.monotonic() - started) / max(training_budget_s, 1e-9)

    def out_of_time() -> bool:
        return bool(config.max_wall_s) and training_time_left_fraction() <= 0

    def schedule_progress() -> float:
        # The cosine runs over the planned steps or, when the wall-clock limit ends the run first,
        # over the time: a run stopped by its limit has annealed. It never runs backwards (a faster
        # validation shrinks the time kept for it).
        progress = state["step"] / max(total_steps, 1)
        if config.max_wall_s:
            progress = max(progress, 1.0 - training_time_left_fraction())
        state["schedule_progress"] = max(min(progress, 1.0), state.get("schedule_progress", 0.0))
        return state["schedule_progress"]

    while state["epoch"] < config.epochs:
        epoch = state["epoch"]
        # The pool's next tomograms are made while this epoch trains (with data workers).
        renewals = maker.submit(list(range(next_seed, next_seed + refresh)))
        next_seed += refresh
        noise = torch.Generator(device=device).manual_seed(
            int(np.random.default_rng([config.seed, epoch]).integers(2**63))
        )
        model.train()
        losses = []
        batches = (
            cut_batches(pool, config, epoch)
            if data is None
            else cut_batches(
                data.pool, config, epoch, synthetic=pool, synthetic_fraction=data.synthetic_fraction
            )
        )
        for batch in batches:
            images, targets = batch.on(device, noise)
            labelled = batch.labelled_on(device)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * _lr_factor(schedule_progress(), config.lr_min_fraction)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(images)
            logits = logits.float()
            if labelled is None:
                loss = focal_tversky_loss(logits, targets, alpha=config.loss_alpha, gamma=config.loss_gamma)
                if config.cross_entropy_weight:
                    loss = loss + config.cross_entropy_weight * F.cross_entropy(logits, targets)
            else:  # partial labels: unlabelled classes are merged into background, not taught as it
                loss = focal_tversky_loss(
                    logits, targets, alpha=config.loss_alpha, gamma=config.loss_gamma, labelled=labelled
                )
                if config.cross_entropy_weight:
                    loss = loss + config.cross_entropy_weight * cross_entropy_loss(
                        logits, targets, labelled=labelled
                    )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                for e_param, param in zip(ema.parameters(), model.parameters()):
                    e_param.lerp_(param, 1 - config.ema_decay)
                for e_buffer, buffer in zip(ema.buffers(), model.buffers()):
                    e_buffer.copy_(buffer)
            # Kept on the device: reading each loss would make the CPU wait for every GPU step.
            losses.append(loss.detach())
            state["step"] += 1
            if out_of_time():
                break  # the epoch ends early; its weights are still validated below
        epoch_losses = torch.stack(losses).float().cpu()
        if not torch.isfinite(epoch_losses).all():
            first_bad = int((~torch.isfinite(epoch_losses)).nonzero()[0])
            bad_step = state["step"] - len(losses) + first_bad
            raise OctopiError(
                f"training loss became {epoch_losses[first_bad].item()} at step {bad_step}; "
                "lower the learning rate"
            )
        # Renew part of the pool so the network keeps seeing new tomograms.
        for i, sample in enumerate(renewals()):
            pool[(epoch * refresh + i) % len(pool)] = sample
        record: dict[str, Any] = {
            "epoch": epoch,
            "step": state["step"],
            "loss": float(epoch_losses.mean()),
            "lr": optimizer.param_groups[0]["lr"],
            "wall_s": round(time.monotonic() - started, 1),
            "precision": "bf16" if use_bf16 else "fp32",
        }
        timed_out = out_of_time()
        last = timed_out or epoch + 1 == config.epochs
        due = last or (epoch + 1) % config.val_every_epochs == 0
        if due and not last and config.val_time_fraction:
            # Skip a validation that would take validation past its share of the time so far: on a
            # CPU one pass over whole held-out tomograms can cost as much as an epoch of training.
            last_val_s = state.get("last_val_s", 0.0)
            spent_s = time.monotonic() - started
            due = state.get("val_s", 0.0) + last_val_s <= config.val_time_fraction * (spent_s + last_val_s)
        if due:
            val_started = time.monotonic()
            score = validate_model(
                ema,
                val_phantoms,
                window_vox=config.val_window_vox,
                target_radius_fraction=config.target_radius_fraction,
                device=device,
            )
            mean_f = float(np.mean([c.f_beta for c in score.classes]))
            record.update(
                {
                    "mean_f_beta": mean_f,
                    "weighted_f_beta": score.weighted_f_beta,
                    "f_beta": {c.particle: round(c.f_beta, 4) for c in score.classes},
                }
            )
            current = mean_f if config.selection_metric == "mean_f_beta" else score.weighted_f_beta
            improved = current > state["best_score"]
            if improved or current >= state["best_score"] - config.selection_tolerance:
                # A near-tie (within selection_tolerance) keeps the later weights but is no improvement.
                state.update(
                    best_score=max(current, state["best_score"]), best_epoch=epoch, saved_score=current
                )
                provenance = data.provenance if data is not None else None
                _save_best(
                    ema, model_config, config, out, epoch, score, state.get("init_version"), provenance
                )
            state["stale"] = 0 if improved else state["stale"] + 1
            state["last_val_s"] = time.monotonic() - val_started
            state["val_s"] = state.get("val_s", 0.0) + state["last_val_s"]
        state["epoch"] = epoch + 1
        state["wall_s"] = time.monotonic() - started
        with open(out / "metrics.jsonl", "a") as stream:
            stream.write(json.dumps(record) + "\n")
        torch.save(
            {
                "model": model.state_dict(),
                "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(),
                "state_json": json.dumps(state),
            },
            out / _RESUME_FILE,
        )
        plot_curves(out)
        if on_epoch is not None:
            on_epoch(record)
        log.info("epoch %s", record)
        if state["stale"] >= config.patience_epochs:
            stopped_because = f"no improvement in {config.patience_epochs} validations"
            break
        if timed_out:
            stopped_because = f"wall-clock limit of {config.max_wall_s:.0f} s reached"
            break
    return state, stopped_because


def _save_best(
    ema: torch.nn.Module,
    model_config: ModelConfig,
    config: TrainConfig,
    out: Path,
    epoch: int,
    score: Score,
    init_version: str | None,
    provenance: dict | None = None,
) -> None:
    recipe = config.model_dump(mode="json", exclude={"output_dir", "device", "threads"})
    if init_version:
        recipe["init_version"] = init_version  # the model this run started from
    training: dict[str, Any] = {
        "recipe": recipe,
        "epoch": epoch,
        "seed": config.seed,
        "target_radius_fraction": config.target_radius_fraction,
    }
    if provenance is not None:
        training["data"] = provenance  # fine-tuning: which labelled tomograms, users and split
    saved_config = model_config.model_copy(
        update={
            "training": training,
            "scores": {"validation": score.as_dict()},
        }
    )
    tmp = out / "best.tmp"
    save_checkpoint(ema, saved_config, tmp)
    final = out / "best"
    if final.exists():
        for child in final.iterdir():
            child.unlink()
        final.rmdir()
    tmp.rename(final)
