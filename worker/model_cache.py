"""The models a worker keeps loaded, by version, and the champion check done between jobs."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from octopi_core.model_config import CONFIG_FILE, read_config
from octopi_core.pipeline import Picker
from octopi_core.registry import Registry
from octopi_core.settings import Settings

__all__ = ["ModelCache"]

log = logging.getLogger(__name__)


class ModelCache:
    """Loaded :class:`~octopi_core.pipeline.Picker` objects by model version; least recently used go first.

    Args:
        registry: where versions are resolved to checkpoints.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        capacity: models kept loaded (at least 1).
        amp: mixed precision where the device does it natively (see :class:`~octopi_core.pipeline.Picker`).
    """

    def __init__(
        self, registry: Registry, *, device: str = "auto", capacity: int = 2, amp: bool = True
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.registry = registry
        self.device = device  # "auto" is resolved by octopi_core.device.select_device
        self.capacity = capacity
        self.amp = amp
        self.champion: str | None = None
        self._pickers: OrderedDict[str, Picker] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelCache:
        """The cache a worker runs with: the registry, device, size and precision from ``settings``."""
        return cls(
            Registry(settings.registry_uri),
            device=settings.device,
            capacity=settings.model_cache_size,
            amp=settings.amp,
        )

    def loaded_versions(self) -> list[str]:
        """Versions now in memory, least recently used first."""
        return list(self._pickers)

    def get(self, version: str | None = None) -> Picker:
        """The loaded model for ``version`` (None: the champion, else the shipped one), loaded if needed.

        Raises:
            CheckpointError: unknown version or unloadable checkpoint.
        """
        with self._lock:
            picker = self._pickers.get(version) if version else None
            if picker is None:
                checkpoint = self.registry.resolve(version)
                resolved = read_config(checkpoint).version if (checkpoint / CONFIG_FILE).is_file() else None
                picker = self._pickers.get(resolved) if resolved else None
                if picker is None:
                    picker = Picker(checkpoint, device=self.device, amp=self.amp)
                    log.info("loaded model %s on %s", picker.version, picker.device)
                    self._pickers[picker.version] = picker
                    while len(self._pickers) > self.capacity:
                        self._pickers.popitem(last=False)
            self._pickers.move_to_end(picker.version)
            return picker

    def refresh_champion(self) -> str | None:
        """Load the registry's champion if it changed since the last call (call it between jobs only).

        Returns:
            The champion's version, or None when none is promoted (the shipped model is served).
        """
        champion = self.registry.champion_version()
        if champion != self.champion or not self._pickers:
            try:
                self.get(champion)
            except Exception as e:  # noqa: BLE001 - a broken champion must not stop the worker; jobs report it
                log.error("could not load champion model %s: %s", champion or "shipped", e)
            self.champion = champion
        return champion
