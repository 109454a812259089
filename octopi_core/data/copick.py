"""A copick project as a data source, read and written without the copick library (it pins zarr < 3).

The layout (copick 1.x, filesystem config), under the overlay root and the optional static root alike::

    copick_config.json      {"config_type": "filesystem", "overlay_root": "local:///abs" | "s3://b/p",
                             "static_root": ..., "pickable_objects": [{"name", "is_particle", "label", "radius"}]}
    ExperimentRuns/<run>/VoxelSpacing<10.000>/<tomo_type>.zarr     OME-Zarr, NGFF 0.4
    ExperimentRuns/<run>/Picks/<user>_<session>_<object>.json      locations xyz in Å

Picks are written to the overlay root, as copick does. Object names map to octopi's six classes by name or
alias (:func:`~octopi_core.particles.particle_by_name`); the others are listed in ``unknown_objects`` and
noted, and their picks are left out of the truth. A relative ``local://`` root is taken from the config
file's folder (copick takes it from the working directory).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from octopi_core.exceptions import AmbiguousDataError, DataSourceError, PicksExistError, PicksFormatError
from octopi_core.export.copick import copick_files, read_copick
from octopi_core.export.rows import ReadContext
from octopi_core.particles import particle_by_name
from octopi_core.picks import PicksDocument

from ._store import _open_store, _Store
from .item import DataItem, DataSource, SourceKind, _check_voxel_size

__all__ = ["CopickPicksRef", "CopickSource", "open_copick"]

_INVALID_NAME = re.compile(r'[<>:"/\\|?*\x00-\x1f\x7f\s_]')  # copick's sanitize_name; "_" splits file names
_SPACING = re.compile(r"^VoxelSpacing(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class CopickPicksRef:
    """One copick picks file: ``ExperimentRuns/<run>/Picks/<user>_<session>_<object>.json``."""

    run_name: str
    user: str
    session: str
    object_name: str
    uri: str
    _store: _Store | None = field(default=None, repr=False, compare=False)


@dataclass
class CopickSource(DataSource):
    """An opened copick project.

    Attributes:
        config_uri: the config JSON it was opened from.
        tomo_type: the tomogram type of the items, e.g. ``wbp``.
        voxel_spacing_a: the voxel spacing of the items, Å.
        objects: copick object name -> octopi class name, None for objects that are none of the six.
        unknown_objects: the objects with picks or ``is_particle`` that map to no class, sorted.
        all_runs: every run of the project, items or not.
        picks_refs: every picks file of the project (all users and sessions).
    """

    config_uri: str = ""
    tomo_type: str = ""
    voxel_spacing_a: float = 0.0
    objects: dict[str, str | None] = field(default_factory=dict)
    unknown_objects: tuple[str, ...] = ()
    all_runs: list[str] = field(default_factory=list)
    picks_refs: list[CopickPicksRef] = field(default_factory=list)
    _overlay: _Store | None = field(default=None, repr=False)
    _static: _Store | None = field(default=None, repr=False)

    def picks_sessions(self, run_name: str | None = None) -> list[tuple[str, str]]:
        """The ``(user, session)`` pairs that have picks, in one run or the whole project, sorted.

        Args:
            run_name: a run, or None for every run.

        Returns:
            The pairs.
        """
        return sorted({(r.user, r.session) for r in self.picks_refs if run_name in (None, r.run_name)})

    def next_session_id(self, user: str) -> str:
        """The next free numeric session id of ``user``: one past the largest, ``"0"`` if it has none.

        Args:
            user: copick user id (no ``_``, spaces or path characters).

        Returns:
            The session id, as copick stores it (a string).

        Raises:
            ValueError: for a user id copick would refuse.
        """
        _check_name(user, "user")
        numbers = [int(r.session) for r in self.picks_refs if r.user == user and r.session.isdigit()]
        return str(max(numbers) + 1) if numbers else "0"

    def write_picks(
        self, run_name: str, doc: PicksDocument, *, user: str, session: str, overwrite: bool = False
    ) -> list[str]:
        """Write ``doc`` into the project as one copick picks file per class, in the overlay root.

        Args:
            run_name: a run of the project.
            doc: the picks (xyz, Å); every class in it must be a pickable object of the project. Classes with
                no picks are written as empty files (copick's "picked, none found").
            user: copick user id, e.g. ``octopi``.
            session: copick session id, e.g. from :meth:`next_session_id`.
            overwrite: replace picks of the same user, session and object (default False: refuse).

        Returns:
            The URIs written.

        Raises:
            DataSourceError: for an unknown run, or a class with no pickable object in the project.
            PicksExistError: when a file of that user, session and object exists and ``overwrite`` is False;
                nothing is written then.
            ValueError: for a user or session id copick would refuse.
        """
        _check_name(user, "user")
        _check_name(session, "session")
        if run_name not in self.all_runs:
            raise DataSourceError(f"{self.spec}: no run {run_name!r}; runs: {', '.join(self.all_runs)}")
        if self._overlay is None:
            raise DataSourceError(f"{self.spec}: not opened by open_copick, nowhere to write")
        by_class = {cls: obj for obj, cls in self.objects.items() if cls is not None}
        files = []
        for _, content in copick_files(doc.model_copy(update={"run_name": run_name})):
            cls = content["pickable_object_name"]
            if cls not in by_class:
                objects = ", ".join(self.objects)
                raise DataSourceError(
                    f"{self.spec}: class {cls!r} is no pickable object here; objects: {objects}"
                )
            content.update(pickable_object_name=by_class[cls], user_id=user, session_id=session)
            files.append((f"{user}_{session}_{by_class[cls]}.json", content))
        overlay = self._overlay
        targets = [overlay.join("ExperimentRuns", run_name, "Picks", name) for name, _ in files]
        # the files seen when opening (static root too), and any written since by someone else
        existing = sorted(
            {
                r.uri
                for r in self.picks_refs
                if (r.run_name, r.user, r.session) == (run_name, user, session)
                and r.object_name in {c["pickable_object_name"] for _, c in files}
            }
            | {overlay.uri_of(t) for t in targets if overlay.exists(t)}
        )
        if existing and not overwrite:
            raise PicksExistError(
                f"picks exist already (pass overwrite to replace them): {', '.join(existing)}"
            )
        written = []
        for name, content in files:
            path = self._overlay.join("ExperimentRuns", run_name, "Picks", name)
            self._overlay.write_text(path, json.dumps(content, indent=4))
            uri = self._overlay.uri_of(path)
            written.append(uri)
            ref = CopickPicksRef(run_name, user, session, content["pickable_object_name"], uri, self._overlay)
            if ref not in self.picks_refs:
                self.picks_refs.append(ref)
        return written


def open_copick(
    config_uri: str,
    *,
    tomo_type: str | None = None,
    voxel_size_a: float | None = None,
    picks_user: str | None = None,
    picks_session: str | None = None,
    with_truth: bool = True,
    with_tomograms: bool = True,
    storage_options: dict | None = None,
) -> CopickSource:
    """Open the copick project of ``config_uri``: one item per run that has the chosen tomogram.

    Args:
        config_uri: local path or ``s3://`` URI of the project's config JSON (``config_type`` filesystem).
        tomo_type: the tomogram type, e.g. ``wbp``; None: the only one the project has.
        voxel_size_a: the voxel spacing, Å; None: the only one holding ``tomo_type``.
        picks_user: whose picks are the truth; None: any.
        picks_session: which session's; None: any. Together they must pick one ``(user, session)`` in
            the project.
        with_truth: read the truth picks (default True); False lists tomograms only.
        with_tomograms: choose a tomogram type and spacing and list the items (default True); False opens the
            project only to write picks into its runs: no items, ``tomo_type`` empty, no truth.
        storage_options: fsspec options for ``s3://`` roots, over the config's ``*_fs_args``.

    Returns:
        The project; runs without the tomogram are noted and left out.

    Raises:
        DataSourceError: for an unreadable config, an unsupported root, no tomogram of the asked type or spacing.
        AmbiguousDataError: several types, spacings or ``(user, session)`` pairs match; the message lists them.
        PicksFormatError: for a picks file that cannot be read.
        ValueError: for a ``voxel_size_a`` outside the cryo-ET range.
    """
    _check_voxel_size(voxel_size_a)
    config_store = _open_store(config_uri, storage_options, "copick config")
    config = _read_config(config_store)
    overlay = _root_store(config, "overlay", config_store, storage_options)
    static = (
        _root_store(config, "static", config_store, storage_options) if config.get("static_root") else None
    )
    source = CopickSource(spec=config_uri, kind=SourceKind.COPICK, config_uri=config_uri, _overlay=overlay)
    source._static = static
    source.objects = _object_classes(config, config_uri)

    tomograms: dict[str, dict[tuple[float, str], str]] = {}
    for store in [s for s in (static, overlay) if s is not None]:  # overlay last: it wins
        for run, is_dir in store.names(store.join("ExperimentRuns")):
            if not is_dir or run.startswith("."):
                continue
            run_path = store.join("ExperimentRuns", run)
            found = tomograms.setdefault(run, {})
            for name, _ in store.names(run_path):
                if m := _SPACING.match(name):
                    for tomo, _ in store.names(f"{run_path}/{name}"):
                        if tomo.endswith(".zarr"):
                            found[(float(m.group(1)), tomo[: -len(".zarr")])] = store.uri_of(
                                f"{run_path}/{name}/{tomo}"
                            )
            source.picks_refs += _picks_refs(store, run, source)
    source.all_runs = sorted(tomograms)
    if not tomograms:
        raise DataSourceError(f"copick project {config_uri!r} has no runs under ExperimentRuns/")
    if not with_tomograms:  # writing picks needs the runs, objects and picks files only
        return source
    spacing_a, source.tomo_type = _choose_tomogram(tomograms, tomo_type, voxel_size_a, config_uri)
    source.voxel_spacing_a = spacing_a
    unknown = {o for o, c in source.objects.items() if c is None and _is_particle(config, o)}
    unknown |= {r.object_name for r in source.picks_refs if source.objects.get(r.object_name) is None}
    source.unknown_objects = tuple(sorted(unknown))
    if unknown:
        source._note(
            f"objects that are none of octopi's classes, their picks not used: {', '.join(sorted(unknown))}"
        )

    chosen = None
    if with_truth:
        chosen = _choose_session(source, picks_user, picks_session)
    skipped = []
    for run in source.all_runs:
        uri = tomograms[run].get((spacing_a, source.tomo_type))
        if uri is None:
            skipped.append(run)
            continue
        truth: PicksDocument | None = None
        truth_uris: tuple[str, ...] = ()
        if chosen is not None:
            refs = [
                r
                for r in source.picks_refs
                if (r.run_name, r.user, r.session) == (run, *chosen) and source.objects.get(r.object_name)
            ]
            if refs:
                truth = _read_truth(refs, source, run, uri, spacing_a)
                truth_uris = tuple(r.uri for r in refs)
        source.items.append(DataItem(run, uri, spacing_a, truth, truth_uris))
    if skipped:
        what = f"{source.tomo_type} at {spacing_a:.3f} Å"
        source._note(f"runs without a tomogram {what}, left out: {', '.join(skipped)}")
    return source


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not value or _INVALID_NAME.search(value):
        raise ValueError(f"{what} must be a copick id without '_', spaces or <>:\"/\\|?*; got {value!r}")


def _read_config(store: _Store) -> dict:
    try:
        config = json.loads(store.read_text(store.path))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DataSourceError(f"copick config {store.uri!r} cannot be read: {e}") from e
    if not isinstance(config, dict) or not isinstance(config.get("pickable_objects"), list):
        raise DataSourceError(f"copick config {store.uri!r} has no pickable_objects list")
    kind = config.get("config_type", "filesystem")
    if kind != "filesystem" or not config.get("overlay_root"):
        raise DataSourceError(
            f"copick config {store.uri!r} is of type {kind!r}; only filesystem configs with an overlay_root "
            "are read (a CryoET Data Portal project: copy it to a filesystem project first)"
        )
    return config


def _root_store(config: dict, which: str, config_store: _Store, storage_options: dict | None) -> _Store:
    """The overlay or static root of ``config``: ``local://`` (relative: from the config's folder) or ``s3://``."""
    root = str(config[f"{which}_root"])
    scheme, sep, rest = root.partition("://")
    if not sep:
        scheme, rest = "local", root
    if scheme in ("local", "file"):
        if config_store.scheme != "local" and not rest.startswith("/"):
            raise DataSourceError(f"copick {which}_root {root!r}: a relative root needs a local config")
        path = Path(config_store.path).parent / rest if not rest.startswith("/") else Path(rest)
        return _open_store(str(path), None, f"copick {which}_root")
    if scheme == "s3":
        options = {**(config.get(f"{which}_fs_args") or {}), **(storage_options or {})}
        return _open_store(root, options, f"copick {which}_root")
    raise DataSourceError(f"copick {which}_root {root!r}: only local:// and s3:// roots are read")


def _object_classes(config: dict, config_uri: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for obj in config["pickable_objects"]:
        name = str(obj.get("name"))
        try:
            out[name] = particle_by_name(name).name
        except ValueError:
            out[name] = None
    classes = [c for c in out.values() if c is not None]
    for cls in set(classes):
        if classes.count(cls) > 1:
            names = [o for o, c in out.items() if c == cls]
            raise DataSourceError(f"copick config {config_uri!r}: objects {names} are all the class {cls!r}")
    return out


def _is_particle(config: dict, name: str) -> bool:
    return any(o.get("name") == name and o.get("is_particle", True) for o in config["pickable_objects"])


def _picks_refs(store: _Store, run: str, source: CopickSource) -> list[CopickPicksRef]:
    refs = []
    picks_path = store.join("ExperimentRuns", run, "Picks")
    for name, is_dir in store.names(picks_path):
        if is_dir or not name.endswith(".json") or name.startswith("."):
            continue
        parts = name[: -len(".json")].split("_", 2)
        if len(parts) != 3:
            source._note(
                f"picks file {run}/Picks/{name} is not named <user>_<session>_<object>.json, not used"
            )
            continue
        user, session, obj = parts
        refs.append(CopickPicksRef(run, user, session, obj, store.uri_of(f"{picks_path}/{name}"), store))
    return refs


def _choose_tomogram(
    tomograms: dict[str, dict[tuple[float, str], str]],
    tomo_type: str | None,
    voxel_size_a: float | None,
    config_uri: str,
) -> tuple[float, str]:
    have = {key for found in tomograms.values() for key in found}
    wanted = {
        (s, t)
        for s, t in have
        if tomo_type in (None, t) and (voxel_size_a is None or round(s, 3) == round(voxel_size_a, 3))
    }
    listed = ", ".join(f"{t} at {s:.3f} Å" for s, t in sorted(have)) or "none"
    if not wanted:
        asked = f"type {tomo_type or 'any'} at {voxel_size_a or 'any'} Å"
        raise DataSourceError(f"copick project {config_uri!r} has no tomogram of {asked}; it has: {listed}")
    types, spacings = {t for _, t in wanted}, {s for s, _ in wanted}
    if len(types) > 1:
        raise AmbiguousDataError(
            f"copick project {config_uri!r}: pass tomo_type, one of {', '.join(sorted(types))}"
        )
    if len(spacings) > 1:
        options = ", ".join(f"{s:g}" for s in sorted(spacings))
        raise AmbiguousDataError(f"copick project {config_uri!r}: pass voxel_size_a, one of {options} Å")
    return spacings.pop(), types.pop()


def _choose_session(source: CopickSource, user: str | None, session: str | None) -> tuple[str, str] | None:
    pairs = [
        (u, s)
        for u, s in source.picks_sessions()
        if user in (None, u)
        and session in (None, s)
        and any(
            r.user == u and r.session == s and source.objects.get(r.object_name) for r in source.picks_refs
        )
    ]
    if len(pairs) > 1:
        listed = ", ".join(f"{u}/{s}" for u, s in pairs)
        raise AmbiguousDataError(
            f"copick project {source.config_uri!r}: picks of several users/sessions ({listed}); "
            "pass picks_user and picks_session"
        )
    if not pairs and (user is not None or session is not None):
        listed = ", ".join(f"{u}/{s}" for u, s in source.picks_sessions()) or "none"
        raise DataSourceError(
            f"copick project {source.config_uri!r} has no picks of user {user or 'any'}, session "
            f"{session or 'any'}; it has: {listed}"
        )
    return pairs[0] if pairs else None


def _read_truth(
    refs: list[CopickPicksRef], source: CopickSource, run: str, tomogram_uri: str, spacing_a: float
) -> PicksDocument:
    files = []
    for ref in refs:
        try:
            content = json.loads(ref._store.read_text(ref.uri.removeprefix("s3://")))  # type: ignore[union-attr]
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise PicksFormatError(f"{ref.uri}: cannot read the copick picks file: {e}") from e
        if not isinstance(content, dict):
            raise PicksFormatError(f"{ref.uri}: a copick picks file is one JSON object")
        # the layout names the run and the class; the file's own names may be stale copies
        content.update(run_name=run, pickable_object_name=source.objects[ref.object_name])
        files.append(content)
    context = ReadContext(run, None, (spacing_a,) * 3)
    (doc,) = read_copick(Path(refs[0].uri), files, context)
    return doc.model_copy(update={"tomogram_uri": tomogram_uri})
