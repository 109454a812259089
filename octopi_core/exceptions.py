"""Domain errors, each named after the condition it reports.

Every error raised on purpose by ``octopi_core`` derives from :class:`OctopiError`, so callers
(the CLI, the gateway, the workers) can catch one base class and show the message as it is:
messages name the problem and the offending value, never a bare traceback.
"""

__all__ = [
    "OctopiError",
    "TomogramError",
    "TomogramNotFoundError",
    "TomogramAccessDeniedError",
    "TomogramUnreachableError",
    "UnsupportedUriError",
    "UnsupportedFormatError",
    "UnsupportedDataTypeError",
    "RedirectRefusedError",
    "CorruptTomogramError",
    "InvalidTomogramShapeError",
    "EmptyTomogramError",
    "InvalidVoxelSizeError",
    "TomogramTooSmallError",
    "TomogramTooLargeError",
    "TooManyChunksError",
    "OutputNotWritableError",
    "CheckpointError",
    "UnknownParticleClassError",
    "NoInputSpectrumError",
    "PicksFormatError",
    "InferenceCancelledError",
    "TrainingDataError",
    "DataSourceError",
    "AmbiguousDataError",
    "UnknownRunError",
    "PicksExistError",
]


class OctopiError(Exception):
    """Base class of every deliberate octopi error."""


class TomogramError(OctopiError):
    """A tomogram could not be used; the message says why."""


class TomogramNotFoundError(TomogramError):
    """Nothing exists at the tomogram URI (missing file, HTTP 404, missing S3 key)."""


class TomogramAccessDeniedError(TomogramError):
    """The tomogram exists but may not be read (file permissions, HTTP 401/403, S3 AccessDenied)."""


class TomogramUnreachableError(TomogramError):
    """The host serving the tomogram could not be reached (DNS failure, refused connection, timeout)."""


class UnsupportedUriError(TomogramError):
    """The URI's scheme is not one of local path, file://, http(s):// or s3://."""


class UnsupportedFormatError(TomogramError):
    """The object at the URI is neither OME-Zarr/Zarr nor MRC/REC."""


class UnsupportedDataTypeError(TomogramError):
    """The voxels are not real numbers (complex MRC modes 3/4, complex or non-numeric zarr dtypes)."""


class RedirectRefusedError(TomogramError):
    """The HTTP server answered with a redirect, which the service does not follow (SSRF protection)."""


class CorruptTomogramError(TomogramError):
    """The file is of a known format but its header or data is damaged or truncated."""


class InvalidTomogramShapeError(TomogramError):
    """The array is not three-dimensional (z, y, x)."""


class EmptyTomogramError(TomogramError):
    """The volume holds no usable signal: all NaN/inf, or constant."""


class InvalidVoxelSizeError(TomogramError):
    """The voxel size is missing, non-positive or outside the plausible range for cryo-ET."""


class TomogramTooSmallError(TomogramError):
    """The tomogram is smaller than one inference window along some axis."""


class TomogramTooLargeError(TomogramError):
    """The volume as loaded has more voxels, or the level read more bytes, than the service's limits."""


class TooManyChunksError(TomogramError):
    """A zarr level is cut into more chunks than the service reads for one tomogram (each is one read)."""


class OutputNotWritableError(OctopiError):
    """The local ``output_uri`` directory cannot be created or written."""


class CheckpointError(OctopiError):
    """A model checkpoint is missing, corrupt or does not match its config."""


class UnknownParticleClassError(OctopiError, ValueError):
    """A requested particle class is not one the model picks (also a ValueError, as before it had a name)."""


class NoInputSpectrumError(OctopiError, ValueError):
    """Spectrum matching was asked of a model whose config holds no training spectrum to match."""


class PicksFormatError(OctopiError):
    """A picks file could not be parsed (unknown format, missing columns, bad values)."""


class InferenceCancelledError(OctopiError):
    """Reading, inference or localization was stopped because the caller's cancellation check said so."""


class TrainingDataError(OctopiError):
    """Training cannot start: no tomograms, or tomograms with no labelled particles."""


class DataSourceError(OctopiError):
    """A data source (copick project, folder of tomograms, URI list) cannot be opened or written as asked."""


class AmbiguousDataError(DataSourceError):
    """Several tomogram types, voxel spacings, picks sessions or files match; the message says what to pass."""


class UnknownRunError(DataSourceError):
    """The copick project has no run of the name asked for."""


class PicksExistError(OctopiError):
    """Picks of that user, session and object exist already, and overwriting them was not asked for."""
