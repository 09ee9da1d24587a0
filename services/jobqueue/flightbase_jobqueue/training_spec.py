"""What a training's stored spec holds (``Training.spec``): one typed, frozen model.

The ``trainings.spec`` column is JSON. :class:`SpecColumn` is its type: a row read
gives a :class:`TrainingSpec`, and a spec written (or a plain dict, validated
first) is stored as :meth:`TrainingSpec.to_json`. Nothing else reads the JSON
by its keys.

Three kinds of training write a spec:

- an advanced training (``POST /trainings``): the request (``schemas.TrainingCreate``)
  less its workspace, name, description and secret values, plus the dataset
  versions and the image reference resolved at submission;
- a built-in training (``POST /builtin-trainings``): the same, plus
  ``builtin_model`` and ``builtin``;
- a Jupyter training's GPU lease (``POST /leases``): ``server``, ``gpus``,
  ``image`` and ``dataset_versions``.

So every field is optional, with the default its readers assume, and a spec
keeps which keys it was given: :meth:`TrainingSpec.to_json` gives back exactly
those (the API's ``TrainingOut.spec`` is what was stored, keys in this model's
order). Forms written by earlier versions read as they are: a spec from before
dataset versions (no ``dataset_versions``), before images were resolved by the
registry (no ``image_reference``), before secret values (nothing missing: they
were never in the spec). The first version stored ``command`` (the entry point
and its arguments) instead of ``entrypoint`` and ``args``: migration 0007
reshapes those rows.

Stored values are checked strictly (no ``"2"`` for 2) but not against the
request's limits (a limit tightened later must not make old rows unreadable);
a key this model does not know, or a value of the wrong type, is a
:class:`SpecError` naming the key, when the row is read, not a ``KeyError`` in
whatever reads it later.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import JSON
from sqlalchemy.types import TypeDecorator

DEFAULT_IMAGE = "training-base"
"""The image of a training whose spec names none (``TrainingCreate.image``'s default)."""

Scalar = str | int | float | bool
"""A sweep parameter's value (strict: ``True`` stays a bool, ``1`` an int, ``1.0`` a float)."""


class SpecError(ValueError):
    """A stored spec this version cannot read: the message names the key(s)."""


class _Stored(BaseModel):
    model_config = ConfigDict(frozen=True, strict=True, extra="forbid")


class DatasetRef(_Stored):
    """A dataset version resolved at submission (``datasets.Datasets.resolve``): the job mounts exactly it."""

    name: str
    version: int
    path: str = Field(description="The version's folder on the jobqueue's machine (the registry's mount answer)")


class SweepSettings(_Stored):
    """A sweep as stored: ``schemas.SweepSpec`` after its grid text was read (``sweeps.grid_of``)."""

    grid: dict[str, list[Scalar]] | None = None
    runs: list[dict[str, Scalar]] | None = None
    parallel: int = 1
    metric: str | None = None
    goal: Literal["min", "max"] = "min"


class BuiltinRef(_Stored):
    """What a built-in training was asked for (``api.builtin``): shown back, never read to run it."""

    model: str
    dataset: str | None = None
    params: dict[str, Any]
    options: dict[str, Any]


class TrainingSpec(_Stored):
    """What a training was created with, less its secret values (those are ``TrainingSecret`` rows).

    The fields follow ``TrainingCreate``'s order, so an advanced training's spec
    reads back in the order it was written; a lease's ``server`` comes first.
    """

    server: str = Field(default="", description="A lease's Jupyter server name ('' for the default server)")
    entrypoint: str | None = Field(default=None, description="A training's script or executable (None: a lease)")
    args: list[str] = Field(default_factory=list)
    code_id: str | None = None
    gpus: int = 1
    gpus_per_node: int | None = None
    launcher: str = "none"
    image: str = Field(default="", description="The image's name in the workspace ('': DEFAULT_IMAGE)")
    datasets: list[str] = Field(default_factory=list, description="As asked for (NAME or NAME@VERSION)")
    env: dict[str, str] = Field(default_factory=dict)
    max_runtime: float | None = None
    priority: int = 0
    preemptible: bool = True
    gpudirect_p2p: bool = False
    gpudirect_rdma: bool = False
    sweep: SweepSettings | None = None
    dataset_versions: list[DatasetRef] = Field(default_factory=list, description="As resolved at submission")
    image_reference: str = Field(default="", description="The image's reference, resolved by the registry at "
                                                          "submission ('': resolve image by name)")
    builtin_model: str | None = Field(default=None, description="A built-in training's model (its code)")
    builtin: BuiltinRef | None = None

    @classmethod
    def from_json(cls, value: object) -> TrainingSpec:
        """The spec a stored JSON value holds; :class:`SpecError` naming the bad keys otherwise."""
        if not isinstance(value, dict):
            raise SpecError(f"invalid training spec: a JSON object is expected, not {type(value).__name__}")
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in exc.errors())
            raise SpecError(f"invalid training spec: {problems}") from None

    def to_json(self) -> dict[str, Any]:
        """The stored (and API) form: the keys this spec was given, nothing added."""
        return self.model_dump(mode="json", exclude_unset=True)

    @property
    def parallel(self) -> int:
        """Jobs of the training that may run at once (1 unless a sweep says more)."""
        return self.sweep.parallel if self.sweep is not None else 1

    @property
    def image_or_default(self) -> str:
        return self.image or DEFAULT_IMAGE


class SpecColumn(TypeDecorator):
    """``trainings.spec``: JSON in the database, a :class:`TrainingSpec` in Python.

    A dict given to it (a test's row, a Core insert) is validated as a spec
    before it is stored, so what is stored can always be read back.
    """

    impl = JSON
    cache_ok = True
    hashable = False  # as JSON's: a spec holds lists

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, TrainingSpec):
            value = TrainingSpec.from_json(value)
        return value.to_json()

    def process_result_value(self, value, dialect):
        return None if value is None else TrainingSpec.from_json(value)
