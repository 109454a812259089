"""Limits on the work one tomogram may cause: what a voxel costs a worker, the memory a process may use, and
the voxel, byte and chunk limits derived from them (the defaults of the ``max_tomogram_*`` settings).

Stdlib only: the settings import it, and they must stay cheap to import.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exceptions import TomogramTooLargeError

__all__ = [
    "WORKER_BYTES_PER_VOXEL",
    "WORKER_BASE_BYTES",
    "MEMORY_SAFETY_FRACTION",
    "DEFAULT_MAX_CHUNKS",
    "TomogramLimits",
    "available_memory_bytes",
    "default_max_voxels",
    "default_max_bytes",
]

# Peak resident memory of a worker per voxel of the loaded (resampled) volume, bytes: the float32 volume,
# the uint8 label and float16 confidence maps, one y-slab of probabilities, localization's labels and
# distance maps. Measured as the slope of peak RSS (``resource.getrusage``) over tomogram size around
# ``Picker.predict`` on CPU with the default 96^3 windows: 43 B/voxel between 4.2 M and 18.9 M voxels of
# noise (README, "Guarantees"); rounded up.
WORKER_BYTES_PER_VOXEL = 48
# What a worker holds whatever the tomogram, bytes: interpreter, torch, the model, one batch of windows
# (measured: about 1.2 GiB peak RSS at the intercept of the same fit).
WORKER_BASE_BYTES = 3 * 2**29  # 1.5 GiB
# Share of the memory left after the base that one tomogram may take: allocator slack and fragmentation.
MEMORY_SAFETY_FRACTION = 0.5
# Most chunks a zarr level may have: each chunk is one read (one request remotely), so a volume cut into
# 1x1x1 chunks would keep a worker busy for hours. 630x630x184 in 16^3 chunks is 19,200.
DEFAULT_MAX_CHUNKS = 100_000
_CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)
_MIN_VOXELS = 96**3  # the defaults never go below one default window
_UNLIMITED_BYTES = 2**60  # cgroup v1 writes a huge number for "no limit"


@dataclass(frozen=True)
class TomogramLimits:
    """What one tomogram may cost; checked from metadata, before any voxel is read.

    Attributes:
        max_voxels: most voxels of the volume as loaded (after resampling to the model's voxel size).
        max_bytes: most bytes of the stored level or file read (voxels x item size).
        max_chunks: most chunks of a zarr level (each is one read).
    """

    max_voxels: int
    max_bytes: int
    max_chunks: int = DEFAULT_MAX_CHUNKS

    def check_size(
        self,
        uri: str,
        *,
        loaded_shape_zyx: Sequence[int],
        stored_shape_zyx: Sequence[int],
        itemsize_bytes: int,
    ) -> None:
        """Refuse a tomogram whose loaded volume or stored level is over the limits.

        Args:
            uri: the tomogram, named in the message.
            loaded_shape_zyx: shape of the volume as it will be loaded (after resampling), voxels.
            stored_shape_zyx: shape of the level or file read, voxels.
            itemsize_bytes: bytes per stored voxel.

        Raises:
            TomogramTooLargeError: over ``max_voxels`` or ``max_bytes``.
        """
        voxels = math.prod(int(n) for n in loaded_shape_zyx)
        stored_bytes = math.prod(int(n) for n in stored_shape_zyx) * int(itemsize_bytes)
        if voxels > self.max_voxels or stored_bytes > self.max_bytes:
            raise TomogramTooLargeError(
                f"tomogram {uri} has {voxels} voxels as loaded (shape zyx {tuple(loaded_shape_zyx)}; stored "
                f"{tuple(stored_shape_zyx)}, {stored_bytes} bytes); this service accepts at most "
                f"{self.max_voxels} voxels and {self.max_bytes} bytes"
            )


def available_memory_bytes() -> int:
    """Memory this process may use, bytes: its cgroup's limit when one is set, else the machine's RAM.

    Returns:
        The smaller of the cgroup limit (if any) and the physical memory.
    """
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in _CGROUP_LIMIT_FILES:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < _UNLIMITED_BYTES:
            return min(total, int(text))
    return total


def default_max_voxels(memory_bytes: int | None = None) -> int:
    """Largest loaded volume a worker with ``memory_bytes`` can hold, voxels (after resampling).

    Args:
        memory_bytes: memory of the worker process, bytes; default :func:`available_memory_bytes`.

    Returns:
        ``(memory_bytes - WORKER_BASE_BYTES) * MEMORY_SAFETY_FRACTION / WORKER_BYTES_PER_VOXEL``, at least
        one 96^3 window's worth (16 GiB: 163 M voxels; 630x630x184 is 73 M).
    """
    memory = available_memory_bytes() if memory_bytes is None else memory_bytes
    budget = (memory - WORKER_BASE_BYTES) * MEMORY_SAFETY_FRACTION
    return max(_MIN_VOXELS, int(budget / WORKER_BYTES_PER_VOXEL))


def default_max_bytes(memory_bytes: int | None = None) -> int:
    """Largest stored level a worker reads, bytes: the memory share of :func:`default_max_voxels`.

    Args:
        memory_bytes: memory of the worker process, bytes; default :func:`available_memory_bytes`.

    Returns:
        ``(memory_bytes - WORKER_BASE_BYTES) * MEMORY_SAFETY_FRACTION``, at least one 96^3 float64 window.
    """
    memory = available_memory_bytes() if memory_bytes is None else memory_bytes
    return max(_MIN_VOXELS * 8, int((memory - WORKER_BASE_BYTES) * MEMORY_SAFETY_FRACTION))
