"""Learn an adapter stage from what a collection has: labels and/or augmentation pairs.

Training runs on stored vectors (and, for pairs, the vectors of augmented copies), never on
images, so a few thousand items train in seconds on two CPU cores. The stage is a residual
one-hidden-layer network ``normalise(x + B gelu(A x + a) + b)`` (``MlpStage``): its input is
whitened by the training vectors' mean and covariance (shrunk towards a multiple of the
identity), its output layer starts at zero (the stage starts as the identity) and weight decay
and dropout keep it small. It is learnt with

* labels: a normalised-softmax loss against one learnt proxy per label, with label smoothing
  (items move towards their label's proxy and away from the others);
* pairs: InfoNCE between an item and its augmented copy (an item's copy must be nearer to
  it than to the other items of the batch).

Guard against making things worse: part of the items is held out (stratified by label), the
stage is trained on the rest and measured on the held-out part; only if it beats the
identity significantly (paired over the held-out queries) and by ``min_gain`` is it trained
again on everything and returned, otherwise the result says "keep the identity" and why.
Deterministic for a given seed (one torch generator, fixed batch order, CPU).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field

from imgsearch.errors import InvalidRequest
from imgsearch.finetune.adapter import MlpStage, normalise_rows

Progress = Callable[[float], None]


class TrainingCancelled(Exception):
    """``should_stop`` said so between two steps; nothing was produced."""


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden: Annotated[int, Field(ge=1, le=8192)] = 512
    steps: Annotated[int, Field(ge=1, le=100_000)] = 1200
    batch_size: Annotated[int, Field(ge=8, le=65_536)] = 128
    learning_rate: Annotated[float, Field(gt=0, le=1.0)] = 1e-3
    # AdamW weight decay of the network: keeps the stage near the identity.
    weight_decay: Annotated[float, Field(ge=0, le=1.0)] = 1e-2
    dropout: Annotated[float, Field(ge=0, lt=1.0)] = 0.3
    label_smoothing: Annotated[float, Field(ge=0, lt=1.0)] = 0.1
    # Covariance shrinkage of the input whitening: this times dim / items times the mean
    # eigenvalue is added to every eigenvalue (few items per dimension: a noisy covariance,
    # whitened less; 3,068 CLIP vectors: 0.17, 120 colour histograms: 1.2).
    whiten_shrinkage: Annotated[float, Field(gt=0, le=100)] = 1.0
    proxy_scale: Annotated[float, Field(gt=0, le=100)] = 16.0
    pair_temperature: Annotated[float, Field(gt=0, le=1.0)] = 0.1
    holdout: Annotated[float, Field(ge=0.05, le=0.5)] = 0.2
    k: Annotated[int, Field(ge=1, le=100)] = 10
    # The held-out score must beat the identity's by this much (absolute) to keep the adapter.
    min_gain: Annotated[float, Field(ge=0, le=1.0)] = 0.01
    max_items: Annotated[int, Field(ge=10, le=1_000_000)] = 50_000
    seed: int = 0
    # torch threads while training: the matrices are small, and on a busy machine threads
    # wait on each other more than they compute (120 items: 67 s on 2 threads, 2.4 s on 1).
    threads: Annotated[int, Field(ge=1, le=256)] = 1


@dataclass(frozen=True)
class TrainData:
    """Unit vectors of the current space, optional labels, optional augmentation pairs.

    ``pair_rows[i]`` is the row of ``vectors`` that ``pair_vectors[i]`` is a copy of.
    """

    vectors: npt.NDArray[np.float32]
    labels: Sequence[str | None] | None = None
    pair_vectors: npt.NDArray[np.float32] | None = None
    pair_rows: npt.NDArray[np.int64] | None = None


@dataclass
class TrainResult:
    """The learnt stage (``None``: keep the identity) and what the guard measured."""

    stage: MlpStage | None
    metric: str
    before: float
    after: float
    note: str
    seconds: float = 0.0
    items: int = 0
    details: dict[str, float] = field(default_factory=dict)

    @property
    def improved(self) -> bool:
        return self.stage is not None

    def summary(self) -> dict[str, object]:
        """JSON-ready, for the job state."""
        return {
            "improved": self.improved,
            "metric": self.metric,
            "before": round(self.before, 4),
            "after": round(self.after, 4),
            "note": self.note,
            "seconds": round(self.seconds, 2),
            "items": self.items,
        }


def precision_per_query(
    queries: npt.NDArray[np.float32],
    query_labels: npt.NDArray[np.int64],
    gallery: npt.NDArray[np.float32],
    gallery_labels: npt.NDArray[np.int64],
    k: int,
) -> npt.NDArray[np.float64]:
    """Each query's share of its ``k`` nearest gallery items (cosine) with its label."""
    if len(queries) == 0 or len(gallery) == 0:
        return np.zeros(len(queries))
    k = min(k, len(gallery))
    shares = []
    for start in range(0, len(queries), 512):
        scores = queries[start : start + 512] @ gallery.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        shares.append((gallery_labels[top] == query_labels[start : start + 512, None]).mean(1))
    return np.concatenate(shares).astype(np.float64)


def precision_at_k(
    queries: npt.NDArray[np.float32],
    query_labels: npt.NDArray[np.int64],
    gallery: npt.NDArray[np.float32],
    gallery_labels: npt.NDArray[np.int64],
    k: int,
) -> float:
    """Mean category precision@k of the queries against the gallery."""
    per_query = precision_per_query(queries, query_labels, gallery, gallery_labels, k)
    return float(per_query.mean()) if len(per_query) else 0.0


def pair_hits(
    copies: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], gallery: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """1 for each augmented copy whose nearest gallery item is the item it copies, else 0."""
    if len(copies) == 0:
        return np.zeros(0)
    nearest = np.concatenate(
        [np.argmax(copies[s : s + 512] @ gallery.T, axis=1) for s in range(0, len(copies), 512)]
    )
    hits: npt.NDArray[np.float64] = (nearest == rows).astype(np.float64)
    return hits


def pair_recall_at_1(
    copies: npt.NDArray[np.float32], rows: npt.NDArray[np.int64], gallery: npt.NDArray[np.float32]
) -> float:
    """Share of augmented copies whose nearest gallery item is the item they copy."""
    hits = pair_hits(copies, rows, gallery)
    return float(hits.mean()) if len(hits) else 0.0


def significant_gain(
    before: npt.NDArray[np.float64], after: npt.NDArray[np.float64], min_gain: float
) -> bool:
    """The paired mean gain is at least ``min_gain`` and two standard errors above zero
    (a held-out set of a few dozen queries moves by chance alone)."""
    if len(before) < 2:
        return False
    diff = after - before
    standard_error = float(diff.std(ddof=1) / np.sqrt(len(diff)))
    gain = float(diff.mean())
    return gain >= min_gain and gain > 2.0 * standard_error


def train_adapter(
    data: TrainData,
    settings: TrainSettings | None = None,
    *,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Hold out, train, measure against the identity; retrain on everything if it helps."""
    settings = settings or TrainSettings()
    started = time.perf_counter()
    prepared = _prepare(data, settings)
    report = progress or (lambda _: None)
    stop = should_stop or (lambda: False)
    fit_rows, held_rows = _split(prepared, settings)
    held = _Subset.of(prepared, fit_rows, held_rows)
    with _threads(settings.threads):
        return _train(prepared, fit_rows, held, settings, started, report, stop)


_THREADS_LOCK = threading.Lock()


@contextmanager
def _threads(count: int) -> Iterator[None]:
    """torch's (process-wide) thread count set to ``count`` for one training at a time."""
    with _THREADS_LOCK:
        before = torch.get_num_threads()
        torch.set_num_threads(count)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def _train(
    prepared: _Prepared,
    fit_rows: npt.NDArray[np.int64],
    held: _Subset,
    settings: TrainSettings,
    started: float,
    report: Progress,
    stop: Callable[[], bool],
) -> TrainResult:

    def phase(offset: float) -> Progress:
        return lambda fraction: report(offset + 0.5 * fraction)

    trial = _fit(prepared, fit_rows, settings, phase(0.0), stop)
    untuned, tuned = held.score(None, settings.k), held.score(trial, settings.k)
    before, after, metric = float(untuned.mean()), float(tuned.mean()), held.metric
    details = {"before": before, "after": after, "held_out": float(len(untuned))}
    if not significant_gain(untuned, tuned, settings.min_gain):
        report(1.0)
        note = (
            f"kept the identity: the adapter scored {metric} {after:.4f} on {len(untuned)} "
            f"held-out items, the untuned embedder {before:.4f} (needs a significant gain of "
            f"at least {settings.min_gain})"
        )
        return TrainResult(None, metric, before, after, note, time.perf_counter() - started,
                           len(prepared.vectors), details)  # fmt: skip
    everything = np.arange(len(prepared.vectors))
    stage = _fit(prepared, everything, settings, phase(0.5), stop)
    report(1.0)
    note = f"held-out {metric} {before:.4f} -> {after:.4f}"
    return TrainResult(stage, metric, before, after, note, time.perf_counter() - started,
                       len(prepared.vectors), details)  # fmt: skip


@dataclass(frozen=True)
class _Prepared:
    vectors: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64] | None  # -1 = unlabelled
    classes: int
    pair_vectors: npt.NDArray[np.float32] | None
    pair_rows: npt.NDArray[np.int64] | None


def _prepare(data: TrainData, settings: TrainSettings) -> _Prepared:
    vectors = np.asarray(data.vectors, dtype=np.float32)
    if vectors.ndim != 2 or len(vectors) == 0:
        raise InvalidRequest("nothing to fine-tune on: the collection has no vectors")
    vectors = normalise_rows(vectors)
    labels: npt.NDArray[np.int64] | None = None
    classes = 0
    if data.labels is not None:
        if len(data.labels) != len(vectors):
            raise ValueError("one label per vector")
        counts: dict[str, int] = {}
        for label in data.labels:
            if label is not None:
                counts[label] = counts.get(label, 0) + 1
        usable = sorted(name for name, n in counts.items() if n >= 2)
        if len(usable) < 2:
            raise InvalidRequest(
                "fine-tuning on labels needs at least two labels with two items each; "
                f"found {len(usable)} such label(s)"
            )
        index = {name: i for i, name in enumerate(usable)}
        labels = np.array([index.get(label, -1) if label else -1 for label in data.labels])
        classes = len(usable)
    pair_vectors = pair_rows = None
    if data.pair_vectors is not None and data.pair_rows is not None and len(data.pair_rows):
        pair_vectors = normalise_rows(np.asarray(data.pair_vectors, dtype=np.float32))
        pair_rows = np.asarray(data.pair_rows, dtype=np.int64)
    if labels is None and pair_rows is None:
        raise InvalidRequest("fine-tuning needs labels or augmentation pairs")
    if len(vectors) > settings.max_items:  # a seeded sample keeps training time bounded
        keep = np.sort(
            np.random.default_rng(settings.seed).choice(len(vectors), settings.max_items, False)
        )
        vectors, labels, pair_vectors, pair_rows = _take(
            keep, vectors, labels, pair_vectors, pair_rows
        )
    return _Prepared(vectors, labels, classes, pair_vectors, pair_rows)


def _take(
    keep: npt.NDArray[np.int64],
    vectors: npt.NDArray[np.float32],
    labels: npt.NDArray[np.int64] | None,
    pair_vectors: npt.NDArray[np.float32] | None,
    pair_rows: npt.NDArray[np.int64] | None,
) -> tuple[
    npt.NDArray[np.float32],
    npt.NDArray[np.int64] | None,
    npt.NDArray[np.float32] | None,
    npt.NDArray[np.int64] | None,
]:
    new_row = np.full(len(vectors), -1)
    new_row[keep] = np.arange(len(keep))
    if pair_rows is not None and pair_vectors is not None:
        kept = new_row[pair_rows] >= 0
        pair_vectors, pair_rows = pair_vectors[kept], new_row[pair_rows[kept]]
    return vectors[keep], None if labels is None else labels[keep], pair_vectors, pair_rows


def _split(
    data: _Prepared, settings: TrainSettings
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Seeded, stratified by label (unlabelled items form one stratum)."""
    rng = np.random.default_rng(settings.seed)
    strata = data.labels if data.labels is not None else np.zeros(len(data.vectors), np.int64)
    held: list[int] = []
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        rng.shuffle(members)
        n_held = round(len(members) * settings.holdout)
        if value >= 0 and len(members) - n_held < 1:
            n_held = len(members) - 1
        held.extend(members[:n_held].tolist())
    held_rows = np.sort(np.array(held, dtype=np.int64))
    fit_rows = np.setdiff1d(np.arange(len(data.vectors)), held_rows)
    return fit_rows, held_rows


@dataclass(frozen=True)
class _Subset:
    """The held-out measurement: held-out items queried against the fitted ones."""

    queries: npt.NDArray[np.float32]
    query_labels: npt.NDArray[np.int64] | None
    gallery: npt.NDArray[np.float32]
    gallery_labels: npt.NDArray[np.int64] | None
    copies: npt.NDArray[np.float32] | None
    copy_rows: npt.NDArray[np.int64] | None
    full: npt.NDArray[np.float32]

    @classmethod
    def of(
        cls, data: _Prepared, fit_rows: npt.NDArray[np.int64], held_rows: npt.NDArray[np.int64]
    ) -> _Subset:
        labels = data.labels
        copies = copy_rows = None
        if data.pair_rows is not None and data.pair_vectors is not None:
            mask = np.isin(data.pair_rows, held_rows)
            copies, copy_rows = data.pair_vectors[mask], data.pair_rows[mask]
        if labels is not None:  # query labelled held-out items only
            held_rows = held_rows[labels[held_rows] >= 0]
            fit_rows = fit_rows[labels[fit_rows] >= 0]
        return cls(
            queries=data.vectors[held_rows],
            query_labels=None if labels is None else labels[held_rows],
            gallery=data.vectors[fit_rows],
            gallery_labels=None if labels is None else labels[fit_rows],
            copies=copies,
            copy_rows=copy_rows,
            full=data.vectors,
        )

    @property
    def metric(self) -> str:
        return "category precision@k" if self.query_labels is not None else "copy recall@1"

    def score(self, stage: MlpStage | None, k: int) -> npt.NDArray[np.float64]:
        """Per held-out query: its precision@k, or whether its copy found it."""

        def apply(rows: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            return rows if stage is None else stage.apply(rows)

        if self.query_labels is not None and self.gallery_labels is not None:
            return precision_per_query(
                apply(self.queries), self.query_labels, apply(self.gallery),
                self.gallery_labels, k,
            )  # fmt: skip
        assert self.copies is not None and self.copy_rows is not None
        return pair_hits(apply(self.copies), self.copy_rows, apply(self.full))


def _fit(
    data: _Prepared,
    rows: npt.NDArray[np.int64],
    settings: TrainSettings,
    progress: Progress,
    should_stop: Callable[[], bool],
) -> MlpStage:
    """The stage learnt on ``rows`` (and their pairs)."""
    generator = torch.Generator().manual_seed(settings.seed)
    x_all = torch.from_numpy(data.vectors[rows])
    labels = None if data.labels is None else torch.from_numpy(data.labels[rows])
    net = _Residual(data.vectors[rows], settings, generator)
    proxies = None
    if labels is not None:
        labelled = labels >= 0
        means = torch.zeros(data.classes, x_all.shape[1]).index_add_(
            0, labels[labelled], x_all[labelled]
        )
        proxies = torch.nn.functional.normalize(means, dim=1).requires_grad_()
    pairs = _pairs_for(data, rows)
    optimiser = torch.optim.AdamW(
        [{"params": net.params, "weight_decay": settings.weight_decay}]
        + ([{"params": [proxies], "weight_decay": 0.0}] if proxies is not None else []),
        lr=settings.learning_rate,
    )
    for step in range(settings.steps):
        if should_stop():
            raise TrainingCancelled
        optimiser.zero_grad()
        loss = torch.zeros(())
        if labels is not None and proxies is not None:
            batch = _batch(len(rows), settings.batch_size, generator)
            mask = labels[batch] >= 0
            x = net(x_all[batch][mask], train=True)
            logits = settings.proxy_scale * x @ torch.nn.functional.normalize(proxies, dim=1).T
            loss = loss + torch.nn.functional.cross_entropy(
                logits, labels[batch][mask], label_smoothing=settings.label_smoothing
            )
        if pairs is not None:
            anchors, copies = pairs
            batch = _batch(len(anchors), settings.batch_size, generator)
            a, c = net(anchors[batch], train=True), net(copies[batch], train=True)
            logits = a @ c.T / settings.pair_temperature
            target = torch.arange(len(batch))
            loss = loss + 0.5 * (
                torch.nn.functional.cross_entropy(logits, target)
                + torch.nn.functional.cross_entropy(logits.T, target)
            )
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        if step % 10 == 0 or step == settings.steps - 1:
            progress((step + 1) / settings.steps)
    return net.stage()


class _Residual:
    """``normalise(x + B gelu(W T (x - m) + a) + b)`` in torch; ``T`` the fixed whitening
    of the training vectors, ``B`` starting at zero (the identity)."""

    def __init__(
        self, vectors: npt.NDArray[np.float32], settings: TrainSettings, generator: torch.Generator
    ) -> None:
        x = vectors.astype(np.float64)
        dim, hidden = x.shape[1], settings.hidden
        self.mean = x.mean(0)
        centred = x - self.mean
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / max(len(x) - 1, 1))
        eigenvalues = np.maximum(eigenvalues, 0.0)
        shrinkage = settings.whiten_shrinkage * dim / len(x)
        floor = shrinkage * max(float(eigenvalues.mean()), 1e-12)
        self.whiten = (eigenvectors / np.sqrt(eigenvalues + floor)) @ eigenvectors.T
        self.dropout = settings.dropout
        self.generator = generator
        bound = 1.0 / dim**0.5  # torch.nn.Linear's initialisation, from our generator
        self.w_in = (
            (torch.rand(hidden, dim, generator=generator) * 2 - 1) * bound
        ).requires_grad_()
        self.b_in = ((torch.rand(hidden, generator=generator) * 2 - 1) * bound).requires_grad_()
        self.w_out = torch.zeros(dim, hidden, requires_grad=True)
        self.b_out = torch.zeros(dim, requires_grad=True)
        self.params = [self.w_in, self.b_in, self.w_out, self.b_out]
        self._whiten = torch.from_numpy(self.whiten.astype(np.float32))
        self._mean = torch.from_numpy(self.mean.astype(np.float32))

    def __call__(self, x: torch.Tensor, *, train: bool) -> torch.Tensor:
        pre = ((x - self._mean) @ self._whiten) @ self.w_in.T + self.b_in
        hidden = torch.nn.functional.gelu(pre, approximate="tanh")
        if train and self.dropout > 0:
            keep = torch.rand(hidden.shape, generator=self.generator) >= self.dropout
            hidden = hidden * keep / (1 - self.dropout)
        return torch.nn.functional.normalize(x + hidden @ self.w_out.T + self.b_out, dim=1)

    def stage(self) -> MlpStage:
        """The learnt network with the whitening folded into its first layer."""
        with torch.no_grad():
            w_in = self.w_in.numpy().astype(np.float64) @ self.whiten  # whiten is symmetric
            b_in = self.b_in.numpy().astype(np.float64) - w_in @ self.mean
            return MlpStage(w_in, b_in, self.w_out.numpy(), self.b_out.numpy())


def _pairs_for(
    data: _Prepared, rows: npt.NDArray[np.int64]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    if data.pair_rows is None or data.pair_vectors is None:
        return None
    mask = np.isin(data.pair_rows, rows)
    if not mask.any():
        return None
    anchors = torch.from_numpy(data.vectors[data.pair_rows[mask]])
    return anchors, torch.from_numpy(data.pair_vectors[mask])


def _batch(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    if n <= size:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:size]
