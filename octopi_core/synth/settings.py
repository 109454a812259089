"""The ranges the phantom generator draws each tomogram's settings from, and the held-out ranges."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PhantomSettings", "HELD_OUT_SETTINGS"]


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
