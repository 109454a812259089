"""The training config: every setting of a run, the shipped presets and the loader for files and presets."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..localize import DEFAULT_TARGET_RADIUS_FRACTION
from ..loss import FOCAL_TVERSKY_ALPHA, FOCAL_TVERSKY_GAMMA
from ..options import WINDOW_MULTIPLE_VOX
from ..particles import PARTICLE_CLASSES
from ..synth import FAMILIES, PhantomSettings

__all__ = ["PRESETS", "TrainConfig", "load_train_config"]

# The presets ship inside the package, next to this subpackage: octopi_core/presets/<name>.yaml.
_PRESET_DIR = Path(__file__).parent.parent / "presets"
PRESETS = (
    "card",
    "cpu",
    "cpu-refine",
    "cpu-refine-2",
    "cpu-refine-3",
    "gpu-refine",
    "families-refine",
    "cpu-families",
    "tiny",
)


class TrainConfig(BaseModel):
    """Every training setting. Load from YAML/TOML with :func:`load_train_config`.

    Lengths are in voxels, durations in seconds, rates per optimizer step.
    """

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    output_dir: str = "runs/train"
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = torch's default")
    device: str = "auto"
    init_checkpoint: str | None = Field(
        None, description="start from this checkpoint's weights ('default' = the shipped model)"
    )
    # data
    train_settings: PhantomSettings = Field(default_factory=PhantomSettings)
    val_settings: PhantomSettings = Field(default_factory=PhantomSettings)
    train_families: list[str] = Field(
        default_factory=list,
        description="generator families (octopi_core.synth.FAMILIES) the training tomograms are made in, one "
        "per tomogram drawn by its seed, each over train_settings' ranges; empty = train_settings alone",
    )
    train_pool_size: int = Field(8, ge=1, description="tomograms held in memory")
    refresh_per_epoch: int = Field(2, ge=0, description="pool tomograms replaced by new ones each epoch")
    data_workers: int = Field(
        0,
        ge=0,
        description="processes making the next epoch's new tomograms while the network "
        "trains; 0 = made in the training process between epochs",
    )
    data_threads: int = Field(
        1, ge=1, description="threads cutting the next batches while the network trains"
    )
    val_tomograms: int = Field(2, ge=1)
    patch_vox: int = Field(112, ge=16, multiple_of=WINDOW_MULTIPLE_VOX)
    patch_vox_choices: list[int] = Field(
        default_factory=list,
        description="patch sizes, one drawn per batch, so that predictions depend less on the window "
        "size; a batch of size p holds batch_size x (patch_vox / p)^3 patches (at least one), about the "
        "voxels of one patch_vox batch; empty = patch_vox alone",
    )
    background_patch_fraction: float = Field(0.1, ge=0, le=1)
    hard_negative_patch_fraction: float = Field(
        0.0,
        ge=0,
        le=1,
        description="patches centred on unlabelled look-alike proteins (clutter), which teach the "
        "network what not to pick",
    )
    class_sampling_weights: dict[str, float] = Field(
        default_factory=lambda: {p.name: 1.0 for p in PARTICLE_CLASSES}
    )
    target_radius_fraction: float = Field(DEFAULT_TARGET_RADIUS_FRACTION, gt=0, le=1)
    # augmentation
    intensity_scale: tuple[float, float] = (0.8, 1.25)
    noise_std: tuple[float, float] = (0.0, 0.3)
    # optimisation
    batch_size: int = Field(2, ge=1)
    epochs: int = Field(500, ge=1)
    steps_per_epoch: int = Field(50, ge=1)
    lr: float = Field(2.796e-6, gt=0)
    lr_min_fraction: float = Field(0.05, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    dropout: float = Field(0.23, ge=0, lt=1)
    loss_alpha: float = Field(FOCAL_TVERSKY_ALPHA, ge=0, le=1)
    loss_gamma: float = Field(FOCAL_TVERSKY_GAMMA, gt=0)
    cross_entropy_weight: float = Field(
        0.0, ge=0, description="adds weighted cross-entropy to the Focal Tversky loss"
    )
    ema_decay: float = Field(0.99, ge=0, lt=1)
    amp: bool = Field(
        True,
        description="mixed precision (bf16) on CUDA and on CPUs that do bf16 in hardware (AVX512-BF16, AMX)",
    )
    # validation and stopping
    val_every_epochs: int = Field(1, ge=1)
    val_time_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="skip a due validation while validating has taken more than this share of the run's "
        "time; the last epoch is always validated. 0 = validate every val_every_epochs",
    )
    val_window_vox: int | tuple[int, int, int] | None = Field(
        None, description="validation/tuning window, voxels (N or [z, y, x]); None = the inference defaults"
    )
    selection_metric: Literal["mean_f_beta", "weighted_f_beta"] = "mean_f_beta"
    patience_epochs: int = Field(20, ge=1, description="stop after this many validations without improvement")
    selection_tolerance: float = Field(
        0.0,
        ge=0,
        le=1,
        description="a validation within this of the best score so far still replaces the best checkpoint "
        "(it does not count as an improvement): the later, longer-trained weights win a near-tie, which "
        "with few held-out particles is what validation can tell apart",
    )
    min_tuning_particles: int = Field(
        0,
        ge=0,
        description="re-tune a class's pick threshold only when the tuning data hold at least this many of "
        "its particles; a class with fewer keeps the starting model's threshold (fine-tuning)",
    )
    tune_localization: bool = Field(
        True, description="after training, tune the pick threshold on new tomograms"
    )
    tune_data: Literal["validation", "training"] = Field(
        "validation",
        description="generator settings of the tuning tomograms: val_settings or the (usually broader) "
        "train_settings, which keeps clean data from being over-picked",
    )
    tune_tomograms: int | None = Field(None, ge=1, description="tuning tomograms; None = val_tomograms")
    max_wall_s: float = Field(
        0,
        ge=0,
        description="stop training in time for a last validation and the tuning to end near this; 0 = no limit",
    )

    def generator_settings(self, data: Literal["validation", "training"]) -> PhantomSettings:
        """The validation or the training settings of the phantom generator."""
        return self.train_settings if data == "training" else self.val_settings

    @field_validator("patch_vox_choices")
    @classmethod
    def _patch_sizes_fit_the_network(cls, sizes: list[int]) -> list[int]:
        wrong = [s for s in sizes if s < 16 or s % WINDOW_MULTIPLE_VOX]
        if wrong:
            raise ValueError(
                f"patch_vox_choices must be multiples of {WINDOW_MULTIPLE_VOX} from 16 up, got {wrong}"
            )
        return sizes

    @field_validator("train_families")
    @classmethod
    def _families_exist(cls, names: list[str]) -> list[str]:
        unknown = sorted(set(names) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown generator families {unknown}; known: {sorted(FAMILIES)}")
        return names

    @model_validator(mode="after")
    def _patch_fractions_fit(self) -> TrainConfig:
        if self.background_patch_fraction + self.hard_negative_patch_fraction > 1:
            raise ValueError("background_patch_fraction + hard_negative_patch_fraction must not exceed 1")
        return self


def load_train_config(source: str | Path) -> TrainConfig:
    """Load a config from a YAML/TOML file or a preset name (``card``, ``cpu``, ``tiny``).

    Raises:
        ValueError: unreadable file, or a setting that fails validation (named in the message).
    """
    path = Path(source)
    if not path.exists() and str(source) in PRESETS:
        path = _PRESET_DIR / f"{source}.yaml"
    if not path.is_file():
        raise ValueError(
            f"training config {str(source)!r} is neither a file nor a preset ({', '.join(PRESETS)})"
        )
    try:
        if path.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(path.read_text())
        else:
            raw = yaml.safe_load(path.read_text()) or {}
    except Exception as e:
        raise ValueError(f"training config {str(path)!r} is not valid YAML/TOML: {e}") from e
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise ValueError(f"training config {str(path)!r} is invalid: {problems}") from e
