"""Non-learned in-filling: mirror, front-to-back, per-island push-pull, gutter."""
import numpy as np
import pytest

from texture.atlas import UVAtlas
from texture.bake import TextureSample
from texture.infill import fill_texture, push_pull

SIZE = 128
GUTTER = 3


@pytest.fixture(scope="module")
def atlas(body):
    return UVAtlas.from_body(body, SIZE, cache=False)


def sample_of(atlas, colour, seen):
    """A TextureSample from per-texel (N, 3) colours and (N,) seen flags."""
    colour = np.where(seen[:, None], colour, 0).astype(np.float32)
    return TextureSample(atlas.scatter(colour), atlas.scatter(seen.astype(np.float32)))


def island_palette(atlas):
    rng = np.random.default_rng(0)
    return (rng.integers(40, 216, (atlas.num_islands, 3)) / 255).astype(np.float32)


def test_push_pull_keeps_known_texels_and_stays_within_their_range():
    rng = np.random.default_rng(0)
    image = rng.random((37, 50, 3)).astype(np.float32)
    weight = (rng.random((37, 50)) < 0.1).astype(np.float32)
    filled = push_pull(image, weight)
    known = weight > 0
    np.testing.assert_allclose(filled[known], image[known], atol=1e-6)
    assert filled.min() >= image[known].min() - 1e-5 and filled.max() <= image[known].max() + 1e-5


def test_fill_sets_every_island_texel_and_no_colour_crosses_islands(atlas):
    palette = island_palette(atlas)
    rng = np.random.default_rng(1)
    seen = rng.random(atlas.num_texels) < 0.2
    seen[np.unique(atlas.islands, return_index=True)[1]] = True  # every island has a seen texel
    texture = fill_texture(sample_of(atlas, palette[atlas.islands], seen), atlas,
                           mirror=False, front_to_back=False, gutter=GUTTER)
    expected = (palette[atlas.islands] * 255 + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(atlas.gather(texture), expected)  # holes take their own island's colour

    from scipy.ndimage import distance_transform_edt
    distance = distance_transform_edt(~atlas.island_mask)
    gutter = ~atlas.island_mask & (distance <= GUTTER)
    colours = {tuple(c) for c in expected}
    assert all(tuple(c) in colours for c in texture[gutter])  # the gutter copies island texels
    assert not texture[distance > GUTTER].any()  # beyond it the texture stays empty


def test_fully_unseen_island_is_filled_from_its_surface_neighbours(atlas):
    hand = int(np.argmax([atlas.rest_points[atlas.islands == i, 0].mean() for i in range(atlas.num_islands)]))
    seen = atlas.islands != hand
    colour = np.full((atlas.num_texels, 3), 0.5, np.float32)
    texture = fill_texture(sample_of(atlas, colour, seen), atlas, mirror=False, front_to_back=False)
    assert np.all(atlas.gather(texture)[atlas.islands == hand] == 128)


def test_mirror_fill_restores_a_symmetric_texture(atlas):
    points = atlas.rest_points
    colour = (0.5 + 0.4 * np.sin(np.stack([5 * np.abs(points[:, 0]), 4 * points[:, 1], 6 * points[:, 2]], 1)))
    seen = points[:, 0] > 0.01
    texture = fill_texture(sample_of(atlas, colour, seen), atlas, front_to_back=False)
    right = points[:, 0] < -0.01
    error = np.abs(atlas.gather(texture)[right] / 255.0 - colour[right]).max(axis=1)
    assert np.percentile(error, 95) < 0.03


def test_front_to_back_copies_the_front_onto_the_back(atlas):
    points = atlas.rest_points
    colour = 0.5 + 0.4 * np.sin(np.stack([7 * points[:, 0], 5 * points[:, 1], 3 * points[:, 0] + points[:, 1]], 1))
    front = np.zeros(atlas.num_texels, bool)
    front[atlas.front[atlas.front >= 0]] = True
    texture = fill_texture(sample_of(atlas, colour, front), atlas, mirror=False)
    back = atlas.front >= 0
    error = np.abs(atlas.gather(texture)[back] / 255.0 - colour[back]).max(axis=1)
    assert np.percentile(error, 95) < 0.05  # the colour depends on x and y only, as seen from the front


def test_fill_completes_a_single_view_texture(atlas):
    seen = atlas.rest_points[:, 2] < np.median(atlas.rest_points[:, 2])  # roughly the front half
    colour = np.full((atlas.num_texels, 3), 0.6, np.float32)
    texture = fill_texture(sample_of(atlas, colour, seen), atlas)
    assert np.all(atlas.gather(texture) == 153)


def test_nothing_seen_is_an_error(atlas):
    with pytest.raises(ValueError, match="no seen texel"):
        fill_texture(TextureSample(np.zeros((SIZE, SIZE, 3), np.float32), np.zeros((SIZE, SIZE), np.float32)), atlas)
