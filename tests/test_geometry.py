"""Relative representations, space comparison, anchors, stitching and projections on
synthetic spaces whose right answers are known."""
from __future__ import annotations

import json

import numpy as np
import pytest

from workbench.errors import ConfigError, DataError
from workbench.geometry import (
    ProjectionCache,
    Space,
    compare_spaces,
    jaccard_at_k,
    kmeans_labels,
    knn_overlap,
    mean_cosine,
    mean_reciprocal_rank,
    nearest_neighbours,
    project,
    relative_encode,
    relative_space,
    select_anchors,
    stitch,
)


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(max(rows, cols), max(rows, cols))))
    return q[:rows, :cols]


def _clusters(rng: np.random.Generator, n_per: int = 40, n_classes: int = 4, dim: int = 16, spread: float = 0.6):
    centers = rng.normal(size=(n_classes, dim)) * 3
    x = np.concatenate([c + spread * rng.normal(size=(n_per, dim)) for c in centers])
    y = np.repeat([f"class{i}" for i in range(n_classes)], n_per)
    return x.astype(np.float32), y


def _space(x: np.ndarray, name: str = "s", keys: tuple[str, ...] | None = None) -> Space:
    return Space(name, x, keys or tuple(f"k{i}" for i in range(len(x))))


def test_relative_encoding_is_cosine_to_anchors_and_invariant_to_rotation_and_scale():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 8)).astype(np.float32)
    anchors = x[:5]
    rel = relative_encode(x, anchors, normalize="none")
    expected = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (anchors / np.linalg.norm(anchors, axis=1, keepdims=True)).T
    np.testing.assert_allclose(rel, expected, atol=1e-5)
    # An isometry into a wider space, times 7, plus (for the centred version) a shift: same relative space.
    q = _orthonormal(rng, 8, 12)
    moved = 7 * x @ q
    np.testing.assert_allclose(relative_encode(moved, moved[:5], normalize="none"), rel, atol=1e-4)
    shifted = moved + 3.0
    np.testing.assert_allclose(relative_encode(shifted, shifted[:5], normalize="center"), relative_encode(x, anchors, normalize="center"), atol=1e-4)
    assert not np.allclose(relative_encode(shifted, shifted[:5], normalize="none"), rel, atol=1e-2)  # centring is what removes the shift
    # "standardize" rescales each dimension by the anchors' spread: one huge dimension no longer dominates.
    loud = x.copy()
    loud[:, 0] *= 1000
    assert np.allclose(relative_encode(loud, loud[:5], normalize="standardize"), relative_encode(x, anchors, normalize="standardize"), atol=1e-4)
    assert not np.allclose(relative_encode(loud, loud[:5], normalize="center"), relative_encode(x, anchors, normalize="center"), atol=1e-2)
    with pytest.raises(ConfigError, match="Unknown normalization"):
        relative_encode(x, anchors, normalize="whiten")


def test_compare_spaces_rotated_copy_agrees_and_unrelated_space_does_not():
    rng = np.random.default_rng(1)
    x, _ = _clusters(rng)
    a = _space(x, "a")
    b = _space(5 * x @ _orthonormal(rng, 16, 24), "b")  # different width: absolute MRR is undefined
    anchors = select_anchors(a, 20, "random")
    absolute = compare_spaces(a, b, k=10)
    assert absolute.knn_overlap == pytest.approx(1.0)  # same neighbourhoods...
    assert absolute.jaccard is None and absolute.mrr is None and absolute.mean_cosine is None  # ...but no shared coordinates
    relative = compare_spaces(relative_space(a, anchors, normalize="center"), relative_space(b, anchors, normalize="center"), k=10)
    assert relative.kind == "relative" and relative.jaccard == pytest.approx(1.0) and relative.mrr == pytest.approx(1.0) and relative.mean_cosine == pytest.approx(1.0, abs=1e-5)
    other = _space(rng.normal(size=x.shape).astype(np.float32), "noise")
    unrelated = compare_spaces(relative_space(a, anchors), relative_space(other, anchors), k=10)
    assert unrelated.jaccard < 0.2 and unrelated.mrr < 0.2 and unrelated.knn_overlap < 0.2
    # Same width but rotated: absolute coordinates disagree, relative ones agree.
    rotated = _space(x @ _orthonormal(rng, 16, 16), "rotated")
    assert compare_spaces(a, rotated).mrr < 0.2 and compare_spaces(a, rotated).jaccard < 0.3
    assert compare_spaces(relative_space(a, anchors, normalize="center"), relative_space(rotated, anchors, normalize="center")).mrr == pytest.approx(1.0)


def test_metrics_on_hand_computed_examples():
    a = np.array([[1, 0], [0, 1]], dtype=np.float32)
    b = np.array([[0, 1], [1, 0]], dtype=np.float32)
    assert mean_reciprocal_rank(a, b) == pytest.approx(0.5)  # each input's own vector ranks second
    assert mean_reciprocal_rank(a, a) == pytest.approx(1.0)
    assert mean_cosine(a, b) == pytest.approx(0.0)
    assert jaccard_at_k(a, a, 1) == pytest.approx(1.0)
    assert jaccard_at_k(a, b, 1) == pytest.approx(0.0)  # a[0] finds b[1] in b, b[0] finds itself
    # Points on the unit circle: nearest neighbours by angle are [1, 0, 1, 2] in a and [1, 0, 3, 2] in b.
    def circle(angles: list[float]) -> np.ndarray:
        return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)

    line, moved = circle([0, 0.1, 0.3, 0.6]), circle([0, 0.1, 0.5, 0.6])
    assert nearest_neighbours(line, line, 1, exclude_self=True)[:, 0].tolist() == [1, 0, 1, 2]
    assert nearest_neighbours(moved, moved, 1, exclude_self=True)[:, 0].tolist() == [1, 0, 3, 2]
    assert knn_overlap(line, moved, 1) == pytest.approx(0.75)  # three of four sets are equal (Jaccard 1), one disjoint (0)
    assert knn_overlap(line, line, 2) == pytest.approx(1.0)


def test_anchor_methods_return_distinct_inputs_and_cover_clusters():
    rng = np.random.default_rng(2)
    x, y = _clusters(rng, n_per=30, n_classes=4, spread=0.1)
    space = _space(x)
    label_of = dict(zip(space.keys, y, strict=True))
    for method in ("random", "kmeans", "farthest"):
        anchors = select_anchors(space, 12, method, seed=3)
        assert len(set(anchors)) == 12 and set(anchors) <= set(space.keys)
        assert anchors == select_anchors(space, 12, method, seed=3)  # reproducible
    for method in ("kmeans", "farthest"):  # four anchors, four well-separated clusters: one each
        assert len({label_of[k] for k in select_anchors(space, 4, method)}) == 4
    assert select_anchors(space, 5, "random", seed=0) != select_anchors(space, 5, "random", seed=1)
    clusters = kmeans_labels(space, 4)
    assert len(set(zip(clusters, y, strict=True))) == 4  # the clustering recovers the classes


def test_stitching_relative_head_transfers_and_absolute_head_does_not():
    rng = np.random.default_rng(4)
    x, y = _clusters(rng, n_per=60, n_classes=3, spread=1.5)
    a = _space(x, "a")
    b = _space((x @ _orthonormal(rng, 16, 16)) * 2 + 0.05 * rng.normal(size=x.shape).astype(np.float32), "b")
    anchors = select_anchors(a, 30, "random")
    result = stitch(a, b, y, anchors, task="class")
    assert result.n_train + result.n_test == a.n - 30 and set(result.classes) == {"class0", "class1", "class2"}
    native = result.accuracy("relative", "B", "B")
    assert native > 0.9 and result.accuracy("relative", "A", "B") > 0.9 and result.retained > 0.95
    assert result.accuracy("absolute", "A", "A") > 0.9
    assert result.accuracy("absolute", "A", "B") < 0.75  # the rotation breaks an absolute-space head
    narrow = _space(x[:, :10], "narrow")
    rows = stitch(a, narrow, y, anchors).rows
    blocked = [r for r in rows if r["representation"] == "absolute" and r["trained_on"] != r["evaluated_on"]]
    assert all(r["accuracy"] is None and "widths differ (16 vs 10)" in r["note"] or "widths differ (10 vs 16)" in r["note"] for r in blocked)


def test_stitching_is_cached_by_content(tmp_path):
    rng = np.random.default_rng(6)
    x, y = _clusters(rng, n_per=20, n_classes=2)
    a, b = _space(x, "a"), _space(x @ _orthonormal(rng, 16, 16), "b")
    anchors = select_anchors(a, 8)
    first = stitch(a, b, y, anchors, task="class", cache_dir=tmp_path)
    (entry,) = tmp_path.glob("*.json")
    assert stitch(a, b, y, anchors, task="class", cache_dir=tmp_path) == first
    data = json.loads(entry.read_text())
    data["rows"][0]["accuracy"] = 0.123  # a planted value proves the second call reads the file, not the heads
    entry.write_text(json.dumps(data))
    assert stitch(a, b, y, anchors, task="class", cache_dir=tmp_path).rows[0]["accuracy"] == 0.123
    assert stitch(a, b, y, anchors[:7], task="class", cache_dir=tmp_path) != first  # other anchors: another entry
    assert len(list(tmp_path.glob("*.json"))) == 2
    entry.write_text("{not json")  # damaged: recomputed and rewritten
    assert stitch(a, b, y, anchors, task="class", cache_dir=tmp_path) == first


def test_bad_inputs_give_clear_errors():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(20, 4)).astype(np.float32)
    a = _space(x, "a")
    with pytest.raises(DataError, match="fewer than the 30 anchors"):
        select_anchors(a, 30)
    with pytest.raises(ConfigError, match="Unknown anchor method"):
        select_anchors(a, 3, "best")
    other = _space(x, "b", tuple(f"other{i}" for i in range(20)))
    with pytest.raises(DataError, match="different inputs: 20 only in the first"):
        compare_spaces(a, other)
    with pytest.raises(DataError, match="different order") as err:
        compare_spaces(a, _space(x[::-1], "rev", tuple(reversed(a.keys))))
    assert "aligned_to" in str(err.value)
    assert compare_spaces(a, _space(x[::-1], "rev", tuple(reversed(a.keys))).aligned_to(a.keys)).jaccard == pytest.approx(1.0)
    with pytest.raises(DataError, match="no input with key 'nope'"):
        relative_space(a, ["k0", "nope"])
    with pytest.raises(DataError, match="more than once"):
        Space("dup", x[:2], ("k", "k"))
    with pytest.raises(DataError, match="2 vectors but 3 keys"):
        Space("bad", x[:2], ("a", "b", "c"))
    with pytest.raises(ConfigError, match="1 <= k < 20"):
        compare_spaces(a, a, k=20)
    with pytest.raises(DataError, match="at least two classes"):
        stitch(a, a, ["same"] * 20, a.keys[:3])
    with pytest.raises(DataError, match=r"Class 'rare' has only 2 input\(s\)"):  # the label as written, no numpy repr
        stitch(a, a, ["rare"] * 2 + ["common"] * 18, a.keys[:3])


def test_projection_is_cached_by_content_and_parameters(tmp_path):
    rng = np.random.default_rng(6)
    x, _ = _clusters(rng, n_per=25)
    cache = ProjectionCache(tmp_path / "proj")
    first = project(x, "pca", cache=cache)
    assert first.coords.shape == (len(x), 2) and not first.from_cache
    again = project(x.copy(), "pca", cache=cache)
    assert again.from_cache and np.array_equal(again.coords, first.coords)
    changed = x.copy()
    changed[0, 0] += 1
    assert not project(changed, "pca", cache=cache).from_cache  # one changed number is a new key
    u = project(x, "umap", cache=cache, n_neighbors=10)
    assert u.coords.shape == (len(x), 2) and u.params["n_neighbors"] == 10 and not u.from_cache
    assert project(x, "umap", cache=cache, n_neighbors=10).from_cache
    assert not project(x, "umap", cache=cache, n_neighbors=12).from_cache
    (tmp_path / "proj" / f"{first.key}.npy").write_bytes(b"garbage")  # a damaged entry is recomputed
    repaired = project(x, "pca", cache=cache)
    assert not repaired.from_cache and np.allclose(repaired.coords, first.coords, atol=1e-5)
    small = project(x[:6], "umap")
    assert small.params["n_neighbors"] == 5
    with pytest.raises(DataError, match="Cannot project 3 inputs"):
        project(x[:3], "pca")
    with pytest.raises(ConfigError, match="Unknown projection method"):
        project(x, "tsne")
    with pytest.raises(ConfigError, match="does not take perplexity"):
        project(x, "umap", perplexity=30)
