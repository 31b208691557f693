"""Simulated user hints: drawing, rendering, sampling, fixed evaluation sets and their files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adacolor.hints import (EVAL_COUNTS, HintConfig, draw_points, load_hint_sets, make_eval_hint_sets,
                                      model_input, render_hints, sample_hints, save_hint_sets)

SETTINGS = settings(max_examples=25, deadline=None)


def _overlaps(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    (ya, xa, sa), (yb, xb, sb) = a, b
    return ya < yb + sb and yb < ya + sa and xa < xb + sb and xb < xa + sa


@SETTINGS
@given(count=st.integers(0, 60), height=st.integers(1, 40), width=st.integers(1, 40),
       sizes=st.tuples(st.integers(1, 7), st.integers(0, 3)), seed=st.integers(0, 2 ** 31))
def test_draw_points_are_inside_the_image(count: int, height: int, width: int, sizes: tuple[int, int],
                                          seed: int) -> None:
    min_size, max_size = sizes[0], sizes[0] + sizes[1]
    generator = torch.Generator().manual_seed(seed)
    if max_size > min(height, width):
        with pytest.raises(ValueError, match="does not fit"):
            draw_points(count, height, width, min_size, max_size, generator)
        return
    points = draw_points(count, height, width, min_size, max_size, generator)
    assert len(points) == count
    for y, x, s in points:
        assert all(type(v) is int for v in (y, x, s))
        assert min_size <= s <= max_size and 0 <= y <= height - s and 0 <= x <= width - s


def test_draw_points_covers_every_position_and_size() -> None:
    points = draw_points(4000, 5, 6, 1, 3, torch.Generator().manual_seed(0))
    assert {s for _, _, s in points} == {1, 2, 3}
    assert {(y, x) for y, x, s in points if s == 3} == {(y, x) for y in range(3) for x in range(4)}
    assert {(y, x) for y, x, s in points if s == 1} == {(y, x) for y in range(5) for x in range(6)}


def test_draw_points_prefix_does_not_depend_on_count() -> None:
    few = draw_points(7, 50, 60, 2, 5, torch.Generator().manual_seed(3))
    many = draw_points(300, 50, 60, 2, 5, torch.Generator().manual_seed(3))
    assert many[:7] == few


def test_draw_points_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="count"):
        draw_points(-1, 8, 8)
    with pytest.raises(ValueError, match="min_size"):
        draw_points(1, 8, 8, 3, 2)
    with pytest.raises(ValueError, match="min_size"):
        draw_points(1, 8, 8, 0, 2)
    with pytest.raises(ValueError, match="does not fit"):
        draw_points(1, 8, 4, 5, 5)


@SETTINGS
@given(batch=st.integers(1, 3), height=st.integers(4, 24), width=st.integers(4, 24), seed=st.integers(0, 2 ** 31),
       max_count=st.integers(0, 12), max_size=st.integers(1, 4))
def test_render_hints_colours_each_square_with_its_mean(batch: int, height: int, width: int, seed: int,
                                                        max_count: int, max_size: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    ab = torch.rand(batch, 2, height, width, generator=generator, dtype=torch.float64) * 2 - 1
    points = []
    for _ in range(batch):
        count = int(torch.randint(0, max_count + 1, (), generator=generator))
        points.append(draw_points(count, height, width, 1, max_size, generator))
    hint_ab, hint_mask = render_hints(ab, points)
    assert hint_ab.shape == ab.shape and hint_mask.shape == (batch, 1, height, width)
    assert hint_ab.dtype == hint_mask.dtype == torch.float64
    assert set(hint_mask.unique().tolist()) <= {0.0, 1.0}
    assert (hint_ab * (1 - hint_mask) == 0).all()  # colour only under the mask
    for i, image_points in enumerate(points):
        expected_mask = torch.zeros(height, width, dtype=torch.float64)
        for j, (y, x, s) in enumerate(image_points):
            expected_mask[y:y + s, x:x + s] = 1
            if any(_overlaps((y, x, s), other) for other in image_points[j + 1:]):
                continue  # a later square paints over part of it
            mean = ab[i, :, y:y + s, x:x + s].mean(dim=(1, 2))
            square = hint_ab[i, :, y:y + s, x:x + s]
            assert torch.allclose(square, mean[:, None, None].expand_as(square), atol=1e-12)
        assert torch.equal(hint_mask[i, 0], expected_mask)
        if not any(_overlaps(a, b) for j, a in enumerate(image_points) for b in image_points[j + 1:]):
            assert int(hint_mask[i].sum()) == sum(s * s for _, _, s in image_points)


def test_render_hints_later_square_wins_the_overlap() -> None:
    ab = torch.arange(2 * 6 * 6, dtype=torch.float32).view(1, 2, 6, 6)
    hint_ab, hint_mask = render_hints(ab, [[(0, 0, 3), (1, 1, 2)]])
    first, second = ab[0, :, 0:3, 0:3].mean(dim=(1, 2)), ab[0, :, 1:3, 1:3].mean(dim=(1, 2))
    assert torch.allclose(hint_ab[0, :, 1, 1], second) and torch.allclose(hint_ab[0, :, 2, 2], second)
    assert torch.allclose(hint_ab[0, :, 0, 0], first) and torch.allclose(hint_ab[0, :, 2, 0], first)
    assert int(hint_mask.sum()) == 9
    swapped_ab, _ = render_hints(ab, [[(1, 1, 2), (0, 0, 3)]])
    assert torch.allclose(swapped_ab[0, :, 1:3, 1:3], first[:, None, None].expand(2, 2, 2))


def test_render_hints_with_no_points_is_all_zero() -> None:
    ab = torch.rand(2, 2, 8, 8)
    hint_ab, hint_mask = render_hints(ab, [[], []])
    assert not hint_ab.any() and not hint_mask.any()


def test_render_hints_rejects_bad_points() -> None:
    ab = torch.rand(2, 2, 8, 8)
    with pytest.raises(ValueError, match="one list of hint points per image"):
        render_hints(ab, [[(0, 0, 2)]])
    for bad in [(7, 0, 2), (0, 7, 2), (-1, 0, 2), (0, 0, 0), (0, 0, 9)]:
        with pytest.raises(ValueError, match="out of bounds"):
            render_hints(ab, [[(0, 0, 2)], [bad]])
    with pytest.raises(ValueError, match=r"\(y, x, size\)"):
        render_hints(ab, [[(0, 0)], []])
    with pytest.raises(ValueError, match="integers"):
        render_hints(ab, [[(0.5, 0, 2)], []])
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        render_hints(torch.rand(2, 3, 8, 8), [[], []])


def test_render_hints_of_a_training_batch_cover_exactly_the_drawn_squares() -> None:
    """A full training batch (32 images, up to 128 squares of 2-7 px each) against a plain loop;
    speed is for benchmarks, not tests."""
    ab = torch.rand(32, 2, 112, 112)
    generator = torch.Generator().manual_seed(0)
    points = [draw_points(128, 112, 112, 2, 7, generator) for _ in range(32)]
    _, hint_mask = render_hints(ab, points)
    expected = torch.zeros(32, 1, 112, 112)
    for b, squares in enumerate(points):
        for y, x, size in squares:
            expected[b, 0, y:y + size, x:x + size] = 1
    assert torch.equal(hint_mask, expected)


@SETTINGS
@given(config=st.tuples(st.integers(0, 20), st.integers(0, 20), st.integers(1, 3), st.integers(0, 2)),
       seed=st.integers(0, 2 ** 31))
def test_sample_hints_follows_the_config(config: tuple[int, int, int, int], seed: int) -> None:
    low, extra, min_size, extra_size = config
    hint_config = HintConfig(min_hints=low, max_hints=low + extra, min_size=min_size,
                             max_size=min_size + extra_size)
    ab = torch.rand(3, 2, 16, 16)
    hint_ab, hint_mask = sample_hints(ab, hint_config, torch.Generator().manual_seed(seed))
    assert hint_ab.shape == ab.shape and hint_mask.shape == (3, 1, 16, 16)
    assert (hint_ab * (1 - hint_mask) == 0).all()
    for i in range(3):
        masked = int(hint_mask[i].sum())
        if hint_config.max_hints == 0:
            assert masked == 0
        else:
            assert masked <= hint_config.max_hints * hint_config.max_size ** 2
        if hint_config.min_hints > 0:
            assert masked >= hint_config.min_size ** 2
    again = sample_hints(ab, hint_config, torch.Generator().manual_seed(seed))
    assert torch.equal(again[0], hint_ab) and torch.equal(again[1], hint_mask)


def test_sample_hints_draws_counts_over_the_whole_range() -> None:
    generator = torch.Generator().manual_seed(0)
    config = HintConfig(min_hints=2, max_hints=4, min_size=1, max_size=1)
    ab = torch.rand(200, 2, 64, 64)
    _, hint_mask = sample_hints(ab, config, generator)
    # 1x1 squares on 4096 pixels rarely coincide: the masked count is the hint count
    counts = set(hint_mask.sum(dim=(1, 2, 3)).long().tolist())
    assert {2, 3, 4} <= counts and min(counts) >= 1 and max(counts) <= 4
    first = sample_hints(ab[:4], HintConfig(), torch.Generator().manual_seed(1))[1]
    same_seed = sample_hints(ab[:4], HintConfig(), torch.Generator().manual_seed(1))[1]
    other_seed = sample_hints(ab[:4], HintConfig(), torch.Generator().manual_seed(2))[1]
    assert torch.equal(first, same_seed) and not torch.equal(first, other_seed)


@pytest.mark.parametrize("options, message", [
    (dict(min_hints=-1), "non-negative"),
    (dict(max_hints=-1, min_hints=0), "non-negative"),
    (dict(min_hints=5, max_hints=4), "min_hints"),
    (dict(min_size=0), ">= 1"),
    (dict(min_size=3, max_size=2), "min_size"),
    (dict(max_hints=2.5), "int"),
])
def test_hint_config_rejects_bad_values(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HintConfig(**options)


def test_model_input_concatenates_l_ab_mask() -> None:
    l_norm, hint_ab, hint_mask = torch.rand(2, 1, 8, 8), torch.rand(2, 2, 8, 8), torch.rand(2, 1, 8, 8)
    x = model_input(l_norm, hint_ab, hint_mask)
    assert x.shape == (2, 4, 8, 8)
    assert torch.equal(x[:, :1], l_norm) and torch.equal(x[:, 1:3], hint_ab) and torch.equal(x[:, 3:], hint_mask)
    with pytest.raises(ValueError, match="one B, H, W"):
        model_input(l_norm, hint_ab[:, :, :4], hint_mask)
    with pytest.raises(ValueError, match="one B, H, W"):
        model_input(l_norm, hint_ab, hint_mask.expand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="one B, H, W"):
        model_input(l_norm[:1], hint_ab, hint_mask)


@SETTINGS
@given(num_images=st.integers(0, 6), seed=st.integers(0, 2 ** 31),
       counts=st.lists(st.integers(0, 30), min_size=1, max_size=5))
def test_eval_sets_are_nested_exact_and_independent_of_num_images(num_images: int, seed: int,
                                                                  counts: list[int]) -> None:
    sets = make_eval_hint_sets(num_images, 20, 24, counts, size=3, seed=seed)
    assert sorted(sets) == sorted(set(counts))
    ks = sorted(sets)
    for k in ks:
        assert len(sets[k]) == num_images
        for points in sets[k]:
            assert len(points) == k
            assert all(s == 3 and 0 <= y <= 17 and 0 <= x <= 21 for y, x, s in points)
    for small, large in zip(ks, ks[1:]):
        assert all(big[:small] == little for little, big in zip(sets[small], sets[large]))
    more = make_eval_hint_sets(num_images + 2, 20, 24, counts + [40], size=3, seed=seed)
    for k in ks:
        assert more[k][:num_images] == sets[k]


def test_eval_sets_depend_on_the_seed_and_the_image() -> None:
    sets = make_eval_hint_sets(3, 112, 112, seed=0)
    assert sorted(sets) == sorted(EVAL_COUNTS) and sets[0] == [[], [], []]
    assert sets[100][0] != sets[100][1] != sets[100][2]
    assert make_eval_hint_sets(3, 112, 112, seed=0) == sets
    assert make_eval_hint_sets(3, 112, 112, seed=1)[100] != sets[100]
    with pytest.raises(ValueError, match="counts"):
        make_eval_hint_sets(3, 112, 112, counts=())
    with pytest.raises(ValueError, match="counts"):
        make_eval_hint_sets(3, 112, 112, counts=(1, -2))
    with pytest.raises(ValueError, match="does not fit"):
        make_eval_hint_sets(0, 4, 4, size=5)


def test_eval_sets_render_to_the_promised_hint_count() -> None:
    sets = make_eval_hint_sets(2, 32, 32, counts=(5,), size=2, seed=4)
    _, hint_mask = render_hints(torch.rand(2, 2, 32, 32), sets[5])
    assert (hint_mask.sum(dim=(1, 2, 3)) <= 20).all() and (hint_mask.sum(dim=(1, 2, 3)) >= 4).all()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    sets = make_eval_hint_sets(4, 64, 64, counts=(0, 1, 10), size=2, seed=7)
    path = save_hint_sets(sets, tmp_path / "deeper" / "hints.json")
    assert path == tmp_path / "deeper" / "hints.json"
    assert [p.name for p in path.parent.iterdir()] == ["hints.json"]  # no temporary file left behind
    data = json.loads(path.read_text())
    assert data["format"] == "adaprune-hints/1" and data["counts"] == [0, 1, 10] and data["num_images"] == 4
    loaded = load_hint_sets(path)
    assert loaded == sets
    assert all(type(v) is int for points in loaded[10] for point in points for v in point)
    assert all(isinstance(point, tuple) for point in loaded[10][0])
    save_hint_sets({}, tmp_path / "empty.json")
    assert load_hint_sets(tmp_path / "empty.json") == {}


def test_load_rejects_files_that_are_not_hint_sets(tmp_path: Path) -> None:
    path = tmp_path / "hints.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="not a hint-set file"):
        load_hint_sets(path)
    path.write_text(json.dumps({"hints": [{"x": 1, "y": 2}]}))
    with pytest.raises(ValueError, match="not a hint-set file"):
        load_hint_sets(path)
    path.write_text(json.dumps([1, 2, 3]))
    with pytest.raises(ValueError, match="not a hint-set file"):
        load_hint_sets(path)
    path.write_text(json.dumps({"format": "adaprune-hints/1", "sets": {"2": [[[0, 0, 2]]]}}))
    with pytest.raises(ValueError, match="must have 2 points"):
        load_hint_sets(path)
    path.write_text(json.dumps({"format": "adaprune-hints/1", "sets": {"1": [[[0, 0.5, 2]]]}}))
    with pytest.raises(ValueError, match="ints"):
        load_hint_sets(path)
    with pytest.raises(FileNotFoundError):
        load_hint_sets(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="same number of images"):
        save_hint_sets({1: [[(0, 0, 2)]], 2: [[(0, 0, 2), (1, 1, 2)], [(0, 0, 2), (1, 1, 2)]]}, path)
