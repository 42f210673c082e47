"""The adapter: ``x -> normalise(W x)`` on top of a frozen, L2-normalised embedder.

Linear-then-normalise composes exactly (``normalise(W2 normalise(W1 x)) = normalise(W2 W1 x)``),
so fine-tuning an already fine-tuned collection learns a new ``W2`` on the stored vectors and
stores the product: one adapter always sits directly on the frozen base embedder.

An adapter is content-addressed: its id is the SHA-256 of the base embedder's version, the
dimension and the matrix bytes, and the adapted embedder's version string names both the
base version and that id, so the index ``_meta`` guard tells adapters apart.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

VERSION_MARK = "+adapter:"
_HASH_SCHEME = b"imgsearch-adapter-v1\0"
# Below this norm a row cannot be normalised (the adapter maps it to ~0).
_MIN_NORM = 1e-12


def normalise_rows(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = (rows / np.maximum(norms, _MIN_NORM)).astype(np.float32)
    return out


@dataclass(frozen=True, eq=False)
class Adapter:
    """A ``(dim, dim)`` float32 matrix learnt for vectors of ``base_version``."""

    base_version: str
    matrix: npt.NDArray[np.float32]

    def __post_init__(self) -> None:
        matrix = np.ascontiguousarray(self.matrix, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"an adapter matrix is square, got shape {matrix.shape}")
        if not np.all(np.isfinite(matrix)):
            raise ValueError("an adapter matrix must be finite")
        matrix.setflags(write=False)
        object.__setattr__(self, "matrix", matrix)

    @classmethod
    def identity(cls, base_version: str, dim: int) -> Adapter:
        return cls(base_version, np.eye(dim, dtype=np.float32))

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def adapter_id(self) -> str:
        """64 hex digits over base version, dimension and matrix bytes."""
        digest = hashlib.sha256(_HASH_SCHEME)
        digest.update(self.base_version.encode())
        digest.update(b"\0" + str(self.dim).encode() + b"\0")
        digest.update(self.matrix.astype("<f4").tobytes())
        return digest.hexdigest()

    @property
    def version(self) -> str:
        """The adapted embedder's version: the base version plus this adapter's id."""
        return f"{self.base_version}{VERSION_MARK}{self.adapter_id}"

    def apply(self, rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``(n, dim)`` vectors of the base space → unit vectors of the adapted space."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise ValueError(f"expected (n, {self.dim}) vectors, got {rows.shape}")
        return normalise_rows(rows @ self.matrix.T)

    def then(self, later: npt.NDArray[np.float32]) -> Adapter:
        """This adapter followed by ``later`` (a matrix learnt on this adapter's output)."""
        product = np.asarray(later, dtype=np.float64) @ self.matrix.astype(np.float64)
        return Adapter(self.base_version, product.astype(np.float32))


def split_version(version: str) -> tuple[str, str | None]:
    """``(base version, adapter id or None)`` of an embedder version string."""
    base, mark, adapter_id = version.rpartition(VERSION_MARK)
    return (base, adapter_id) if mark else (version, None)
