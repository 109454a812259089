"""The Octopi U-Net: construction from a config, and checkpoints that never unpickle code.

A checkpoint is a directory holding ``model.safetensors`` (weights) and ``config.json``
(:class:`ModelConfig`: architecture, class list, voxel size, version, training metadata and
validation scores, plus the SHA-256 of the weights file). Checkpoints written by the original
Octopi tool (a PyTorch ``state_dict`` file plus its model-config YAML) load too, through
``torch.load(weights_only=True)``, which refuses arbitrary pickled objects.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from monai.networks.nets import UNet
from pydantic import ValidationError
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .exceptions import CheckpointError
from .model_config import CONFIG_FILE, WEIGHTS_FILE, ModelConfig
from .particles import PARTICLE_CLASSES

__all__ = [
    "build_model",
    "count_parameters",
    "for_inference",
    "save_checkpoint",
    "load_checkpoint",
    "load_octopi_checkpoint",
]


def build_model(config: ModelConfig | None = None) -> UNet:
    """Build the (untrained) network described by ``config`` (default: the published picker)."""
    config = config or ModelConfig()
    return UNet(
        spatial_dims=3,
        in_channels=config.in_channels,
        out_channels=config.out_channels,
        channels=config.channels,
        strides=config.strides,
        num_res_units=config.num_res_units,
        dropout=config.dropout,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with each stride-1 transposed convolution replaced by the convolution that computes the same
    function: its kernel flipped and its in and out channels swapped, padding ``k - 1 - p``. In place.

    The published U-Net has three (its up-sampling path below the two strided levels). The outputs are the
    same up to rounding; in bf16 on a CPU the network runs 1.09-1.12 x faster, oneDNN's transposed
    convolutions being slower than its plain ones of the same size. For inference only: the result is not
    the architecture checkpoints describe, so never save or train it.
    """
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ConvTranspose3d) and _is_plain_stride_1(child):
                setattr(parent, name, _as_convolution(child))
    return model


def _is_plain_stride_1(layer: torch.nn.ConvTranspose3d) -> bool:
    return (
        layer.stride == (1, 1, 1)
        and layer.dilation == (1, 1, 1)
        and layer.output_padding == (0, 0, 0)
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and isinstance(layer.padding, tuple)
        and all(p <= k - 1 for p, k in zip(layer.padding, layer.kernel_size))
    )


def _as_convolution(layer: torch.nn.ConvTranspose3d) -> torch.nn.Conv3d:
    kz, ky, kx = layer.kernel_size
    pz, py, px = cast(tuple[int, int, int], layer.padding)  # a tuple, checked by _is_plain_stride_1
    convolution = torch.nn.Conv3d(
        layer.in_channels,
        layer.out_channels,
        (kz, ky, kx),
        padding=(kz - 1 - pz, ky - 1 - py, kx - 1 - px),
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    ).train(layer.training)
    with torch.no_grad():
        # A transposed kernel is (in, out, kz, ky, kx); a plain one (out, in, ...), applied mirrored.
        convolution.weight.copy_(layer.weight.transpose(0, 1).flip(2, 3, 4))
        if layer.bias is not None and convolution.bias is not None:
            convolution.bias.copy_(layer.bias)
    convolution.requires_grad_(layer.weight.requires_grad)
    return convolution


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(model: torch.nn.Module, config: ModelConfig, directory: str | Path) -> ModelConfig:
    """Write ``model`` and ``config`` as a checkpoint directory; return the config as saved.

    The version is ``octopi-unet-<first 12 hex digits of the weights' SHA-256>`` unless the
    config already names one, so the same weights always carry the same version.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights_path = directory / WEIGHTS_FILE
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(weights_path))
    digest = _sha256(weights_path)
    saved = config.model_copy(
        update={"weights_sha256": digest, "version": config.version or f"octopi-unet-{digest[:12]}"}
    )
    (directory / CONFIG_FILE).write_text(saved.model_dump_json(indent=2))
    return saved


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[UNet, ModelConfig]:
    """Load a checkpoint directory (or its ``config.json``) in eval mode on ``device``.

    Also accepts an original Octopi checkpoint: a ``.pth``/``.pt`` state_dict file with its
    model-config YAML beside it (see :func:`load_octopi_checkpoint`).

    Raises:
        CheckpointError: missing files, invalid config, corrupt weights, a weights file whose hash
            differs from the config's, or weights that do not fit the architecture.
    """
    path = Path(path)
    if path.suffix in {".pth", ".pt"}:
        return load_octopi_checkpoint(path, device=device)
    directory = path.parent if path.is_file() else path
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} needs {CONFIG_FILE} and {WEIGHTS_FILE}; not found")
    try:
        config = ModelConfig.model_validate_json(config_path.read_text())
    except (ValidationError, UnicodeDecodeError) as e:
        raise CheckpointError(f"checkpoint config {str(config_path)!r} is invalid: {e}") from e
    if config.weights_sha256 and _sha256(weights_path) != config.weights_sha256:
        raise CheckpointError(
            f"checkpoint weights {str(weights_path)!r} do not match the SHA-256 in its config (corrupt?)"
        )
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"checkpoint weights {str(weights_path)!r} are corrupt: {e}") from e
    return _model_from_state(state, config, str(weights_path), device), config


def load_octopi_checkpoint(
    weights_path: str | Path, config_path: str | Path | None = None, *, device: str | torch.device = "cpu"
) -> tuple[UNet, ModelConfig]:
    """Load a model trained by the original Octopi tool.

    Args:
        weights_path: the ``state_dict`` file (``best_model.pth``); read with ``weights_only=True``.
        config_path: its model-config YAML (``model:`` with ``channels``, ``strides``,
            ``num_res_units``, ``dropout``, ``num_classes``); default: the only ``*.yaml`` beside it.

    Raises:
        CheckpointError: missing or unreadable files, an architecture other than U-Net, or
            weights that do not fit.
    """
    weights_path = Path(weights_path)
    if config_path is None:
        candidates = sorted(weights_path.parent.glob("*.yaml")) + sorted(weights_path.parent.glob("*.yml"))
        if len(candidates) != 1:
            raise CheckpointError(
                f"cannot tell the model config of {str(weights_path)!r}: expected one *.yaml beside it, found {len(candidates)}"
            )
        config_path = candidates[0]
    try:
        raw: dict[str, Any] = yaml.safe_load(Path(config_path).read_text()) or {}
        section: dict[str, Any] = raw.get("model", raw)
        num_classes = int(section.get("num_classes", 7))
        classes = tuple(p.name for p in PARTICLE_CLASSES[: num_classes - 1])
        config = ModelConfig(
            architecture=section.get("architecture", "unet"),
            channels=tuple(section["channels"]),
            strides=tuple(section["strides"]),
            num_res_units=int(section["num_res_units"]),
            dropout=float(section.get("dropout", 0.0)),
            classes=classes,
            voxel_size_a=float(raw.get("voxel_size", section.get("voxel_size", 10.0))),
            version=f"octopi-import-{weights_path.stem}",
            training={"imported_from": str(weights_path)},
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError, ValidationError) as e:
        raise CheckpointError(f"Octopi model config {str(config_path)!r} is unreadable: {e}") from e
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for bad or unsafe pickles
        raise CheckpointError(f"Octopi weights {str(weights_path)!r} could not be loaded safely: {e}") from e
    if not isinstance(state, dict):
        raise CheckpointError(
            f"Octopi weights {str(weights_path)!r} hold a {type(state).__name__}, not a state_dict"
        )
    return _model_from_state(state, config, str(weights_path), device), config


def _model_from_state(state: dict, config: ModelConfig, source: str, device: str | torch.device) -> UNet:
    model = build_model(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"weights in {source!r} do not fit the configured architecture: {e}") from e
    return model.to(device).eval()
