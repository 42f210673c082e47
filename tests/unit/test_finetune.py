"""The adapter's math, its training (labels, augmentation pairs, the guard) and the adapted
embedder, on synthetic data whose answer is known and on the real colour descriptor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from imgsearch.embedders.adapted import AdaptedClipEmbedder, AdaptedEmbedder, adapt, unadapted
from imgsearch.embedders.clip import ClipEmbedder
from imgsearch.embedders.color import ColorEmbedder
from imgsearch.engine_config import ClipSpec
from imgsearch.errors import ConfigError, InvalidRequest
from imgsearch.finetune.adapter import Adapter, LinearStage, MlpStage, split_version
from imgsearch.finetune.augment import augmented_copy
from imgsearch.finetune.train import (
    TrainData,
    TrainSettings,
    pair_recall_at_1,
    precision_at_k,
    train_adapter,
)
from tests.tolerance import assert_same_vector, cosine

FAST = TrainSettings(steps=150, hidden=64, learning_rate=1e-2, seed=3)


def unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def hidden_classes(
    n: int, seed: int, dim: int = 32, classes: int = 4
) -> tuple[npt.NDArray[np.float32], list[str]]:
    """Labels carried by 2 weak dimensions under 30 loud noise dimensions: the untuned cosine
    neighbours are nearly random, a linear map that amplifies the 2 dimensions fixes that."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    angles = 2 * np.pi * labels / classes
    signal = np.stack([np.cos(angles), np.sin(angles)], axis=1) * 0.6
    noise = rng.normal(size=(n, dim - 2))
    vectors = unit(np.concatenate([signal + rng.normal(scale=0.1, size=(n, 2)), noise], axis=1))
    return vectors, [f"c{label}" for label in labels]


def label_ids(labels: list[str]) -> npt.NDArray[np.int64]:
    names = sorted(set(labels))
    return np.array([names.index(label) for label in labels])


def brute_precision(
    queries: npt.NDArray[np.float32], q_labels: list[str],
    gallery: npt.NDArray[np.float32], g_labels: list[str], k: int,
) -> float:  # fmt: skip
    """Reference: sort every query's similarities in full (ties broken by gallery row)."""
    shares = []
    for row, label in zip(queries, q_labels, strict=True):
        scores = gallery.astype(np.float64) @ row.astype(np.float64)
        order = sorted(range(len(gallery)), key=lambda i: (-scores[i], i))[:k]
        shares.append(np.mean([g_labels[i] == label for i in order]))
    return float(np.mean(shares))


# -- the adapter ---------------------------------------------------------------------------


def test_apply_is_linear_then_normalised() -> None:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(8, 8)).astype(np.float32)
    rows = rng.normal(size=(5, 8)).astype(np.float32)
    got = Adapter.linear("base/v1", matrix).apply(rows)
    for row, out in zip(rows, got, strict=True):
        expected = matrix.astype(np.float64) @ row
        assert_same_vector(out, expected / np.linalg.norm(expected))
        assert abs(np.linalg.norm(out) - 1.0) < 1e-6


def test_identity_adapter_only_normalises() -> None:
    rows = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    got = Adapter.identity("b", 6).apply(rows)
    for row, out in zip(rows, got, strict=True):
        assert_same_vector(out, row)


def test_composition_equals_applying_twice() -> None:
    """normalise(W2 normalise(W1 x)) = normalise(W2 W1 x): a second fine-tuning composes."""
    rng = np.random.default_rng(2)
    first = Adapter.linear("b", rng.normal(size=(6, 6)).astype(np.float32))
    second = rng.normal(size=(6, 6)).astype(np.float32)
    rows = rng.normal(size=(7, 6)).astype(np.float32)
    twice = Adapter.linear("b", second).apply(first.apply(rows))
    composed = first.then(LinearStage(second))
    assert composed.base_version == "b"
    for a, b in zip(composed.apply(rows), twice, strict=True):
        assert_same_vector(a, b)


def test_adapter_id_names_content_and_base() -> None:
    matrix = np.eye(4, dtype=np.float32)
    ids = {
        Adapter.linear("b", matrix).adapter_id,
        Adapter.linear("other", matrix).adapter_id,
        Adapter.linear("b", matrix * 2).adapter_id,
        Adapter.linear("b", np.eye(5, dtype=np.float32)).adapter_id,
    }
    assert len(ids) == 4
    assert Adapter.linear("b", matrix.copy()).adapter_id == Adapter.linear("b", matrix).adapter_id


def test_version_round_trip() -> None:
    adapter = Adapter.linear("open_clip/ViT-B-32/laion2b_s34b_b79k", np.eye(3, dtype=np.float32))
    assert split_version(adapter.version) == (adapter.base_version, adapter.adapter_id)
    assert split_version("color-hsv-v2") == ("color-hsv-v2", None)


@pytest.mark.parametrize("bad", [np.ones((2, 3)), np.array([[np.nan]]), np.ones(3)])
def test_bad_matrices_are_refused(bad: npt.NDArray[np.float64]) -> None:
    with pytest.raises(ValueError):
        Adapter.linear("b", bad.astype(np.float32))


def random_mlp(dim: int, hidden: int, seed: int) -> MlpStage:
    rng = np.random.default_rng(seed)

    def floats(shape: tuple[int, ...], scale: float) -> npt.NDArray[np.float32]:
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return MlpStage(floats((hidden, dim), 1.0), floats((hidden,), 1.0),
                    floats((dim, hidden), 0.3), floats((dim,), 0.1))  # fmt: skip


def test_mlp_stage_is_residual_gelu_then_normalised() -> None:
    """Reference: the formula row by row in float64 (GELU written out, tanh form)."""
    stage = random_mlp(6, 5, seed=20)
    rows = unit(np.random.default_rng(21).normal(size=(4, 6)))
    got = Adapter("b", 6, (stage,)).apply(rows)
    a, a0, b, b0 = (x.astype(np.float64) for x in stage.arrays().values())
    for out, row in zip(got, rows.astype(np.float64), strict=True):
        pre = a @ row + a0
        hidden = 0.5 * pre * (1 + np.tanh(np.sqrt(2 / np.pi) * (pre + 0.044715 * pre**3)))
        expected = row + b @ hidden + b0
        assert_same_vector(out, expected / np.linalg.norm(expected))


def test_a_chain_applies_its_stages_in_order_and_names_them() -> None:
    """Fine-tuning a fine-tuned collection appends a stage: the chain is the stages one after
    the other; linear after linear folds (same map), anything else is kept as a stage."""
    rng = np.random.default_rng(22)
    rows = unit(rng.normal(size=(5, 6)))
    linear = LinearStage(rng.normal(size=(6, 6)).astype(np.float32))
    mlp, other = random_mlp(6, 4, seed=23), random_mlp(6, 4, seed=24)
    chain = Adapter.identity("b", 6).then(linear).then(mlp)
    assert [stage.kind for stage in chain.stages] == ["linear", "mlp"]
    for got, expected in zip(chain.apply(rows), mlp.apply(linear.apply(rows)), strict=True):
        assert_same_vector(got, expected)
    folded = chain.then(other).stages
    assert len(folded) == 3
    ids = {chain.adapter_id, chain.then(other).adapter_id,
           Adapter("b", 6, (mlp, linear)).adapter_id, Adapter("b", 6, (linear,)).adapter_id,
           Adapter("b", 6, (mlp,)).adapter_id, Adapter("other", 6, (mlp,)).adapter_id}  # fmt: skip
    assert len(ids) == 6
    assert (
        Adapter("b", 6, (random_mlp(6, 4, seed=23),)).adapter_id
        == Adapter("b", 6, (mlp,)).adapter_id
    )


def test_a_single_linear_stage_keeps_the_first_id_scheme() -> None:
    """Adapters stored before stages existed keep their ids (and so their indexes)."""
    import hashlib

    matrix = np.random.default_rng(25).normal(size=(3, 3)).astype(np.float32)
    digest = hashlib.sha256(b"imgsearch-adapter-v1\0b\x003\0" + matrix.astype("<f4").tobytes())
    assert Adapter.linear("b", matrix).adapter_id == digest.hexdigest()


def test_stages_of_another_width_are_refused() -> None:
    with pytest.raises(ValueError, match="width"):
        Adapter("b", 5, (random_mlp(6, 4, seed=26),))
    with pytest.raises(ValueError, match="shapes"):
        ones = np.ones((4, 6), np.float32)
        MlpStage(ones, ones[:3, 0], ones.T, ones[0])


def test_apply_refuses_the_wrong_width() -> None:
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        Adapter.identity("b", 4).apply(np.ones((2, 5), np.float32))


# -- the metrics ---------------------------------------------------------------------------


def test_precision_at_k_matches_brute_force() -> None:
    vectors, labels = hidden_classes(120, seed=4)
    queries, gallery = vectors[:30], vectors[30:]
    got = precision_at_k(queries, label_ids(labels[:30]), gallery, label_ids(labels)[30:], 10)
    expected = brute_precision(queries, labels[:30], gallery, labels[30:], 10)
    assert abs(got - expected) < 1e-9


def test_pair_recall_at_1() -> None:
    gallery = np.eye(4, dtype=np.float32)
    copies = unit(np.array([[1.0, 0.1, 0, 0], [0, 0, 0.1, 1.0], [1.0, 0, 0, 0]]))
    assert pair_recall_at_1(copies, np.array([0, 3, 2]), gallery) == pytest.approx(2 / 3)


# -- training --------------------------------------------------------------------------------


def test_labels_improve_held_out_precision_by_a_wide_margin() -> None:
    train, train_labels = hidden_classes(600, seed=5)
    test, test_labels = hidden_classes(200, seed=6)
    result = train_adapter(TrainData(train, train_labels), FAST)
    assert result.stage is not None, result.note
    adapter = Adapter("b", 32, (result.stage,))
    before = brute_precision(test, test_labels, train, train_labels, 10)
    after = brute_precision(adapter.apply(test), test_labels, adapter.apply(train),
                            train_labels, 10)  # fmt: skip
    # 4 classes: chance is ~0.25; the 2 signal dimensions separate them almost perfectly.
    assert before < 0.45
    assert after > before + 0.3, (before, after)
    assert result.after > result.before  # the guard's own held-out measurement agrees


def test_training_is_deterministic_for_a_seed() -> None:
    vectors, labels = hidden_classes(300, seed=7)
    first = train_adapter(TrainData(vectors, labels), FAST).stage
    second = train_adapter(TrainData(vectors, labels), FAST).stage
    assert first is not None and second is not None
    for name, array in first.arrays().items():
        np.testing.assert_allclose(array, second.arrays()[name], atol=1e-6)
    assert Adapter("b", 32, (first,)).adapter_id == Adapter("b", 32, (second,)).adapter_id


def test_labels_that_say_nothing_keep_the_identity() -> None:
    """Random labels: the adapter cannot beat the identity on held-out items; the guard keeps
    the untuned embedder and the result says why."""
    vectors, _ = hidden_classes(400, seed=8)
    noise = [f"c{x}" for x in np.random.default_rng(9).integers(0, 4, 400)]
    result = train_adapter(TrainData(vectors, noise), FAST)
    assert result.stage is None
    assert not result.improved
    assert "kept the identity" in result.note
    assert result.summary()["improved"] is False


def test_unlabelled_items_are_left_out_of_the_label_loss() -> None:
    vectors, labels = hidden_classes(500, seed=10)
    partial: list[str | None] = [label if i % 3 else None for i, label in enumerate(labels)]
    result = train_adapter(TrainData(vectors, partial), FAST)
    assert result.stage is not None, result.note


def test_augmentation_pairs_teach_what_to_ignore() -> None:
    """Copies differ from their item in 6 nuisance dimensions: the adapter learns to damp
    them, so a copy finds its own item more often (recall@1 on held-out copies)."""
    rng = np.random.default_rng(11)
    n, dim = 500, 24
    content = rng.normal(size=(n, dim))
    content[:, :6] *= 0.2
    nuisance = np.zeros((n, dim))
    nuisance[:, :6] = rng.normal(scale=1.5, size=(n, 6))
    items = unit(content + nuisance)
    copies = unit(content + np.pad(rng.normal(scale=1.5, size=(n, 6)), ((0, 0), (0, dim - 6))))
    rows = np.arange(n)
    result = train_adapter(TrainData(items, None, copies, rows), FAST)
    assert result.stage is not None, result.note
    assert result.metric == "copy recall@1"
    fresh = unit(content + np.pad(rng.normal(scale=1.5, size=(n, 6)), ((0, 0), (0, dim - 6))))
    adapter = Adapter("b", dim, (result.stage,))
    before = pair_recall_at_1(fresh, rows, items)
    after = pair_recall_at_1(adapter.apply(fresh), rows, adapter.apply(items))
    assert after > before + 0.1, (before, after)


def test_progress_runs_to_one_and_stop_cancels() -> None:
    from imgsearch.finetune.train import TrainingCancelled

    vectors, labels = hidden_classes(200, seed=12)
    seen: list[float] = []
    train_adapter(TrainData(vectors, labels), FAST, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(TrainingCancelled):
        train_adapter(TrainData(vectors, labels), FAST, should_stop=lambda: True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (TrainData(np.zeros((0, 4), np.float32), ["a"]), "no vectors"),
        (TrainData(np.eye(4, dtype=np.float32), ["a", "a", "b", None]), "at least two labels"),
        (TrainData(np.eye(4, dtype=np.float32)), "labels or augmentation pairs"),
    ],
)
def test_unusable_data_is_a_clear_error(data: TrainData, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        train_adapter(data, FAST)


# -- the adapted embedder ---------------------------------------------------------------------


def photos() -> list[Image.Image]:
    rng = np.random.default_rng(13)
    return [Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)) for _ in range(3)]


def test_adapted_colour_embedder_is_adapter_of_base() -> None:
    base = ColorEmbedder()
    dim = base.info.dim
    matrix = np.eye(dim, dtype=np.float32) + np.random.default_rng(14).normal(
        scale=0.05, size=(dim, dim)
    ).astype(np.float32)
    adapter = Adapter.linear(base.info.version, matrix)
    adapted = adapt(base, adapter)
    assert isinstance(adapted, AdaptedEmbedder) and not isinstance(adapted, AdaptedClipEmbedder)
    assert adapted.info.version == f"{base.info.version}+adapter:{adapter.adapter_id}"
    assert (adapted.info.dim, adapted.info.storage) == (base.info.dim, base.info.storage)
    images = photos()
    expected = adapter.apply(base.embed_images(images))
    got = adapted.embed_images(images)
    for row, want in zip(got, expected, strict=True):
        assert_same_vector(row, want)
    assert cosine(got[0], base.embed_images(images[:1])[0]) < 1.0 - 1e-6
    assert adapted.extra_fields(images[0]) == base.extra_fields(images[0])
    assert unadapted(adapted) == (base, adapter)
    assert unadapted(base) == (base, None)
    assert adapt(base, None) is base


def test_an_adapter_for_another_base_is_refused() -> None:
    base = ColorEmbedder()
    with pytest.raises(ConfigError, match="was learnt for"):
        adapt(base, Adapter.identity("other-version", base.info.dim))
    with pytest.raises(ConfigError, match="was learnt for"):
        adapt(base, Adapter.identity(base.info.version, base.info.dim + 1))


def test_adapted_clip_keeps_text_tower_and_preprocessing(tiny_clip_checkpoint: Path) -> None:
    spec = ClipSpec(model="imgsearch-tiny", pretrained=None, checkpoint=tiny_clip_checkpoint,
                    device="cpu")  # fmt: skip
    base = ClipEmbedder(spec)
    dim = base.info.dim
    matrix = np.eye(dim, dtype=np.float32) * np.linspace(0.5, 1.5, dim, dtype=np.float32)
    adapter = Adapter.linear(base.info.version, matrix)
    adapted = adapt(base, adapter)
    assert isinstance(adapted, AdaptedClipEmbedder)
    images = photos()
    via_batch = adapted.embed_preprocessed(base.preprocess_batch(images))
    for got, want, direct in zip(
        via_batch, adapter.apply(base.embed_images(images)), adapted.embed_images(images),
        strict=True,
    ):  # fmt: skip
        assert_same_vector(got, want)
        assert_same_vector(direct, want)
    text = adapted.embed_texts(["a red dress"])[0]
    assert_same_vector(text, adapter.apply(base.embed_texts(["a red dress"]))[0])


def test_augmented_copy_is_seeded() -> None:
    image = photos()[0]
    first = augmented_copy(image, np.random.default_rng(1))
    again = augmented_copy(image, np.random.default_rng(1))
    other = augmented_copy(image, np.random.default_rng(2))
    assert first.mode == "RGB"
    assert np.array_equal(np.asarray(first), np.asarray(again))
    assert first.size != other.size or not np.array_equal(np.asarray(first), np.asarray(other))


# -- the gateway's embedder follows the index's adapter -----------------------------------


def test_engine_runtime_puts_the_indexed_adapter_on_the_frozen_embedder() -> None:
    from dataclasses import replace

    from gateway.engines import EngineRuntime
    from imgsearch.engine_config import EngineConfig
    from imgsearch.errors import EmbedderMismatch

    base = ColorEmbedder()
    info = base.info
    adapter = Adapter.linear(info.version, np.eye(info.dim, dtype=np.float32) * 2 + 0.01)
    adapters = {adapter.adapter_id: adapter}

    def load(adapter_id: str) -> Adapter:
        if adapter_id not in adapters:
            raise EmbedderMismatch(f"adapter {adapter_id} is not in imgsearch-adapters")
        return adapters[adapter_id]

    config = EngineConfig.model_validate(
        {"hashid": "e", "alias": "e", "vectors": {"color": {"embedder": "color"}}}
    )
    engine = EngineRuntime(config, lambda _c, _f: base, load_adapter=load)
    engine.verify({"color": replace(info, version=adapter.version)}, "color")
    assert engine.embedder("color").info.version == adapter.version
    assert unadapted(engine.embedder("color")) == (base, adapter)
    assert engine.verified("color")
    engine.verify({"color": info}, "color")  # the alias went back to an untuned version
    assert engine.embedder("color") is base
    with pytest.raises(EmbedderMismatch, match="not in imgsearch-adapters"):
        engine.verify({"color": replace(info, version=f"{info.version}+adapter:{'0' * 64}")},
                      "color")  # fmt: skip
    with pytest.raises(EmbedderMismatch, match="was written by"):
        other = replace(info, version=f"color-other+adapter:{adapter.adapter_id}")
        engine.verify({"color": other}, "color")
    engine.recheck_s = 0.0
    assert not engine.verified("color")
