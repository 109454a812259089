"""Read tomograms by URI into zyx float32 arrays with voxel sizes in Å, and write test tomograms.

URIs may be local paths, ``file://``, ``http(s)://`` or ``s3://``, parsed by :func:`parse_uri` (the parser
the gateway's URI policy uses too). Formats are OME-Zarr (NGFF 0.4
on zarr v2, NGFF 0.5 on zarr v3), plain zarr arrays, and MRC/REC. Volumes are indexed zyx in
voxels; physical positions are zyx in Å in the frame of the original tomogram: voxel ``i`` of a
volume sits at ``origin_zyx_a + i * voxel_size_zyx_a``. Every failure to read is raised as a
:class:`~octopi_core.exceptions.TomogramError` subclass whose message names the URI.
"""

from ._location import service_storage_options
from .mrc import write_mrc
from .normalization import normalize_volume
from .ome_zarr import write_ome_zarr
from .output import check_output_writable, write_output
from .source import TomogramSource
from .spectrum import match_spectrum, median_log_power, radial_log_power
from .tomogram import LoadedTomogram, load_tomogram, loaded_shape_zyx, open_tomogram
from .uri import ParsedUri, parse_uri, uri_scheme
from .voxel_size import MAX_VOXEL_SIZE_A, MIN_VOXEL_SIZE_A

__all__ = [
    "MIN_VOXEL_SIZE_A",
    "MAX_VOXEL_SIZE_A",
    "TomogramSource",
    "LoadedTomogram",
    "open_tomogram",
    "load_tomogram",
    "loaded_shape_zyx",
    "normalize_volume",
    "match_spectrum",
    "median_log_power",
    "radial_log_power",
    "write_ome_zarr",
    "write_mrc",
    "write_output",
    "check_output_writable",
    "service_storage_options",
    "ParsedUri",
    "parse_uri",
    "uri_scheme",
]
