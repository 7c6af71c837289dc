"""Champ's map encodings: exact values on known geometry, palette, mask, batching."""
import cv2
import numpy as np
import pytest
import trimesh

from render.cameras import PerspectiveCameras
from render.palette import NUM_PARTS, PART_NAMES, SEMANTIC_PALETTE
from render.rasterizer import MeshRasterizer
from render.renderer import ChampMapRenderer
from render.shaders import ChampMaps, encode_depth

H, W = 48, 64
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def camera(size=(H, W), **kwargs):
    return PerspectiveCameras(np.eye(3), np.zeros(3), 60.0, size, **kwargs)


def quad(x0, x1, y0, y1, z=2.0, slope=0.0):
    xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    return np.concatenate([xy, z + slope * xy[:, :1]], axis=1).astype(np.float32)


def sphere(radius=0.5, centre=(0.0, 0.0, 3.0), subdivisions=4):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return (mesh.vertices + centre).astype(np.float32), mesh.faces.astype(np.int32)


def encode_normal_reference(n):
    """0.5 + 0.5 * (n_x, -n_y, -n_z), round half up, in float64."""
    return np.floor(255 * (0.5 + 0.5 * n * [1, -1, -1]) + 0.5).astype(np.uint8)


def test_palette_is_champs_viridis_table():
    assert len(PART_NAMES) == NUM_PARTS == 24 and PART_NAMES[0] == "pelvis" and PART_NAMES[15] == "head"
    assert SEMANTIC_PALETTE.shape == (24, 3) and SEMANTIC_PALETTE.dtype == np.uint8
    assert tuple(SEMANTIC_PALETTE[0]) == (68, 1, 84)
    assert tuple(SEMANTIC_PALETTE[15]) == (33, 165, 133)
    assert tuple(SEMANTIC_PALETTE[23]) == (189, 223, 38)
    assert len({tuple(c) for c in SEMANTIC_PALETTE}) == 24 and SEMANTIC_PALETTE.sum(1).min() > 0


def test_flat_quads_have_champs_exact_normal_colours():
    # camera-facing plane with its winding normal away from the camera: flipped toward it
    facing = ChampMapRenderer(QUAD_FACES, [0, 0], (H, W))(quad(-0.5, 0.5, -0.4, 0.4)[None], camera())
    m = facing.mask[0] > 0
    assert m.sum() > 500
    assert np.all(facing.normal[0][m] == [128, 128, 255])
    # the same plane wound the other way (normal toward the camera) looks the same
    toward = ChampMapRenderer(QUAD_FACES[:, ::-1], [0, 0], (H, W))(quad(-0.5, 0.5, -0.4, 0.4)[None], camera())
    np.testing.assert_array_equal(toward.normal, facing.normal)
    # the plane measured in Champ's Blender scene: OpenCV normal along (0.5, 0, -1)
    tilted = ChampMapRenderer(QUAD_FACES, [0, 0], (H, W))(quad(-0.5, 0.5, -0.4, 0.4, slope=0.5)[None], camera())
    assert np.all(tilted.normal[0][tilted.mask[0] > 0] == [185, 128, 242])
    assert np.all(tilted.normal[0][tilted.mask[0] == 0] == 0)


def test_depth_encoding_on_a_tilted_plane_is_exact():
    cams = camera()
    verts = quad(-0.6, 0.6, -0.4, 0.4, z=2.0, slope=0.5)
    maps = ChampMapRenderer(QUAD_FACES, [0, 0], (H, W))(verts[None], cams)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    z = 2.0 / (1.0 - 0.5 * (u - 31.5) / 60.0)  # analytic planar depth at each pixel centre
    m = maps.mask[0] > 0
    z_min, z_max = z[m].min(), z[m].max()
    exact = 255 * (z_max - z) / (z_max - z_min)
    got = maps.depth[0].astype(int)
    assert got[m].max() == 255 and got[m].min() == 0 and np.all(got[~m] == 0)
    clear = np.abs(exact - np.floor(exact) - 0.5) > 0.01  # away from rounding ties
    np.testing.assert_array_equal(got[m & clear], np.rint(exact[m & clear]))
    assert np.abs(got[m] - exact[m]).max() <= 0.51
    # depth only varies along x: every column of the plane has one value
    assert all(len(np.unique(got[m[:, c], c])) == 1 for c in range(W) if m[:, c].any())


def test_maps_agree_with_fragments():
    verts, faces = sphere()
    labels = (np.arange(len(faces)) * 7 // len(faces) + 3) % NUM_PARTS
    cams = camera()
    frags = MeshRasterizer(faces, (H, W))(verts[None], cams)
    maps = ChampMapRenderer(faces, labels, (H, W))(verts[None], cams)
    m = frags.mask[0]
    np.testing.assert_array_equal(maps.mask[0], np.where(m, 255, 0))
    # semantic: the exact palette colour of the covering face's label
    np.testing.assert_array_equal(maps.semantic[0][m], SEMANTIC_PALETTE[labels[frags.pix_to_face[0][m]]])
    assert np.all(maps.semantic[0][~m] == 0)
    # normal: every pixel within one level of the float64 encoding of the fragment normal
    reference = encode_normal_reference(frags.normals[0][m].astype(np.float64))
    assert np.abs(maps.normal[0][m].astype(int) - reference).max() <= 1
    assert np.mean(maps.normal[0][m] == reference) > 0.99
    # depth from the fragments' planar depth
    z = frags.zbuf[0].astype(np.float64)
    exact = 255 * (z[m].max() - z) / (z[m].max() - z[m].min())
    assert np.abs(maps.depth[0][m] - exact[m]).max() <= 0.51
    # a sphere's normal map: the analytic sphere normal near the centre, right edge red, top edge green
    d = np.array([(32 - 31.5) / 60, (24 - 23.5) / 60, 1.0])
    t = (d @ [0, 0, 3.0] - np.sqrt((d @ [0, 0, 3.0]) ** 2 - d @ d * (9 - 0.25))) / (d @ d)
    expected = encode_normal_reference((t * d - [0, 0, 3.0]) / 0.5)
    assert np.abs(maps.normal[0][24, 32].astype(int) - expected).max() <= 2
    row = np.nonzero(m[24])[0]
    assert maps.normal[0][24, row.max(), 0] > 220 and maps.normal[0][24, row.min(), 0] < 35
    column = np.nonzero(m[:, 32])[0]
    assert maps.normal[0][column.min(), 32, 1] > 220


def test_every_semantic_pixel_is_a_palette_colour():
    verts, faces = sphere(subdivisions=5)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_PARTS, len(faces))
    maps = ChampMapRenderer(faces, labels, (96, 128))(verts[None], camera(size=(96, 128)))
    fg = maps.semantic[0][maps.mask[0] > 0]
    colours = {tuple(c) for c in np.unique(fg, axis=0)}
    assert colours <= {tuple(c) for c in SEMANTIC_PALETTE} and len(colours) == NUM_PARTS


def test_batches_match_single_frames_and_each_frame_is_normalised_alone():
    verts, faces = sphere(subdivisions=3)
    labels = np.arange(len(faces)) % NUM_PARTS
    T = np.array([[0, 0, 0], [0.2, 0, 1.0], [-0.3, 0.1, 2.0]], np.float32)
    cams = PerspectiveCameras(np.eye(3), T, 60.0, (H, W))
    renderer = ChampMapRenderer(faces, labels, (H, W), frames_per_pass=2)
    together = renderer(np.repeat(verts[None], 3, 0), cams)
    for b in range(3):
        alone = ChampMapRenderer(faces, labels, (H, W), frames_per_pass=1)(verts[None], cams[b])
        np.testing.assert_array_equal(together.mask[b], alone.mask[0])
        np.testing.assert_array_equal(together.semantic[b], alone.semantic[0])
        assert np.abs(together.normal[b].astype(int) - alone.normal[0]).max() <= 1
        assert np.abs(together.depth[b].astype(int) - alone.depth[0]).max() <= 1
        fg = together.depth[b][together.mask[b] > 0]
        assert fg.max() == 255 and fg.min() <= 1  # per-frame min-max, whatever the distance
    assert together.mask[0].sum() > together.mask[2].sum()


def test_encode_depth_edge_cases():
    depth, mask = np.empty((2, 3), np.uint8), np.empty((2, 3), np.uint8)
    encode_depth(np.zeros((2, 3), np.float32), depth, mask)
    assert not depth.any() and not mask.any()
    encode_depth(np.array([[0, 2, 2], [2, 0, 0]], np.float32), depth, mask)  # one depth: all nearest
    np.testing.assert_array_equal(depth, [[0, 255, 255], [255, 0, 0]])
    np.testing.assert_array_equal(mask, [[0, 255, 255], [255, 0, 0]])
    encode_depth(np.array([[1.0, 1.5, 2.0], [0, 1.25, 1.75]], np.float32), depth, mask)
    np.testing.assert_array_equal(depth, [[255, 128, 0], [0, 191, 64]])  # 127.5 -> 128, 191.25, 63.75


def test_maps_write_and_read_back_losslessly(tmp_path):
    verts, faces = sphere(subdivisions=3)
    maps = ChampMapRenderer(faces, np.arange(len(faces)) % NUM_PARTS, (H, W))(verts[None], camera())
    for name in ("depth", "mask"):
        assert cv2.imwrite(str(tmp_path / f"{name}.png"), getattr(maps, name)[0])
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / f"{name}.png"), cv2.IMREAD_UNCHANGED),
                                      getattr(maps, name)[0])
    assert cv2.imwrite(str(tmp_path / "semantic.png"), cv2.cvtColor(maps.semantic[0], cv2.COLOR_RGB2BGR))
    back = cv2.cvtColor(cv2.imread(str(tmp_path / "semantic.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, maps.semantic[0])


@pytest.mark.parametrize("labels, message", [([0], "face_labels has"), ([0, 24], "0..23"), ([0.5, 1.0], "integer")])
def test_bad_labels_are_rejected(labels, message):
    with pytest.raises(ValueError, match=message):
        ChampMapRenderer(QUAD_FACES, np.asarray(labels), (H, W))


def test_rendering_into_given_maps():
    verts, faces = sphere(subdivisions=3)
    renderer = ChampMapRenderer(faces, np.arange(len(faces)) % NUM_PARTS, (H, W))
    fresh = renderer(np.repeat(verts[None], 2, 0), camera())
    out = ChampMaps.empty(3, (H, W))
    maps = renderer(np.repeat(verts[None], 2, 0), camera(), out=out)
    assert np.shares_memory(maps.normal, out.normal) and len(maps.depth) == 2
    for name in ("depth", "normal", "semantic", "mask"):
        np.testing.assert_array_equal(getattr(maps, name), getattr(fresh, name))
        assert getattr(fresh, name).flags.c_contiguous
    with pytest.raises(ValueError, match="out holds"):
        renderer(np.repeat(verts[None], 4, 0), camera(), out=out)
