"""UV atlas: texel <-> uv convention, coverage, islands, mirror and front maps, caching,
and texture lookups."""
import numpy as np
import pytest
import torch

from champ3d.errors import Champ3dInputError
from texture.atlas import UVAtlas, texel_centre_uv, uv_to_texel
from texture.geometry import vertex_normals
from texture.sampling import sample_bilinear, sample_texture

SIZE = 256


@pytest.fixture(scope="module")
def atlas(body, tmp_path_factory):
    return UVAtlas.from_body(body, SIZE, cache_dir=tmp_path_factory.getbasetemp() / "texture_atlas_cache")


@pytest.fixture(scope="module")
def layout(body):
    return body.uv_coords.numpy().astype(np.float64), body.face_uv_indices.numpy()


@pytest.fixture(scope="module")
def rest_vertices(body):
    with torch.no_grad():
        return body(body.zero_params(1)).vertices[0].numpy()


@pytest.mark.parametrize("size", [1000, 0, 8, 3.0, True, "512"])
def test_bad_atlas_size_names_atlas_size(body, size):
    with pytest.raises(Champ3dInputError) as error:
        UVAtlas.from_body(body, size, cache=False)
    assert error.value.where == "atlas_size"


def test_texel_centre_convention_round_trips():
    rows, cols = np.array([0, 0, 255, 17]), np.array([0, 255, 0, 200])
    uv = texel_centre_uv(rows, cols, 256)
    np.testing.assert_allclose(uv[0], [0.5 / 256, 1 - 0.5 / 256])  # row 0 is the top: v near 1
    np.testing.assert_allclose(uv[2], [0.5 / 256, 0.5 / 256])
    back_rows, back_cols = uv_to_texel(uv, 256)
    np.testing.assert_allclose(back_rows, rows, atol=1e-4)
    np.testing.assert_allclose(back_cols, cols, atol=1e-4)


def test_texel_barycentrics_reproduce_the_texel_centre_uv(atlas, layout):
    uv_coords, face_uv = layout
    rows, cols = np.divmod(atlas.texels, SIZE)
    centre = texel_centre_uv(rows, cols, SIZE)
    corners = uv_coords[face_uv[atlas.faces]]
    # within 1/40 texel (a centre on an edge may be drawn by the neighbouring triangle)
    np.testing.assert_allclose(np.einsum("nk,nkj->nj", atlas.bary, corners), centre, atol=0.025 / SIZE)
    assert atlas.bary.min() >= 0 and np.allclose(atlas.bary.sum(axis=1), 1, atol=1e-5)


def test_island_area_matches_the_uv_area(atlas, layout):
    uv_coords, face_uv = layout
    a, b, c = (uv_coords[face_uv[:, k]] for k in range(3))
    area = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]).sum()
    assert atlas.num_texels / SIZE**2 == pytest.approx(area, rel=0.02)
    assert atlas.island_mask.sum() == atlas.num_texels


def test_islands_are_connected_pieces(atlas):
    islands = atlas.island_map
    assert atlas.num_islands >= 2
    assert np.bincount(atlas.islands).argmax() == 0
    for a, b in ((islands[1:], islands[:-1]), (islands[:, 1:], islands[:, :-1])):
        both = (a >= 0) & (b >= 0)
        assert np.mean(a[both] != b[both]) < 1e-3  # neighbouring texels share their island


def test_surface_points_of_the_rest_pose(atlas, rest_vertices):
    np.testing.assert_allclose(atlas.interpolate(rest_vertices), atlas.rest_points, atol=1e-5)


def test_mirror_map_reflects_through_the_sagittal_plane(atlas):
    points, mirrored = atlas.rest_points, atlas.rest_points[atlas.mirror]
    expected = points * np.array([-1.0, 1.0, 1.0])
    error = np.linalg.norm(mirrored - expected, axis=1)
    texel_spacing = np.sqrt(2.0 / atlas.num_texels)  # about 2 m^2 of skin over the texels
    assert np.percentile(error, 99) < 2 * texel_spacing
    assert np.mean(atlas.mirror[atlas.mirror] == np.arange(atlas.num_texels)) > 0.9  # an involution
    # one-sided islands (a hand, a foot) map onto their other-side twin
    side = np.array([np.mean(points[atlas.islands == i, 0]) for i in range(atlas.num_islands)])
    for island in np.flatnonzero(np.abs(side) > 0.05):
        targets = atlas.islands[atlas.mirror[atlas.islands == island]]
        twin = np.bincount(targets).argmax()
        assert twin != island and np.mean(targets == twin) > 0.95 and side[twin] * side[island] < 0


def test_front_map_pairs_the_back_with_the_surface_in_front(atlas, rest_vertices):
    normals = atlas.interpolate(vertex_normals(rest_vertices, atlas.mesh_faces))
    has = atlas.front >= 0
    assert has.mean() > 0.15
    assert np.all(normals[has, 2] > 0)  # only back-facing texels (the body faces -z)
    behind, front = atlas.rest_points[has], atlas.rest_points[atlas.front[has]]
    assert np.all(front[:, 2] < behind[:, 2])
    assert np.percentile(np.linalg.norm(front[:, :2] - behind[:, :2], axis=1), 95) < 0.01
    assert np.median(normals[atlas.front[has], 2]) < -0.5  # partners face the camera


def test_exposed_texels_are_the_outer_surface(atlas):
    assert 0.9 < atlas.exposed.mean() < 1.0
    exposed_per_island = np.array([atlas.exposed[atlas.islands == i].mean() for i in range(atlas.num_islands)])
    assert exposed_per_island[0] > 0.99  # the body
    assert exposed_per_island.min() < 0.1  # the inside of the mouth


def test_cache_round_trip(body, tmp_path):
    first = UVAtlas.from_body(body, 64, cache_dir=tmp_path)
    files = list(tmp_path.iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    second = UVAtlas.from_body(body, 64, cache_dir=tmp_path)
    assert second.size == 64
    for name in ("texels", "faces", "bary", "islands", "mirror", "front", "exposed", "rest_points"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    files[0].write_bytes(b"not an atlas")  # a damaged cache file is rebuilt
    with pytest.raises(Champ3dInputError, match="not a readable texture atlas"):
        UVAtlas.load(files[0])
    np.testing.assert_array_equal(UVAtlas.from_body(body, 64, cache_dir=tmp_path).texels, first.texels)
    UVAtlas.load(files[0])


def test_sample_texture_hits_texel_centres_and_interpolates_between():
    size = 16
    rows, cols = np.mgrid[0:size, 0:size]
    texture = np.stack([rows, cols, np.zeros_like(rows)], -1).astype(np.float32)
    r, c = np.array([0, 3, 15]), np.array([5, 9, 0])
    np.testing.assert_allclose(sample_texture(texture, texel_centre_uv(r, c, size)), texture[r, c], atol=1e-4)
    between = sample_texture(texture, texel_centre_uv(np.array([2.25]), np.array([7.5]), size))
    np.testing.assert_allclose(between[0], [2.25, 7.5, 0], atol=1e-4)
    clamped = sample_texture(texture, np.array([[0.0, 1.0], [1.0, 0.0]]))  # corners clamp to the edge texels
    np.testing.assert_allclose(clamped, [[0, 0, 0], [15, 15, 0]], atol=1e-4)


def test_sample_bilinear_reads_uint8_as_unit_range():
    image = np.array([[[0], [255]], [[255], [255]]], np.uint8)
    np.testing.assert_allclose(sample_bilinear(image, np.array([0.5]), np.array([0.5])), [[0.75]])
