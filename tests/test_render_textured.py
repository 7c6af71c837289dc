"""Textured rendering: exact maps beside it, texture lookups at known UVs, analytic
anti-aliasing of the silhouette against supersampled coverage, compositing."""
import cv2
import numpy as np
import pytest
import trimesh

from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer
from render.renderer import ChampMapRenderer
from render.textured import NONE, TexturedMaps, TexturedRenderer, composite, contour_edges, texture_image

H, W = 48, 64
FOCAL = 60.0
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])
#: uv of the quad's corners (top-left, top-right, bottom-right, bottom-left in the image)
QUAD_UVS = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0], [0.0, 0.0]], np.float32)


def camera(size=(H, W)):
    return PerspectiveCameras(np.eye(3), np.zeros(3), FOCAL, size)


def quad_at_pixels(u0, u1, v0, v1, z=2.0, size=(H, W)):
    """A camera-facing quad whose corners project to columns u0, u1 and rows v0, v1."""
    cx, cy = (size[1] - 1) / 2, (size[0] - 1) / 2
    x0, x1 = (u0 - cx) / FOCAL * z, (u1 - cx) / FOCAL * z
    y0, y1 = (v0 - cy) / FOCAL * z, (v1 - cy) / FOCAL * z
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float32)


def sphere(radius=0.5, centre=(0.0, 0.0, 3.0), subdivisions=3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return (mesh.vertices + centre).astype(np.float32), mesh.faces.astype(np.int32)


def spherical_uvs(verts, faces, centre):
    d = verts - np.asarray(centre, np.float32)
    u = 0.5 + np.arctan2(d[:, 0], -d[:, 2]) / (2 * np.pi)
    v = 0.5 - np.arcsin(np.clip(d[:, 1] / np.linalg.norm(d, axis=1), -1, 1)) / np.pi
    return np.stack([u, v], 1)[faces].astype(np.float32)


def supersampled_coverage(verts, faces, factor=8, size=(H, W)):
    """Coverage of each pixel by the mesh: the mask rendered ``factor`` times finer (same
    field of view), box-averaged."""
    fine = (size[0] * factor, size[1] * factor)
    cams = PerspectiveCameras(np.eye(3), np.zeros(3), FOCAL * factor, fine)
    mask = MeshRasterizer(faces, fine, frames_per_pass=1)(verts[None], cams).mask[0].astype(np.float32)
    return cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_AREA)


def bilinear(texture, rows, cols):
    """Reference bilinear lookup at continuous texel coordinates (centres at integers), clamped."""
    A_h, A_w = texture.shape[:2]
    rows, cols = np.clip(rows, 0, A_h - 1), np.clip(cols, 0, A_w - 1)
    r0, c0 = np.minimum(rows.astype(int), A_h - 2), np.minimum(cols.astype(int), A_w - 2)
    fr, fc = (rows - r0)[..., None], (cols - c0)[..., None]
    t = texture.astype(np.float64)
    top = t[r0, c0] * (1 - fc) + t[r0, c0 + 1] * fc
    bottom = t[r0 + 1, c0] * (1 - fc) + t[r0 + 1, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def test_label_maps_are_byte_identical_to_the_map_renderer():
    verts, faces = sphere(subdivisions=4)
    labels = (np.arange(len(faces)) * 11 // len(faces)) % 24
    poses = np.stack([verts, verts * [1.2, 0.9, 1.0] + [0.1, 0.05, 0.3], verts + [-0.3, 0.2, 0.5]]).astype(np.float32)
    cams = PerspectiveCameras(np.eye(3)[None].repeat(3, 0), np.zeros((3, 3)), FOCAL, (H, W))
    texture = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    textured = TexturedRenderer(faces, labels, spherical_uvs(verts, faces, (0, 0, 3)), texture, (H, W),
                                frames_per_pass=2)(poses, cams)
    plain = ChampMapRenderer(faces, labels, (H, W), frames_per_pass=2)(poses, cams)
    for name in ("depth", "normal", "semantic", "mask"):
        np.testing.assert_array_equal(getattr(textured, name), getattr(plain, name), err_msg=name)


def test_constant_texture_fills_the_mask_and_alpha_is_the_mask_away_from_the_contour():
    verts, faces = sphere(radius=0.9)
    colour = (200, 90, 30)
    maps = TexturedRenderer(faces, np.zeros(len(faces), int), spherical_uvs(verts, faces, (0, 0, 3)),
                            np.full((16, 16, 3), colour, np.uint8), (H, W))(verts[None], camera())
    mask = maps.mask[0] > 0
    interior = cv2.erode(maps.mask[0], np.ones((3, 3), np.uint8)) > 0
    outside = cv2.dilate(maps.mask[0], np.ones((3, 3), np.uint8)) == 0
    assert interior.sum() > 300
    assert np.all(maps.colour[0][interior] == colour) and np.all(maps.alpha[0][interior] == 255)
    assert np.all(maps.colour[0][outside] == 0) and np.all(maps.alpha[0][outside] == 0)
    # premultiplied: every pixel is the colour scaled by its coverage
    expected = np.asarray(colour) * maps.alpha[0][..., None] / 255.0
    assert np.abs(maps.colour[0] - expected).max() <= 1.0
    # the contour is anti-aliased: partial coverage on both sides of the mask border
    partial = (maps.alpha[0] > 0) & (maps.alpha[0] < 255)
    assert (partial & mask).sum() > 20 and (partial & ~mask).sum() > 20


def test_checker_texture_maps_upright_onto_a_quad():
    checker = (np.indices((8, 8)).sum(0) % 2 * 255).astype(np.uint8)
    texture = np.stack([checker, checker // 2, 255 - checker], -1)
    texture[0, 0] = (0, 255, 0)  # top-left texel (v = 1 side) marked green
    quad = quad_at_pixels(-0.5, 63.5, -0.5, 47.5)  # covers the whole image exactly
    maps = TexturedRenderer(QUAD_FACES, [0, 0], QUAD_UVS[QUAD_FACES], texture, (H, W))(quad[None], camera())
    # pixel (row, col) centre has uv = ((col + 0.5) / 64, 1 - (row + 0.5) / 48)
    rows, cols = np.mgrid[0:H, 0:W]
    expected = bilinear(texture, (rows + 0.5) / H * 8 - 0.5, (cols + 0.5) / W * 8 - 0.5)
    assert np.all(maps.alpha[0] == 255)
    assert np.abs(maps.colour[0] - expected).max() <= 2.0
    assert tuple(maps.colour[0][1, 1]) == (0, 255, 0)


def test_gradient_texture_is_sampled_bilinearly_at_the_interpolated_uv():
    A = 16
    r, c = np.mgrid[0:A, 0:A]
    texture = np.stack([c * 16, r * 16, np.full_like(r, 77)], -1).astype(np.uint8)
    quad = quad_at_pixels(5.5, 57.5, 3.5, 41.5, z=3.0)
    tilted = quad.copy()
    tilted[[1, 2], 2] += 1.5  # right side farther away: perspective-correct interpolation matters
    maps = TexturedRenderer(QUAD_FACES, [0, 0], QUAD_UVS[QUAD_FACES], texture, (H, W))(tilted[None], camera())
    # exact uv at each pixel centre: intersect its ray with the plane, then bilinear coordinates
    rows, cols = np.mgrid[0:H, 0:W].astype(np.float64)
    ray = np.stack([(cols - 31.5) / FOCAL, (rows - 23.5) / FOCAL, np.ones_like(cols)], -1)
    a, b, d = tilted[0].astype(np.float64), tilted[1].astype(np.float64), tilted[3].astype(np.float64)
    normal = np.cross(b - a, d - a)
    point = ray * (a @ normal / (ray @ normal))[..., None]
    u = (point - a) @ (b - a) / np.dot(b - a, b - a)
    v = 1.0 - (point - a) @ (d - a) / np.dot(d - a, d - a)
    inside = (maps.alpha[0] == 255) & (u > 0.04) & (u < 0.96) & (v > 0.04) & (v < 0.96)
    assert inside.sum() > 1000
    got = maps.colour[0][inside].astype(np.float64)
    np.testing.assert_allclose(got[:, 0], 16 * (u[inside] * A - 0.5), atol=1.6)
    np.testing.assert_allclose(got[:, 1], 16 * ((1 - v[inside]) * A - 0.5), atol=1.6)
    assert np.all(got[:, 2] == 77)


def test_a_texture_finer_than_the_pixels_is_averaged_not_aliased():
    """A one-texel checker five texels per pixel: mipmaps give its mean grey; lookups in the
    finest level alone would hit texel centres (this size puts every pixel centre on one)
    and give black and white pixels."""
    checker = (np.indices((5 * H, 5 * W)).sum(0) % 2 * 255).astype(np.uint8)
    texture = np.repeat(checker[..., None], 3, axis=2)
    quad = quad_at_pixels(-0.5, 63.5, -0.5, 47.5)
    maps = TexturedRenderer(QUAD_FACES, [0, 0], QUAD_UVS[QUAD_FACES], texture, (H, W))(quad[None], camera())
    grey = maps.colour[0].astype(np.float64)
    assert abs(grey.mean() - 127.5) < 3 and grey.std() < 6, (grey.mean(), grey.std())


def test_straight_edges_get_their_exact_area_coverage():
    # columns: the quad starts at u = 10.3 (pixel 10 covered 0.2, its centre outside) and
    # ends at u = 40.85 (pixel 41 covered 0.35); rows 12.5 .. 30.5 exactly on pixel borders
    quad = quad_at_pixels(10.3, 40.85, 12.5, 30.5)
    maps = TexturedRenderer(QUAD_FACES, [0, 0], QUAD_UVS[QUAD_FACES], np.full((4, 4, 3), 255, np.uint8),
                            (H, W))(quad[None], camera())
    alpha = maps.alpha[0].astype(int)
    rows = slice(14, 29)
    assert np.all(np.abs(alpha[rows, 10] - 0.2 * 255) <= 1) and maps.mask[0][20, 10] == 0
    assert np.all(np.abs(alpha[rows, 41] - 0.35 * 255) <= 1) and maps.mask[0][20, 41] == 0
    assert np.all(alpha[rows, 11:41] == 255) and np.all(alpha[rows, :10] == 0) and np.all(alpha[rows, 42:] == 0)
    assert np.all(alpha[13:31, 20] == 255) and alpha[12, 20] == 0 and alpha[31, 20] == 0


def test_slanted_and_curved_contours_match_supersampled_coverage():
    rng = np.random.default_rng(3)
    slanted = quad_at_pixels(12.2, 47.9, 9.4, 37.3)
    centre = slanted.mean(0)
    angle = 0.37
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    slanted = ((slanted - centre) @ rotation.T + centre).astype(np.float32)
    sphere_verts, sphere_faces = sphere(radius=0.55, centre=(0.05, -0.03, 3.0))
    for verts, faces in ((slanted, QUAD_FACES), (sphere_verts, sphere_faces)):
        uvs = rng.random((len(faces), 3, 2)).astype(np.float32)
        maps = TexturedRenderer(faces, np.zeros(len(faces), int), uvs, np.full((4, 4, 3), 255, np.uint8),
                                (H, W))(verts[None], camera())
        truth = supersampled_coverage(verts, faces)
        mask = maps.mask[0] > 0
        border = (truth > 0) & (truth < 1) | (mask != (truth > 0.5))
        error = np.abs(maps.alpha[0] / 255.0 - truth)[border].mean()
        binary_error = np.abs(mask - truth)[border].mean()
        assert error < 0.05 and error < binary_error / 4, (error, binary_error)


def test_an_occluding_contour_blends_with_the_surface_behind_without_losing_coverage():
    # a small red quad in front of a large blue one; the texture's left half is red
    texture = np.zeros((4, 4, 3), np.uint8)
    texture[:, :2] = (255, 0, 0)
    texture[:, 2:] = (0, 0, 255)
    front = quad_at_pixels(20.25, 40.5, 10.5, 30.5, z=2.0)
    back = quad_at_pixels(3.5, 60.5, 3.5, 44.5, z=2.0) * [1.5, 1.5, 1.5]  # same projection, farther
    verts = np.concatenate([front, back]).astype(np.float32)
    faces = np.concatenate([QUAD_FACES, QUAD_FACES + 4])
    uvs = np.concatenate([np.full((2, 3, 2), (0.2, 0.5)), np.full((2, 3, 2), (0.8, 0.5))]).astype(np.float32)
    maps = TexturedRenderer(faces, [0] * 4, uvs, texture, (H, W))(verts[None], camera())
    rows = slice(13, 28)
    assert np.all(maps.alpha[0][rows, 15:50] == 255)
    # column 20: its centre shows the blue quad, a quarter of it is the red quad
    np.testing.assert_allclose(maps.colour[0][rows, 20].astype(float), [[64, 0, 191]] * 15, atol=1.5)
    assert np.all(maps.colour[0][rows, 21] == (255, 0, 0)) and np.all(maps.colour[0][rows, 19] == (0, 0, 255))


def test_frames_split_over_passes_match_single_frame_renders():
    verts, faces = sphere()
    uvs = spherical_uvs(verts, faces, (0, 0, 3))
    texture = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    poses = np.stack([verts + [0.1 * k, -0.05 * k, 0.2 * k] for k in range(5)]).astype(np.float32)
    renderer = TexturedRenderer(faces, np.zeros(len(faces), int), uvs, texture, (H, W), frames_per_pass=2)
    batched = renderer(poses, camera())
    out = TexturedMaps.empty(6, (H, W))
    for k in range(5):
        single = renderer(poses[k:k + 1], camera(), out=out)
        # where a frame sits in a pass moves its vertices by float rounding only
        np.testing.assert_array_equal(single.mask[0], batched.mask[k])
        for name in ("colour", "alpha", "depth"):
            assert np.abs(getattr(single, name)[0].astype(int) - getattr(batched, name)[k]).max() <= 1, name
        assert (single.alpha[0] != batched.alpha[k]).sum() <= 3


def test_set_texture_replaces_the_texture():
    quad = quad_at_pixels(-0.5, 63.5, -0.5, 47.5)
    renderer = TexturedRenderer(QUAD_FACES, [0, 0], QUAD_UVS[QUAD_FACES], np.zeros((8, 8, 3), np.uint8), (H, W))
    assert renderer(quad[None], camera()).colour.max() == 0
    renderer.set_texture(np.full((2, 2, 3), 0.5, np.float32))
    assert np.all(renderer(quad[None], camera()).colour == 128)


def test_composite_blends_premultiplied_colour_over_the_background():
    colour = np.array([[[100, 0, 0], [50, 20, 0], [0, 0, 0]]], np.uint8)
    alpha = np.array([[255, 128, 0]], np.uint8)
    background = np.full((1, 3, 3), 200, np.uint8)
    out = composite(colour, alpha, background)
    np.testing.assert_array_equal(out, [[[100, 0, 0], [50 + 100, 20 + 100, 100], [200, 200, 200]]])


def test_contour_edges_pair_every_interior_edge_and_flag_boundaries():
    edges = contour_edges(QUAD_FACES)
    assert edges.shape == (5, 8)
    boundary = edges[edges[:, 3] == NONE]
    assert len(boundary) == 4 and np.all(boundary[:, 5] == NONE)
    interior = edges[edges[:, 3] != NONE][0]
    assert set(interior[:2]) == {0, 2} and set(interior[2:4]) == {1, 3} and set(interior[4:6]) == {0, 1}
    assert interior[6] == 0  # both triangles wound alike: they run the shared edge in opposite directions
    flipped = contour_edges(np.array([[0, 1, 2], [0, 3, 2]]))
    assert flipped[flipped[:, 3] != NONE][0, 6] == 1
    _, faces = sphere(subdivisions=2)
    closed = contour_edges(faces)
    assert len(closed) == len(faces) * 3 // 2 and np.all(closed[:, 3] != NONE) and not closed[:, 6].any()
    # each edge's faces contain its vertices and the named opposite corners
    for a, b, t, u, f, g, _, _ in closed[::97]:
        assert {a, b, t} == set(faces[f]) and {a, b, u} == set(faces[g])


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.int32),
                                 np.full((4, 4, 3), np.nan)])
def test_bad_textures_are_refused(bad):
    with pytest.raises(ValueError, match="texture"):
        texture_image(bad)


def test_bad_corner_uvs_are_refused():
    with pytest.raises(ValueError, match="corner_uvs"):
        TexturedRenderer(QUAD_FACES, [0, 0], np.zeros((2, 3)), np.zeros((2, 2, 3), np.uint8), (H, W))
