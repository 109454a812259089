"""Which torch device runs the network: one rule for training, tuning, the CLI and the workers."""

from __future__ import annotations

import torch

from .exceptions import OctopiError

__all__ = ["select_device", "cpu_has_native_bf16"]


def select_device(name: str | None = None, *, asked_by: str = "the configuration") -> torch.device:
    """Return the torch device for ``name``.

    Args:
        name: one of

            - ``None`` or ``"auto"``: the first CUDA GPU when one is visible, else the CPU.
            - ``"cpu"``: the CPU.
            - ``"cuda"`` or ``"cuda:N"``: that GPU; refused when no CUDA GPU is visible.
        asked_by: who asks for the device, for the error message (e.g. ``"the training config"``).

    Returns:
        The device.

    Raises:
        OctopiError: when ``name`` asks for CUDA and no CUDA GPU is available (refused up front rather
            than as a torch traceback halfway through a run).
    """
    if name is None or name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise OctopiError(
            f"{asked_by} asks for device {name!r}, but no CUDA GPU is available here; "
            "set device to 'auto' or 'cpu'"
        )
    return device


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX), where bf16 convolutions
    run about twice as fast as fp32; elsewhere oneDNN emulates bf16, slower than fp32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private: absent in some builds
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)
