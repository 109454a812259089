"""A checkpoint's config: architecture, classes, voxel size, version, training recipe and scores.

Kept apart from :mod:`octopi_core.model` so that reading configs (registry listings, the gateway)
does not import torch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .exceptions import NoInputSpectrumError, UnknownParticleClassError
from .particles import PARTICLE_CLASSES, particle_by_name

__all__ = [
    "ModelConfig",
    "WEIGHTS_FILE",
    "CONFIG_FILE",
    "default_checkpoint_dir",
    "read_config",
    "check_model_classes",
    "check_spectrum_matching",
]

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_PACKAGED_MODEL_DIR = Path(__file__).parent / "models" / "default"


class ModelConfig(BaseModel):
    """Everything needed to rebuild a trained network and interpret its output.

    The defaults are the published Octopi picker: a MONAI 3-D U-Net with 1 input channel,
    7 outputs (background + the 6 CZII classes), channels 32-64-128-128-128-128, strides
    2-2-1-1-1, one residual unit per level and dropout 0.23 (5,029,192 parameters). Two
    stride-2 levels mean window sizes must be multiples of 4 voxels.
    """

    model_config = ConfigDict(extra="forbid")

    architecture: str = "unet"
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 128, 128, 128, 128)
    strides: tuple[int, ...] = (2, 2, 1, 1, 1)
    num_res_units: int = 1
    dropout: float = Field(0.23, ge=0.0, lt=1.0)
    classes: tuple[str, ...] = tuple(p.name for p in PARTICLE_CLASSES)
    voxel_size_a: float = Field(10.0, gt=0.0, description="voxel size the network was trained at, Å")
    version: str = ""
    weights_sha256: str = ""
    training: dict[str, Any] = Field(default_factory=dict, description="recipe, seed, epochs, data")
    scores: dict[str, Any] = Field(default_factory=dict, description="validation scores")
    input_spectrum: tuple[float, ...] | None = Field(
        None,
        description="median radial log power of tomograms of the training data, for predict's match_spectrum "
        "(octopi_core.io.spectrum); None: the model has none",
    )

    @field_validator("architecture")
    @classmethod
    def _known_architecture(cls, value: str) -> str:
        if value.lower() != "unet":
            raise ValueError(f"architecture must be 'unet', got {value!r}")
        return "unet"

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(particle_by_name(name).name for name in value)

    @property
    def out_channels(self) -> int:
        """Output channels: background plus one per class."""
        return len(self.classes) + 1

    @property
    def window_multiple_vox(self) -> int:
        """Window sizes must be multiples of this (product of the strides)."""
        multiple = 1
        for stride in self.strides:
            multiple *= stride
        return multiple


def default_checkpoint_dir() -> Path:
    """Directory of the model shipped in the package."""
    return _PACKAGED_MODEL_DIR


def read_config(directory: str | Path) -> ModelConfig:
    """Read only a checkpoint's config (for listings), without loading weights."""
    return ModelConfig.model_validate(json.loads((Path(directory) / CONFIG_FILE).read_text()))


def check_model_classes(config: ModelConfig, classes: Iterable[str] | None) -> list[str] | None:
    """The canonical names of the requested ``classes``, after checking that the model picks each one.

    Args:
        config: the model's config; ``config.classes`` are the classes it picks.
        classes: requested class names (canonical CZII names or aliases, any case); None means all.

    Returns:
        The canonical names, sorted and without repeats; None when ``classes`` is None.

    Raises:
        ValueError: a name that is no CZII particle class at all.
        UnknownParticleClassError: a CZII class that this model does not pick.
    """
    if classes is None:
        return None
    names = sorted({particle_by_name(name).name for name in classes})
    unknown = [name for name in names if name not in config.classes]
    if unknown:
        raise UnknownParticleClassError(
            f"model {config.version} does not pick {', '.join(unknown)}; it picks {', '.join(config.classes)}"
        )
    return names


def check_spectrum_matching(config: ModelConfig, match_spectrum: bool) -> None:
    """Check that the model can match spectra when asked to.

    Raises:
        NoInputSpectrumError: ``match_spectrum`` is asked of a model without ``input_spectrum``.
    """
    if match_spectrum and config.input_spectrum is None:
        raise NoInputSpectrumError(
            f"model {config.version} has no input spectrum to match tomograms to; predict without "
            "match_spectrum, or record one with `octopi-serve tune`"
        )
