"""The six CZII particle classes: the one place their names, labels, radii and score weights live."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "ParticleClass",
    "PARTICLE_CLASSES",
    "BACKGROUND_LABEL",
    "NUM_OUTPUT_CLASSES",
    "particle_by_name",
    "particle_by_label",
    "resolve_particles",
]


@dataclass(frozen=True)
class ParticleClass:
    """One pickable particle species.

    Attributes:
        name: the CZII name, e.g. ``"apo-ferritin"``.
        label: index of the class in the network output (1..6; 0 is background).
        radius_a: particle radius in Å; a pick matches within ``0.5 * radius_a``.
        score_weight: weight of the class in the CZII weighted F-beta score.
    """

    name: str
    label: int
    radius_a: float
    score_weight: float

    @property
    def match_distance_a(self) -> float:
        """Largest pick-to-truth distance, in Å, that still counts as a match (CZII: 0.5 x radius)."""
        return 0.5 * self.radius_a


# Published CZII values (Peck et al., Nat Methods 2025; Kaggle CryoET Object Identification).
PARTICLE_CLASSES: tuple[ParticleClass, ...] = (
    ParticleClass("apo-ferritin", 1, 60.0, 1.0),
    ParticleClass("beta-amylase", 2, 65.0, 0.0),
    ParticleClass("beta-galactosidase", 3, 90.0, 2.0),
    ParticleClass("ribosome", 4, 150.0, 1.0),
    ParticleClass("thyroglobulin", 5, 130.0, 2.0),
    ParticleClass("virus-like-particle", 6, 135.0, 1.0),
)

BACKGROUND_LABEL = 0
NUM_OUTPUT_CLASSES = len(PARTICLE_CLASSES) + 1

_BY_NAME = {p.name: p for p in PARTICLE_CLASSES}
_BY_LABEL = {p.label: p for p in PARTICLE_CLASSES}
# Spellings seen in the wild (Kaggle CSVs, copick configs) mapped to the canonical names.
_ALIASES = {
    "apoferritin": "apo-ferritin",
    "apo_ferritin": "apo-ferritin",
    "beta_amylase": "beta-amylase",
    "beta_galactosidase": "beta-galactosidase",
    "virus_like_particle": "virus-like-particle",
    "vlp": "virus-like-particle",
    "80s_ribosome": "ribosome",
}


def particle_by_name(name: str) -> ParticleClass:
    """Return the class called ``name`` (canonical CZII name or a common alias, case-insensitive).

    Raises:
        ValueError: when no class has that name.
    """
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return _BY_NAME[key]
    except KeyError:
        known = ", ".join(_BY_NAME)
        raise ValueError(f"unknown particle class {name!r}; known classes: {known}") from None


def particle_by_label(label: int) -> ParticleClass:
    """Return the class whose network-output index is ``label`` (1..6).

    Raises:
        ValueError: for background (0) or an index out of range.
    """
    try:
        return _BY_LABEL[int(label)]
    except KeyError:
        raise ValueError(
            f"no particle class has label {label!r}; labels are 1..{len(PARTICLE_CLASSES)}"
        ) from None


def resolve_particles(names: Iterable[str] | None) -> tuple[ParticleClass, ...]:
    """Turn an optional list of class names into classes, in label order; ``None`` means all six.

    Raises:
        ValueError: for an unknown name or an empty list.
    """
    if names is None:
        return PARTICLE_CLASSES
    wanted: Sequence[str] = list(names)
    if not wanted:
        raise ValueError("classes must name at least one particle class (or be omitted for all)")
    chosen = {particle_by_name(n).label for n in wanted}
    return tuple(p for p in PARTICLE_CLASSES if p.label in chosen)
