"""Synthetic cryo-ET tomograms with known particles, for training, tests, demos and benchmarks.

One module per concern: :mod:`.settings` (the ranges drawn from, and the family axes),
:mod:`.shapes` (blob particle and clutter shapes), :mod:`.subunits` (the subunit shape model),
:mod:`.render` (drawing objects into a density), :mod:`.crowding` (membranes, filaments),
:mod:`.imaging` (CTF, missing wedge, noise, reconstruction look, grey levels), :mod:`.phantom`
(:func:`make_phantom`, which draws and places everything), :mod:`.families` (named held-out
families) and :mod:`.writing` (:func:`write_phantom`).
"""

from .families import (
    FAMILIES,
    FAMILY_SEED_BASE,
    family_for_seed,
    family_seeds,
    settings_for_seed,
    with_family,
)
from .phantom import Phantom, make_phantom
from .settings import HELD_OUT_SETTINGS, Crowding, Geometry, PhantomSettings, Reconstruction, ShapeModel
from .writing import write_phantom

__all__ = [
    "PhantomSettings",
    "Phantom",
    "make_phantom",
    "write_phantom",
    "HELD_OUT_SETTINGS",
    "ShapeModel",
    "Reconstruction",
    "Geometry",
    "Crowding",
    "FAMILIES",
    "FAMILY_SEED_BASE",
    "family_seeds",
    "with_family",
    "family_for_seed",
    "settings_for_seed",
]
