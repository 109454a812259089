"""The ranges the phantom generator draws each tomogram's settings from, and the held-out ranges."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PhantomSettings", "HELD_OUT_SETTINGS", "ShapeModel", "Reconstruction", "Geometry", "Crowding"]


class ShapeModel(str, Enum):
    """How a labelled particle is built.

    - ``blobs``: sums of Gaussian blobs, saturated (the original generator).
    - ``subunits``: solid, sharp-edged ellipsoidal subunits in each complex's published
      symmetry (apo-ferritin O, 24 subunits; beta-amylase and beta-galactosidase D2 tetramers;
      the ribosome's two unequal subunits; thyroglobulin a C2 dimer; the VLP an icosahedral
      T=3 shell of 180 subunits), sized to the class mass (1.21 Å³/Da) within the class radius,
      each subunit with its own density.
    """

    BLOBS = "blobs"
    SUBUNITS = "subunits"


class Reconstruction(str, Enum):
    """How the tomogram looks after reconstruction.

    - ``wbp``: weighted back-projection: full resolution, noise with a ramp (the original).
    - ``sirt``: SIRT-like: signal and noise low-passed (15-30 Å), no noise ramp.
    - ``denoised``: a denoised look: 3-6 x less noise, the rest low-passed into blotches, a
      compressive grey response.
    """

    WBP = "wbp"
    SIRT = "sirt"
    DENOISED = "denoised"


class Geometry(str, Enum):
    """The tilt geometry that shapes the missing information.

    - ``single-axis-y``: one tilt axis along y (the original).
    - ``rotated-axis``: one tilt axis at a random angle in the xy plane.
    - ``dual-axis``: two orthogonal tilt series (x and y): a missing pyramid, not a wedge.
    """

    SINGLE_AXIS_Y = "single-axis-y"
    ROTATED_AXIS = "rotated-axis"
    DUAL_AXIS = "dual-axis"


class Crowding(str, Enum):
    """What else fills the sample besides the labelled particles.

    - ``proteins``: unlabelled proteins, vesicles, gold beads (the original).
    - ``membranes``: the same plus 1-3 large, gently curved membrane sheets across the field.
    - ``filaments``: the same plus 3-10 actin-like filaments (70 Å, 2-start beads every 27.5 Å).
    """

    PROTEINS = "proteins"
    MEMBRANES = "membranes"
    FILAMENTS = "filaments"


class PhantomSettings(BaseModel):
    """Ranges the generator draws each tomogram's settings from (uniform unless stated).

    Ranges are ``(low, high)``; a tomogram uses one value drawn from each. Defaults are the
    training distribution; :data:`HELD_OUT_SETTINGS` is a shifted one for evaluation.
    """

    model_config = ConfigDict(extra="forbid")

    shape_zyx: tuple[int, int, int] = (128, 256, 256)
    voxel_size_a: float | tuple[float, float, float] = 10.0
    particles_per_1e9_a3: tuple[float, float] = (3.0, 12.0)
    clutter_per_1e9_a3: tuple[float, float] = (2.0, 10.0)
    class_mix_concentration: float = Field(2.0, gt=0, description="Dirichlet concentration of the class mix")
    vesicles: tuple[int, int] = (0, 3)
    gold_beads: tuple[int, int] = (0, 3)
    sample_thickness_fraction: tuple[float, float] = (0.55, 0.9)
    shape_jitter: float = Field(0.06, ge=0, description="per-blob position jitter, fraction of radius")
    defocus_um: tuple[float, float] = (1.5, 5.0)
    phase_flipped_probability: float = 0.5
    bfactor_a2: tuple[float, float] = (50.0, 400.0)
    amplitude_contrast: tuple[float, float] = (0.07, 0.15)
    tilt_max_deg: tuple[float, float] = (40.0, 60.0)
    snr: tuple[float, float] = (0.4, 2.0)
    tilt_noise_gain: tuple[float, float] = (0.0, 1.5)
    ice_gradient: tuple[float, float] = (0.0, 0.6)
    inverted_contrast_probability: float = 0.5
    grey_offset: tuple[float, float] = (-500.0, 500.0)
    grey_log10_scale: tuple[float, float] = (-2.0, 2.0)
    # How the tomogram is made. The defaults are the original generator, byte for byte; any other
    # value draws its extra randomness from a second stream, (seed, 17).
    shape_model: ShapeModel = ShapeModel.BLOBS
    reconstruction: Reconstruction = Reconstruction.WBP
    geometry: Geometry = Geometry.SINGLE_AXIS_Y
    crowding: Crowding = Crowding.PROTEINS
    binning: int = Field(1, ge=1, le=4, description="render and image at voxel/binning, then average-bin")
    voxel_size_jitter_a: float = Field(
        0.0, ge=0, le=3.0, description="each tomogram's voxel size drawn within ± this, Å (isotropic)"
    )


# Evaluation settings the training distribution does not cover: thinner tilt ranges, other
# defocus and noise, denser crowding, more clutter.
HELD_OUT_SETTINGS = PhantomSettings(
    particles_per_1e9_a3=(10.0, 16.0),
    clutter_per_1e9_a3=(8.0, 14.0),
    defocus_um=(4.5, 6.5),
    bfactor_a2=(300.0, 600.0),
    tilt_max_deg=(35.0, 45.0),
    snr=(0.3, 0.6),
    shape_jitter=0.09,
)
