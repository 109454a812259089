"""Request and response shapes of the gateway; input and output shapes are never the same class."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from octopi_core.export import PicksFormat
from octopi_core.options import RUN_NAME_PATTERN
from worker.jobs.state import JobStage, JobStatus

__all__ = [
    "TrainingDataPublic",
    "JobCreate",
    "JobOptionsPublic",
    "JobLinks",
    "JobPublic",
    "JobsQuery",
    "JobsPublic",
    "Problem",
    "ModelPublic",
    "ModelsPublic",
    "Health",
    "Readiness",
]

# A copick user or session id: no "_" (it splits file names), spaces or path characters; not a dot file.
_COPICK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,63}$"


class JobCreate(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "tomogram_uri": "s3://my-bucket/run_001.zarr",
                    "classes": ["ribosome"],
                    "tta": False,
                    "formats": ["json", "csv"],
                }
            ]
        },
    )

    tomogram_uri: str = Field(
        strict=True,
        min_length=1,
        max_length=4096,
        description="tomogram: local path or file:// (under the allowed roots), http(s):// or "
        "s3://; OME-Zarr or MRC",
    )
    model_version: str | None = Field(
        None,
        strict=True,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="model version (see GET /models); default the champion",
    )
    classes: list[StrictStr] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="particle classes to pick; default every class of the model",
    )
    voxel_size_a: float | None = Field(
        None,
        strict=True,
        gt=0,
        le=1000,
        allow_inf_nan=False,
        description="override of the tomogram's voxel size, Å",
    )
    tta: bool = Field(
        False, strict=True, description="test-time augmentation (average over y/x flips; 4x the work)"
    )
    match_spectrum: bool = Field(
        False,
        strict=True,
        description="bring the tomogram's power spectrum to that of the model's training data before "
        "inference (for SIRT-like, denoised or binned reconstructions); needs a model with an input spectrum",
    )
    formats: list[PicksFormat] = Field(
        default_factory=lambda: [PicksFormat.JSON],
        min_length=1,
        max_length=5,
        description="formats written to output_uri",
    )
    output_uri: str | None = Field(
        None,
        strict=True,
        min_length=1,
        max_length=4096,
        description="directory or s3:// prefix that also receives the picks files",
    )
    run_name: str | None = Field(
        None,
        strict=True,
        pattern=RUN_NAME_PATTERN,
        description="run name of the picks and their files (e.g. the copick run); default from the tomogram "
        "URI (a copick run folder, else the file or store name). With copick_config: the run that receives "
        "the picks, required",
    )
    copick_config: str | None = Field(
        None,
        strict=True,
        min_length=1,
        max_length=4096,
        description="copick project that also receives the picks: its config JSON, a local path (under the "
        "allowed roots) or s3://; written as copick picks files into run run_name of its overlay root",
    )
    pick_user: str | None = Field(
        None,
        strict=True,
        pattern=_COPICK_ID_PATTERN,
        description="with copick_config: copick user id of the picks; default octopi",
    )
    pick_session: str | None = Field(
        None,
        strict=True,
        pattern=_COPICK_ID_PATTERN,
        description="with copick_config: copick session id of the picks, which must be new; default a new "
        "session (one past the user's largest) taken when the picks are written",
    )

    @model_validator(mode="after")
    def _copick_fields_go_together(self) -> JobCreate:
        if self.copick_config is None and (self.pick_user is not None or self.pick_session is not None):
            raise ValueError("pick_user and pick_session need copick_config")
        if self.copick_config is not None and self.run_name is None:
            raise ValueError("copick_config needs run_name: the copick run that receives the picks")
        return self


class JobOptionsPublic(BaseModel):
    """The options a job runs with."""

    classes: list[str] | None
    voxel_size_a: float | None
    tta: bool
    match_spectrum: bool = False
    formats: list[str]
    output_uri: str | None
    window_vox: tuple[int, int, int] = Field(description="sliding-window size, zyx voxels")
    overlap: float = Field(description="window overlap fraction")
    run_name: str | None = Field(None, description="run name asked for; null: from the tomogram URI")
    copick_config: str | None = Field(None, description="copick project receiving the picks, in run run_name")
    pick_user: str = Field("octopi", description="copick user id of those picks")
    pick_session: str | None = Field(None, description="their copick session id; null: a new one")


class JobLinks(BaseModel):
    """Where to poll, fetch the picks and cancel."""

    model_config = ConfigDict(populate_by_name=True)

    self_: str = Field(alias="self")
    picks: str
    cancel: str
    preview: str = Field(description="PNG of the picks over the tomogram, once succeeded")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class JobPublic(BaseModel):
    """A job as reported by the gateway."""

    id: str
    status: JobStatus
    stage: JobStage | None = Field(None, description="while running: fetching, inferring or localizing")
    progress: float = Field(
        ge=0.0, le=1.0, description="fraction of the job done (inference windows weigh most)"
    )
    queue_position: int | None = Field(
        None, description="jobs ahead of this one (0 = next); null unless queued"
    )
    eta_s: float | None = Field(
        None, description="estimated seconds until the picks are ready; null when unknown"
    )
    tomogram_uri: str
    model_version: str
    options: JobOptionsPublic
    tries: int = Field(description="attempts started (a worker that died mid-job costs one)")
    worker: str | None = Field(None, description="name of the worker running (or that ran) the job")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    timings_s: dict[str, float] = Field(default_factory=dict, description="pipeline seconds per stage")
    counts: dict[str, int] = Field(default_factory=dict, description="picks per class, once succeeded")
    outputs: list[str] = Field(default_factory=list, description="files written to output_uri")
    reused_from: str | None = Field(None, description="id of the job whose identical result was reused")
    error: Problem | None = Field(None, description="why the job failed")
    links: JobLinks


class JobsQuery(BaseModel):
    """Query of ``GET /jobs``; an unknown parameter is refused (422), as the schema says."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=100, description="at most this many jobs, newest first")


class JobsPublic(BaseModel):
    """The caller's most recent jobs, newest first."""

    data: list[JobPublic]
    count: int


class TrainingDataPublic(BaseModel):
    """What a model was trained on: the user's labelled tomograms, or generated ones (``synthetic``)."""

    kind: str = Field(description="synthetic, or the labelled source's kind: copick or folder")
    source: str | None = Field(None, description="the copick config or folder it was fine-tuned on")
    picks_users: list[str] = Field(
        default_factory=list, description="copick users whose picks were the truth"
    )
    picks_sessions: list[str] = Field(default_factory=list)
    tomo_type: str | None = None
    holdout: str | None = Field(None, description="tomograms (whole ones held out) or blocks (y-blocks)")
    held_out_runs: list[str] = Field(default_factory=list, description="runs with held-out data")
    training_runs: list[str] = Field(default_factory=list)
    synthetic_fraction: float | None = None
    seed: int | None = Field(None, description="synthetic: the training seed")
    stages: list[str] = Field(
        default_factory=list, description="synthetic: the presets of its training stages"
    )
    init_version: str | None = Field(None, description="the model its training started from")


class ModelPublic(BaseModel):
    """One model version."""

    version: str
    champion: bool = Field(description="served when a request names no version")
    classes: list[str]
    voxel_size_a: float
    scores: dict[str, Any] = Field(default_factory=dict, description="validation scores")
    trained_on: TrainingDataPublic
    held_out: dict[str, float] = Field(
        default_factory=dict,
        description="weighted F-beta on each held-out set it was scored on when it was a candidate: "
        "synthetic (generated held-out tomograms), data (the held-out part of the data it was fine-tuned on)",
    )


class ModelsPublic(BaseModel):
    """The model versions available."""

    data: list[ModelPublic]
    count: int
    champion: str | None


class Health(BaseModel):
    """Liveness."""

    status: str = "ok"


class Readiness(BaseModel):
    """Readiness: Redis reachable and at least one live worker."""

    status: str
    redis: bool
    workers: int
