"""Writing a phantom's tomogram (OME-Zarr or MRC) and its truth (picks JSON)."""

from __future__ import annotations

from pathlib import Path

from .phantom import Phantom

__all__ = ["write_phantom"]


def write_phantom(
    phantom: Phantom, directory: str | Path, run_name: str, *, fmt: str = "zarr", zarr_format: int = 2
) -> tuple[Path, Path]:
    """Write a phantom's tomogram and truth.

    Args:
        phantom: from :func:`make_phantom`.
        directory: folder to write into (created).
        run_name: file stem; the truth is ``<run_name>.truth.json``.
        fmt: ``"zarr"`` (OME-Zarr, ``<run_name>.zarr``) or ``"mrc"`` (``<run_name>.mrc``).
        zarr_format: 2 (NGFF 0.4) or 3 (NGFF 0.5), for ``fmt="zarr"``.

    Returns:
        ``(tomogram_path, truth_path)``.

    Raises:
        ValueError: for an unknown ``fmt``.
    """
    from ..io import write_mrc, write_ome_zarr  # io depends on heavy readers; import on use

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "zarr":
        path = directory / f"{run_name}.zarr"
        write_ome_zarr(str(path), phantom.volume, phantom.voxel_size_zyx_a, zarr_format=zarr_format)
    elif fmt == "mrc":
        path = directory / f"{run_name}.mrc"
        write_mrc(str(path), phantom.volume, phantom.voxel_size_zyx_a)
    else:
        raise ValueError(f"fmt must be 'zarr' or 'mrc', got {fmt!r}")
    truth_path = directory / f"{run_name}.truth.json"
    truth_path.write_text(phantom.truth_document(run_name, str(path)).model_dump_json(indent=2))
    return path, truth_path
