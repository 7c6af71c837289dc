"""Confidence-weighted robust fusion of partial textures."""
import numpy as np
import pytest

from texture.bake import TextureSample
from texture.fusion import fuse_textures

RED = (0.8, 0.2, 0.2)
RED2 = (0.84, 0.22, 0.2)
BLUE = (0.1, 0.1, 0.9)


def constant(colour, confidence, size=4):
    return TextureSample(np.full((size, size, 3), colour, np.float32), np.full((size, size), confidence, np.float32))


def test_fusing_copies_of_one_sample_returns_it():
    rng = np.random.default_rng(1)
    colour = rng.random((32, 32, 3)).astype(np.float32)
    confidence = np.where(rng.random((32, 32)) < 0.6, rng.random((32, 32)), 0).astype(np.float32)
    colour[confidence == 0] = 0
    sample = TextureSample(colour, confidence)
    for views in (1, 3):
        fused = fuse_textures([sample] * views)
        np.testing.assert_allclose(fused.colour, colour, atol=1e-6)
        np.testing.assert_array_equal(fused.confidence, confidence)


def test_an_outlying_view_is_rejected_even_with_the_highest_confidence():
    fused = fuse_textures([constant(RED, 0.5), constant(BLUE, 0.9), constant(RED2, 0.5)])
    np.testing.assert_allclose(fused.colour[0, 0], np.mean([RED, RED2], axis=0), atol=1e-6)
    assert fused.confidence[0, 0] == pytest.approx(0.9)


def test_agreeing_views_are_averaged_by_confidence():
    fused = fuse_textures([constant(RED, 0.75), constant(RED2, 0.25)])
    np.testing.assert_allclose(fused.colour[0, 0], 0.75 * np.array(RED) + 0.25 * np.array(RED2), atol=1e-6)


def test_unseen_views_do_not_count_and_coverage_is_the_union():
    left, right = constant(RED, 0.0), constant(BLUE, 0.0)
    left.colour[:, :2], left.confidence[:, :2] = RED, 0.4
    right.colour[:, 2:], right.confidence[:, 2:] = BLUE, 0.7
    right.colour[:, :2] = 1.0  # garbage under zero confidence must be ignored
    fused = fuse_textures([left, right])
    np.testing.assert_allclose(fused.colour[:, :2], np.broadcast_to(RED, (4, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(fused.colour[:, 2:], np.broadcast_to(BLUE, (4, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(fused.confidence, np.where(np.arange(4) < 2, 0.4, 0.7)[None].repeat(4, 0))
    nothing = fuse_textures([constant(RED, 0.0), constant(BLUE, 0.0)])
    assert not nothing.colour.any() and not nothing.confidence.any()


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one"):
        fuse_textures([])
    with pytest.raises(ValueError, match="sample 1"):
        fuse_textures([constant(RED, 1.0, 4), constant(RED, 1.0, 8)])
