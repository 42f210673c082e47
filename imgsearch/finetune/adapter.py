"""The adapter: a chain of stages on top of a frozen, L2-normalised embedder.

Each stage maps unit vectors to unit vectors of the same width:

* ``linear``: ``x -> normalise(W x)`` (the first adapters; linear maps in a row fold into one,
  since ``normalise(W2 normalise(W1 x)) = normalise(W2 W1 x)``);
* ``mlp``: ``x -> normalise(x + B gelu(A x + a) + b)``, a residual one-hidden-layer network
  (GELU, tanh form): a linear map cannot bring out what the frozen features carry only
  non-linearly (seeded ViT-B-32 on the clothing photos: 1.24x category precision@10 with a
  linear map, 1.89x with this stage; BENCHMARKS.md).

Fine-tuning an already fine-tuned collection learns a new stage on the stored (adapted) vectors
and appends it, so an adapter always sits directly on the frozen base embedder and the stored
vectors are always ``adapter(base(image))``.

An adapter is content-addressed: its id is the SHA-256 of the base embedder's version, the
dimension and every stage's kind and arrays (a single linear stage keeps the first scheme, so
ids stored before stages existed stay valid), and the adapted embedder's version string names
both the base version and that id, so the index ``_meta`` guard tells adapters apart.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

VERSION_MARK = "+adapter:"
_HASH_SCHEME_LINEAR = b"imgsearch-adapter-v1\0"
_HASH_SCHEME_STAGES = b"imgsearch-adapter-v2\0"
# Below this norm a row cannot be normalised (the adapter maps it to ~0).
_MIN_NORM = 1e-12

Floats = npt.NDArray[np.float32]
StageKind = Literal["linear", "mlp"]


def normalise_rows(rows: Floats) -> Floats:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: Floats = (rows / np.maximum(norms, _MIN_NORM)).astype(np.float32)
    return out


def gelu(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """GELU, tanh form (what training uses: ``torch.nn.functional.gelu(approximate="tanh")``)."""
    out: npt.NDArray[np.float64] = (
        0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    )
    return out


def _frozen(array: npt.ArrayLike, ndim: int, name: str) -> Floats:
    out = np.ascontiguousarray(array, dtype=np.float32)
    if out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {out.shape}")
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name} must be finite")
    out.setflags(write=False)
    return out


@dataclass(frozen=True, eq=False)
class LinearStage:
    """``x -> normalise(W x)``, ``W`` a ``(dim, dim)`` matrix."""

    matrix: Floats
    kind: Literal["linear"] = "linear"

    def __post_init__(self) -> None:
        matrix = _frozen(self.matrix, 2, "an adapter matrix")
        if matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"an adapter matrix is square, got shape {matrix.shape}")
        object.__setattr__(self, "matrix", matrix)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def arrays(self) -> dict[str, Floats]:
        return {"matrix": self.matrix}

    def apply(self, rows: Floats) -> Floats:
        return normalise_rows(rows @ self.matrix.T)


@dataclass(frozen=True, eq=False)
class MlpStage:
    """``x -> normalise(x + B gelu(A x + a) + b)``, A ``(hidden, dim)``, B ``(dim, hidden)``."""

    w_in: Floats
    b_in: Floats
    w_out: Floats
    b_out: Floats
    kind: Literal["mlp"] = "mlp"

    def __post_init__(self) -> None:
        for name, ndim in (("w_in", 2), ("b_in", 1), ("w_out", 2), ("b_out", 1)):
            object.__setattr__(self, name, _frozen(getattr(self, name), ndim, name))
        hidden, dim = self.w_in.shape
        shapes = (self.b_in.shape, self.w_out.shape, self.b_out.shape)
        if shapes != ((hidden,), (dim, hidden), (dim,)):
            raise ValueError(f"inconsistent mlp stage shapes: {self.w_in.shape}, {shapes}")

    @property
    def dim(self) -> int:
        return int(self.w_in.shape[1])

    def arrays(self) -> dict[str, Floats]:
        return {"w_in": self.w_in, "b_in": self.b_in, "w_out": self.w_out, "b_out": self.b_out}

    def apply(self, rows: Floats) -> Floats:
        x = rows.astype(np.float64)
        hidden = gelu(x @ self.w_in.T.astype(np.float64) + self.b_in)
        return normalise_rows((x + hidden @ self.w_out.T.astype(np.float64) + self.b_out)
                              .astype(np.float32))  # fmt: skip


Stage = LinearStage | MlpStage


def make_stage(kind: str, arrays: dict[str, Floats]) -> Stage:
    """A stage from its kind and named arrays (as ``Stage.arrays()`` gives them)."""
    if kind == "linear":
        return LinearStage(arrays["matrix"])
    if kind == "mlp":
        return MlpStage(arrays["w_in"], arrays["b_in"], arrays["w_out"], arrays["b_out"])
    raise ValueError(f"unknown adapter stage kind {kind!r}")


@dataclass(frozen=True, eq=False)
class Adapter:
    """Stages learnt for vectors of ``base_version`` (none: the identity, then normalise)."""

    base_version: str
    dim: int
    stages: tuple[Stage, ...] = ()

    def __post_init__(self) -> None:
        for stage in self.stages:
            if stage.dim != self.dim:
                raise ValueError(f"a stage of width {stage.dim} on an adapter of width {self.dim}")

    @classmethod
    def linear(cls, base_version: str, matrix: npt.ArrayLike) -> Adapter:
        stage = LinearStage(np.asarray(matrix, dtype=np.float32))
        return cls(base_version, stage.dim, (stage,))

    @classmethod
    def identity(cls, base_version: str, dim: int) -> Adapter:
        return cls(base_version, dim)

    @property
    def adapter_id(self) -> str:
        """64 hex digits over base version, dimension and the stages' kinds and bytes."""
        single_linear = len(self.stages) == 1 and isinstance(self.stages[0], LinearStage)
        digest = hashlib.sha256(_HASH_SCHEME_LINEAR if single_linear else _HASH_SCHEME_STAGES)
        digest.update(self.base_version.encode())
        digest.update(b"\0" + str(self.dim).encode() + b"\0")
        for stage in self.stages:
            if not single_linear:
                digest.update(stage.kind.encode() + b"\0")
            for name, array in stage.arrays().items():
                if not single_linear:
                    digest.update(f"{name}{array.shape}\0".encode())
                digest.update(array.astype("<f4").tobytes())
        return digest.hexdigest()

    @property
    def version(self) -> str:
        """The adapted embedder's version: the base version plus this adapter's id."""
        return f"{self.base_version}{VERSION_MARK}{self.adapter_id}"

    def apply(self, rows: Floats) -> Floats:
        """``(n, dim)`` vectors of the base space → unit vectors of the adapted space."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {rows.shape}")
        out = normalise_rows(rows)
        for stage in self.stages:
            out = stage.apply(out)
        return out

    def then(self, later: Stage) -> Adapter:
        """This adapter followed by ``later`` (a stage learnt on this adapter's output); a
        linear stage after a linear one folds into their product."""
        last = self.stages[-1] if self.stages else None
        if isinstance(last, LinearStage) and isinstance(later, LinearStage):
            product = later.matrix.astype(np.float64) @ last.matrix.astype(np.float64)
            later = LinearStage(product.astype(np.float32))
            return Adapter(self.base_version, self.dim, (*self.stages[:-1], later))
        return Adapter(self.base_version, self.dim, (*self.stages, later))


def split_version(version: str) -> tuple[str, str | None]:
    """``(base version, adapter id or None)`` of an embedder version string."""
    base, mark, adapter_id = version.rpartition(VERSION_MARK)
    return (base, adapter_id) if mark else (version, None)
