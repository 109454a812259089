"""``train`` (and ``train finetune``), ``tune``, ``promote``, ``retrain``, ``models``, ``rollback``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .parser import _FINETUNE_ONLY

__all__ = ["_train", "_tune", "_promote", "_retrain", "_models", "_rollback"]


def _run_training(args: argparse.Namespace, *, init_checkpoint: str | None = None):
    """Train as ``args.config`` (file or preset) says, with ``--seed``, ``--output-dir`` and
    ``init_checkpoint`` overriding it; return the result."""
    import logging

    from ..train import load_train_config, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = load_train_config(args.config)
    if args.seed is not None:
        import secrets

        seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
        config = config.model_copy(update={"seed": seed, "output_dir": f"{config.output_dir}-seed{seed}"})
    if args.output_dir:
        config = config.model_copy(update={"output_dir": args.output_dir})
    if init_checkpoint:
        config = config.model_copy(update={"init_checkpoint": init_checkpoint})
    return train(config)


def _train(args: argparse.Namespace) -> int:
    if args.config == "finetune":
        return _finetune(args)
    given = [
        f"--{n.replace('_', '-')}" for n in _FINETUNE_ONLY if getattr(args, n, None) not in (None, False)
    ]
    if given:
        raise ValueError(f"{', '.join(given)} apply to 'train finetune' only")
    print(_run_training(args).model_dump_json(indent=2))
    return 0


def _finetune(args: argparse.Namespace) -> int:
    import logging
    import secrets

    from ..model_config import default_checkpoint_dir, read_config
    from ..registry import Registry
    from ..train.finetune import finetune, finetune_config, open_labelled_source

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.data:
        raise ValueError("train finetune needs --data SOURCE (a copick config JSON or a folder)")
    if args.init and args.registry:
        raise ValueError("give --init or --registry, not both")
    init = args.init or (str(Registry(args.registry).resolve()) if args.registry else "default")
    voxel_size_a = read_config(default_checkpoint_dir() if init == "default" else Path(init)).voxel_size_a
    items, provenance = open_labelled_source(
        args.data,
        picks_users=args.picks_user,
        picks_sessions=args.picks_session,
        tomo_type=args.tomo_type,
        voxel_size_a=args.voxel_size,
    )
    seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
    config = finetune_config(
        output_dir=args.output_dir,
        init_checkpoint=init,
        seed=seed,
        device=args.device,
        max_wall_s=60 * (30.0 if args.max_minutes is None else args.max_minutes),
    )
    result = finetune(
        items,
        config,
        model_voxel_size_a=voxel_size_a,
        holdout=args.holdout or "auto",
        absent_classes_are_background=args.absent_classes_are_background,
        synthetic_fraction=args.synthetic_fraction or 0.0,
        provenance=provenance,
    )
    print(result.model_dump_json(indent=2))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from ..synth import PhantomSettings
    from ..train import load_train_config, tune_checkpoint

    families: list[str] = []
    if args.config:
        config = load_train_config(args.config)
        settings, families = config.generator_settings(args.data), config.train_families
    else:
        settings = PhantomSettings()
    settings = settings.model_copy(update={"shape_zyx": tuple(args.shape)})
    chosen = tune_checkpoint(
        args.checkpoint, settings, count=args.count, window_vox=args.window, families=families
    )
    print(json.dumps(chosen, indent=2))
    return 0


def _promote_checkpoint(args: argparse.Namespace, candidate: str, **data_options: Any) -> int:
    from ..pipeline import PredictOptions
    from ..promotion import held_out_set, promote
    from ..registry import Registry

    evaluation = held_out_set(args.eval_dir, count=args.eval_count, shape_zyx=tuple(args.eval_shape))
    options = PredictOptions(window_vox=args.eval_window) if args.eval_window else PredictOptions()
    result = promote(Registry(args.registry), candidate, evaluation, options=options, **data_options)
    print(json.dumps(result.__dict__, indent=2))
    return 0


def _promote(args: argparse.Namespace) -> int:
    return _promote_checkpoint(args, args.candidate)


def _retrain(args: argparse.Namespace) -> int:
    from ..registry import Registry

    if args.data:
        return _retrain_on_data(args)
    given = [
        f"--{n.replace('_', '-')}"
        for n in (*_FINETUNE_ONLY, "min_gain", "max_forgetting")
        if n not in ("init", "registry") and getattr(args, n, None) not in (None, False)
    ]
    if given:
        raise ValueError(f"{', '.join(given)} apply to 'retrain --data SOURCE' only")
    if not args.config:
        raise ValueError("retrain needs a training config or preset, or --data SOURCE")
    start = str(Registry(args.registry).resolve()) if args.from_champion else None
    result = _run_training(args, init_checkpoint=start)
    print(
        f"trained: best checkpoint {result.best_checkpoint} (validation {result.best_score:.4f}); evaluating"
    )
    return _promote_checkpoint(args, result.best_checkpoint)


def _retrain_on_data(args: argparse.Namespace) -> int:
    """Fine-tune the champion on ``--data``, then promote on its held-out part with the synthetic set as guard."""
    import logging
    import secrets

    from ..model_config import read_config
    from ..promotion import DEFAULT_MAX_FORGETTING_F_BETA, DEFAULT_MIN_GAIN_F_BETA, DataEvaluation
    from ..registry import Registry
    from ..train import load_train_config
    from ..train.finetune import finetune, finetune_config, open_labelled_source, prepare_finetune_data

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    champion = Registry(args.registry).resolve()  # fine-tuning always builds on the champion
    voxel_size_a = read_config(champion).voxel_size_a
    items, provenance = open_labelled_source(
        args.data,
        picks_users=args.picks_user,
        picks_sessions=args.picks_session,
        tomo_type=args.tomo_type,
        voxel_size_a=args.voxel_size,
    )
    base = None if args.config in (None, "finetune") else load_train_config(args.config)
    seed = secrets.randbelow(2**31) if args.seed == "new" else args.seed
    minutes = args.max_minutes if args.max_minutes is not None else (30.0 if base is None else None)
    config = finetune_config(
        base,
        output_dir=args.output_dir,
        init_checkpoint=str(champion),
        seed=seed,
        device=args.device,
        max_wall_s=None if minutes is None else 60 * minutes,
    )
    if seed is not None and not args.output_dir:
        config = config.model_copy(update={"output_dir": f"{config.output_dir}-seed{seed}"})
    data_options = {
        "holdout": args.holdout or "auto",
        "absent_classes_are_background": args.absent_classes_are_background,
        "synthetic_fraction": args.synthetic_fraction or 0.0,
    }
    result = finetune(items, config, model_voxel_size_a=voxel_size_a, provenance=provenance, **data_options)
    print(
        f"fine-tuned: best checkpoint {result.best_checkpoint} (held-out {result.best_score:.4f}); evaluating"
    )
    # The same split again (it depends only on the items, the options and the seed), so candidate and
    # champion are scored on exactly the tomograms or y-blocks the fine-tuning held out.
    held = prepare_finetune_data(
        items,
        model_voxel_size_a=voxel_size_a,
        target_radius_fraction=config.target_radius_fraction,
        seed=config.seed,
        **data_options,
    )
    description = {
        key: provenance.get(key) for key in ("source", "kind", "tomo_type", "picks_users", "picks_sessions")
    }
    description.update(held.provenance["validation"])
    data = DataEvaluation(held.validation, description, args.eval_window or config.val_window_vox)
    return _promote_checkpoint(
        args,
        result.best_checkpoint,
        data=data,
        min_gain_f_beta=DEFAULT_MIN_GAIN_F_BETA if args.min_gain is None else args.min_gain,
        max_forgetting_f_beta=(
            DEFAULT_MAX_FORGETTING_F_BETA if args.max_forgetting is None else args.max_forgetting
        ),
    )


def _models(args: argparse.Namespace) -> int:
    from ..registry import Registry

    for entry in Registry(args.registry).entries():
        held_out = entry.config.scores.get("held_out", {}).get("weighted_f_beta")
        validation = entry.config.scores.get("validation", {}).get("weighted_f_beta")
        mark = "*" if entry.champion else " "
        print(
            f"{mark} {entry.version}  held-out {held_out if held_out is not None else '-'}  "
            f"validation {validation if validation is not None else '-'}"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from ..registry import Registry

    Registry(args.registry).set_champion(args.version, reason="manual rollback")
    print(f"champion is now {args.version}")
    return 0
