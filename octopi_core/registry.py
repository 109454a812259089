"""Model registry: immutable, versioned checkpoints under one root, plus a champion pointer.

Layout under the root (a local directory or any fsspec URI such as ``s3://bucket/prefix``)::

    models/<version>/model.safetensors
    models/<version>/config.json        # ModelConfig, with scores
    champion.json                       # {"version": ..., "updated_at": ..., "history": [...]}
    decisions/<UTC time>-<version>.json # one per promotion decision, promoted or not, with its numbers

A version is ``octopi-unet-<weights sha256[:12]>``, so a version always names the same weights
and adding the same checkpoint twice changes nothing. Remote checkpoints are copied once into
a local cache directory before loading. With no champion set, the model shipped in the
package is used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec

from .exceptions import CheckpointError
from .model_config import CONFIG_FILE, WEIGHTS_FILE, ModelConfig, default_checkpoint_dir, read_config

__all__ = ["ModelEntry", "ServedModel", "Registry", "SHIPPED_VERSION_ALIAS", "training_provenance"]

SHIPPED_VERSION_ALIAS = "shipped"
_CHAMPION_FILE = "champion.json"
_DECISIONS_DIR = "decisions"
# config.scores keys of the held-out sets promotion scores on, and the name each is shown under.
_HELD_OUT_SCORES = {"held_out": "synthetic", "held_out_data": "data"}


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its version, config (with scores) and whether it is the champion."""

    version: str
    config: ModelConfig
    champion: bool


@dataclass(frozen=True)
class ServedModel:
    """The model that answers a request: a registered version, or the model shipped in the package.

    Attributes:
        version: its version; None only when the shipped model is asked for and the package has none.
        shipped: True for the shipped model (load it from :func:`default_checkpoint_dir`).
    """

    version: str | None
    shipped: bool


class Registry:
    """Checkpoints by version under ``root``.

    Args:
        root: local directory or fsspec URI (``s3://bucket/models``); created on first write.
        cache_dir: where remote checkpoints are copied before loading
            (default ``$XDG_CACHE_HOME/octopi-serve/models``).
        storage_options: passed to fsspec (e.g. S3 endpoint, credentials).
    """

    def __init__(
        self, root: str | Path, *, cache_dir: str | Path | None = None, storage_options: dict | None = None
    ) -> None:
        self.root = str(root).rstrip("/")
        self.fs, self._path = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self.is_local = self.fs.protocol in ("file", "local") or "file" in self.fs.protocol
        default_cache = (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "octopi-serve" / "models"
        )
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache

    def _join(self, *parts: str) -> str:
        return "/".join([self._path, *parts])

    # -- reading -------------------------------------------------------------------------------

    def versions(self) -> list[str]:
        """Registered versions, sorted by name."""
        base = self._join("models")
        if not self.fs.exists(base):
            return []
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in self.fs.ls(base, detail=False)]
        return sorted(name for name in names if self.fs.exists(self._join("models", name, CONFIG_FILE)))

    def config(self, version: str) -> ModelConfig:
        """The stored config of ``version``.

        Raises:
            CheckpointError: unknown version or unreadable config.
        """
        path = self._join("models", version, CONFIG_FILE)
        try:
            with self.fs.open(path, "r") as stream:
                return ModelConfig.model_validate_json(stream.read())
        except FileNotFoundError:
            raise CheckpointError(
                f"model version {version!r} is not in the registry at {self.root}"
            ) from None
        except Exception as e:
            raise CheckpointError(
                f"config of model version {version!r} in {self.root} is unreadable: {e}"
            ) from e

    def champion_version(self) -> str | None:
        """The champion's version, or None when none was promoted."""
        record = self._champion_record()
        return record.get("version") if record else None

    def champion_history(self) -> list[dict]:
        """Past champion changes, oldest first: ``{"version", "updated_at", "reason"}``."""
        record = self._champion_record()
        return list(record.get("history", [])) if record else []

    def decisions(self, version: str | None = None) -> list[dict]:
        """Recorded promotion decisions, oldest first; only those about candidate ``version`` when given.

        Raises:
            CheckpointError: a decision record is unreadable.
        """
        base = self._join(_DECISIONS_DIR)
        if not self.fs.exists(base):
            return []
        records = []
        for path in sorted(self.fs.ls(base, detail=False)):
            if version is not None and not path.endswith(f"-{version}.json"):
                continue
            try:
                with self.fs.open(path, "r") as stream:
                    records.append(json.loads(stream.read()))
            except (ValueError, OSError) as e:
                raise CheckpointError(f"promotion decision {path} is unreadable: {e}") from e
        return records

    def entries(self) -> list[ModelEntry]:
        """Every registered model, plus the shipped one, with the champion marked."""
        champion = self.champion_version()
        entries = [ModelEntry(v, self.config(v), v == champion) for v in self.versions()]
        shipped = default_checkpoint_dir()
        if (shipped / CONFIG_FILE).is_file() and not any(
            e.version == read_config(shipped).version for e in entries
        ):
            entries.append(ModelEntry(read_config(shipped).version, read_config(shipped), champion is None))
        return entries

    def served_model(self, version: str | None = None) -> ServedModel:
        """Which model serves a request for ``version``: the one rule of the champion-or-shipped fallback.

        Args:
            version: a version, ``"shipped"`` (:data:`SHIPPED_VERSION_ALIAS`), or None for the champion,
                which is the shipped model while none was promoted. The shipped model's own version
                also names the shipped model.

        Returns:
            The version and whether it is the shipped model. The version is not checked against the
            registry: :meth:`config` and :meth:`resolve` raise for an unknown one.

        Raises:
            CheckpointError: the champion pointer is unreadable.
        """
        if version is None:
            version = self.champion_version() or SHIPPED_VERSION_ALIAS
        shipped_dir = default_checkpoint_dir()
        shipped_version = read_config(shipped_dir).version if (shipped_dir / CONFIG_FILE).is_file() else None
        if version == SHIPPED_VERSION_ALIAS:
            return ServedModel(shipped_version, True)
        return ServedModel(version, version == shipped_version)

    def resolve(self, version: str | None = None) -> Path:
        """Local checkpoint directory of ``version`` (None: the champion, else the shipped model).

        Raises:
            CheckpointError: unknown version.
        """
        served = self.served_model(version)
        if served.shipped or served.version is None:
            return default_checkpoint_dir()
        version = served.version
        source = self._join("models", version)
        if not self.fs.exists(f"{source}/{CONFIG_FILE}"):
            raise CheckpointError(f"model version {version!r} is not in the registry at {self.root}")
        if self.is_local:
            return Path(source)
        target = self.cache_dir / version
        if not (target / CONFIG_FILE).is_file():
            partial = target.with_name(version + ".partial")
            partial.mkdir(parents=True, exist_ok=True)
            for name in (WEIGHTS_FILE, CONFIG_FILE):
                self.fs.get(f"{source}/{name}", str(partial / name))
            partial.rename(target)
        return target

    # -- writing -------------------------------------------------------------------------------

    def add(self, checkpoint_dir: str | Path) -> str:
        """Copy a checkpoint into the registry; return its version. Existing versions are kept as they are.

        Raises:
            CheckpointError: when the checkpoint is incomplete, or a different checkpoint already
                holds that version.
        """
        checkpoint_dir = Path(checkpoint_dir)
        config = read_config(checkpoint_dir)
        if not config.version or not (checkpoint_dir / WEIGHTS_FILE).is_file():
            raise CheckpointError(
                f"{checkpoint_dir} is not a complete checkpoint (needs a version and {WEIGHTS_FILE})"
            )
        target = self._join("models", config.version)
        if self.fs.exists(f"{target}/{CONFIG_FILE}"):
            if self.config(config.version).weights_sha256 != config.weights_sha256:
                raise CheckpointError(
                    f"version {config.version} already exists with other weights; versions are immutable"
                )
            return config.version
        self.fs.makedirs(target, exist_ok=True)
        self.fs.put(str(checkpoint_dir / WEIGHTS_FILE), f"{target}/{WEIGHTS_FILE}")
        self.fs.put(
            str(checkpoint_dir / CONFIG_FILE), f"{target}/{CONFIG_FILE}"
        )  # config last: marks it complete
        return config.version

    def set_champion(self, version: str, *, reason: str = "") -> None:
        """Point the champion at ``version`` (a registered one); also how a rollback is done.

        Raises:
            CheckpointError: unknown version.
        """
        self.config(version)  # raises for unknown versions
        record = self._champion_record() or {"history": []}
        now = datetime.now(UTC).isoformat(timespec="seconds")
        history = record.get("history", []) + [{"version": version, "updated_at": now, "reason": reason}]
        content = json.dumps({"version": version, "updated_at": now, "history": history}, indent=2)
        self.fs.makedirs(self._path, exist_ok=True)
        temporary = self._join(_CHAMPION_FILE + ".tmp")
        with self.fs.open(temporary, "w") as stream:
            stream.write(content)
        self.fs.mv(temporary, self._join(_CHAMPION_FILE))

    def record_decision(self, decision: dict) -> str:
        """Store one promotion decision (JSON-safe: versions, scores, margins, reason); return its path.

        One file per decision, so concurrent or repeated runs never overwrite each other's record
        (S3 has no append). ``decided_at`` (UTC) is added.

        Raises:
            ValueError: the decision names no ``candidate_version``.
        """
        version = decision.get("candidate_version")
        if not version:
            raise ValueError(f"a decision names its candidate_version, got {sorted(decision)}")
        now = datetime.now(UTC)
        record = {**decision, "decided_at": now.isoformat(timespec="seconds")}
        path = self._join(_DECISIONS_DIR, f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{version}.json")
        self.fs.makedirs(self._join(_DECISIONS_DIR), exist_ok=True)
        with self.fs.open(path, "w") as stream:
            stream.write(json.dumps(record, indent=2))
        return path

    def _champion_record(self) -> dict | None:
        path = self._join(_CHAMPION_FILE)
        try:
            with self.fs.open(path, "r") as stream:
                return json.loads(stream.read())
        except FileNotFoundError:
            return None
        except (ValueError, OSError) as e:
            raise CheckpointError(f"champion pointer {path} is unreadable: {e}") from e


def training_provenance(config: ModelConfig) -> tuple[dict[str, Any], dict[str, float]]:
    """What a model was trained on and its weighted F-beta on each held-out set, from its config alone.

    Args:
        config: the model's config (``config.json``); no weights are read.

    Returns:
        ``(data, held_out)``. ``data`` is ``training.data`` when the model was fine-tuned on labelled
        tomograms (``kind`` copick or folder, ``source``, picks users and sessions, held-out runs), else
        ``{"kind": "synthetic"}`` with the training ``seed``, the ``stages`` (presets) when recorded
        and the ``init_version`` it started from. ``held_out`` maps each held-out set it was scored on
        at promotion (``synthetic``: the generated held-out tomograms; ``data``: the held-out part of
        the user's data) to its weighted F-beta.
    """
    training = config.training
    recipe = training.get("recipe") or {}
    recorded = training.get("data")
    if isinstance(recorded, dict):
        data = {
            "kind": recorded.get("kind", "labelled"),
            "source": recorded.get("source"),
            "picks_users": recorded.get("picks_users", []),
            "picks_sessions": recorded.get("picks_sessions", []),
            "tomo_type": recorded.get("tomo_type"),
            "holdout": recorded.get("holdout"),
            "held_out_runs": (recorded.get("validation") or {}).get("runs", []),
            "training_runs": sorted(
                run for run, split in (recorded.get("runs") or {}).items() if split.get("role") == "training"
            ),
            "synthetic_fraction": recorded.get("synthetic_fraction", 0.0),
        }
    else:
        data = {"kind": "synthetic", "seed": training.get("seed")}
        stages = training.get("stages")
        if isinstance(stages, list):
            data["stages"] = [s["preset"] for s in stages if isinstance(s, dict) and s.get("preset")]
    data["init_version"] = recipe.get("init_version")
    held_out = {
        name: float(config.scores[key]["weighted_f_beta"])
        for key, name in _HELD_OUT_SCORES.items()
        if isinstance(config.scores.get(key), dict) and "weighted_f_beta" in config.scores[key]
    }
    return data, held_out
