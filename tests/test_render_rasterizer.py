"""MeshRasterizer: coverage, pixel-centre convention, exact depth, barycentrics, normals, batching."""
import numpy as np
import pytest
import trimesh

from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer, is_closed_oriented, tag_vertices

H, W = 48, 64
QUAD_FACES = np.array([[0, 1, 2], [0, 2, 3]])


def camera(focal=60.0, size=(H, W)):
    return PerspectiveCameras(np.eye(3), np.zeros(3), focal, size)


def quad(x0, x1, y0, y1, z=2.0, slope=0.0):
    """Quad in the camera frame spanning [x0, x1] x [y0, y1] on the plane z + slope * x."""
    xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)
    return np.concatenate([xy, z + slope * xy[:, :1]], axis=1).astype(np.float32)


def sphere(radius=0.5, centre=(0.0, 0.0, 3.0), subdivisions=3):
    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return (mesh.vertices + centre).astype(np.float32), mesh.faces.astype(np.int32)


def pixel_rays(cams, b=0):
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    fx, fy = cams.focal_length[b]
    cx, cy = cams.principal_point[b]
    return (u - cx) / fx, (v - cy) / fy


def test_coverage_is_the_set_of_pixel_centres_inside_the_projection():
    cams = camera()
    # corners project to u in [9.9, 20.1] (x = (u - 31.5) / 60 * z) and v in [4.6, 30.4]
    z = 2.0
    x0, x1 = (9.9 - 31.5) / 60 * z, (20.1 - 31.5) / 60 * z
    y0, y1 = (4.6 - 23.5) / 60 * z, (30.4 - 23.5) / 60 * z
    frags = MeshRasterizer(QUAD_FACES, (H, W))(quad(x0, x1, y0, y1, z)[None], cams)
    expected = np.zeros((H, W), bool)
    expected[5:31, 10:21] = True  # rows 5..30, columns 10..20: the pixel centres inside
    np.testing.assert_array_equal(frags.mask[0], expected)
    assert set(np.unique(frags.pix_to_face[0])) == {-1, 0, 1}


def test_silhouette_matches_projected_vertices():
    verts, faces = sphere()
    cams = camera()
    frags = MeshRasterizer(faces, (H, W))(verts[None], cams)
    # the sphere's silhouette is the set of pixel rays passing within the radius of the centre
    dx, dy = pixel_rays(cams)
    d = np.stack([dx, dy, np.ones_like(dx)], -1)
    c = np.array([0.0, 0.0, 3.0])
    distance = np.linalg.norm(np.cross(d, c), axis=-1) / np.linalg.norm(d, axis=-1)
    inside, outside = distance < 0.5 * 0.98, distance > 0.5 * 1.001
    assert frags.mask[0][inside].all() and not frags.mask[0][outside].any()
    uv, _ = cams.project(verts)
    visible = verts[:, 2] < 2.8  # facing the camera, away from the silhouette
    px = np.round(uv[0, visible]).astype(int)
    ok = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
    assert frags.mask[0][px[ok, 1], px[ok, 0]].mean() > 0.97


def test_planar_depth_barycentrics_and_attributes_are_exact():
    cams = camera()
    verts = quad(-0.6, 0.6, -0.4, 0.4, z=2.0, slope=0.5)  # z = 2 + x / 2
    corner_xyz = verts[QUAD_FACES]  # (F, 3, 3): interpolating corner positions gives the surface point
    frags = MeshRasterizer(QUAD_FACES, (H, W))(verts[None], cams, corner_attributes=corner_xyz)
    m = frags.mask[0]
    dx, dy = pixel_rays(cams)
    z = 2.0 / (1.0 - 0.5 * dx)  # the ray (dx, dy, 1) * z meets z = 2 + x / 2
    np.testing.assert_allclose(frags.zbuf[0][m], z[m], rtol=1e-5)
    assert np.all(frags.zbuf[0][~m] == 0) and np.all(frags.pix_to_face[0][~m] == -1)
    point = np.stack([dx * z, dy * z, z], -1)
    np.testing.assert_allclose(frags.attributes[0][m], point[m], atol=1e-4)
    bary = frags.bary_coords[0][m]
    assert np.all(bary >= 0) and np.allclose(bary.sum(-1), 1, atol=1e-6)
    from_bary = np.einsum("nc,ncx->nx", bary, corner_xyz[frags.pix_to_face[0][m]])
    np.testing.assert_allclose(from_bary, point[m], atol=1e-4)
    # the plane's unit normal (winding of QUAD_FACES gives +z-ish: (-0.5, 0, 1) / |.|)
    np.testing.assert_allclose(frags.normals[0][m], np.tile([-0.5, 0, 1] / np.sqrt(1.25), (m.sum(), 1)), atol=1e-5)


def test_sphere_normals_point_out_of_the_centre():
    verts, faces = sphere(subdivisions=4)
    frags = MeshRasterizer(faces, (H, W))(verts[None], camera())
    m = frags.mask[0]
    dx, dy = pixel_rays(camera())
    surface = np.stack([dx, dy, np.ones_like(dx)], -1) * frags.zbuf[0][..., None]
    radial = surface - [0.0, 0.0, 3.0]
    radial /= np.linalg.norm(radial, axis=-1, keepdims=True)
    cosine = np.sum(frags.normals[0][m] * radial[m], -1)
    assert cosine.min() > 0.995
    np.testing.assert_allclose(np.linalg.norm(frags.normals[0][m], axis=-1), 1, atol=1e-5)


def test_batch_and_passes_match_single_frames():
    verts, faces = sphere()
    rng = np.random.default_rng(3)
    batch = verts[None] + rng.normal(scale=0.05, size=(5, 1, 3)).astype(np.float32)
    cams = PerspectiveCameras(np.eye(3), rng.normal(scale=0.1, size=(5, 3)), 60.0, (H, W))
    together = MeshRasterizer(faces, (H, W), frames_per_pass=2)(batch, cams)
    single = MeshRasterizer(faces, (H, W), frames_per_pass=1)
    for b in range(5):
        alone = single(batch[b:b + 1], cams[b])
        np.testing.assert_array_equal(together.pix_to_face[b], alone.pix_to_face[0])
        # float interpolation differs in the last bits between row bands
        np.testing.assert_allclose(together.zbuf[b], alone.zbuf[0], rtol=1e-5)
        np.testing.assert_allclose(together.normals[b], alone.normals[0], atol=1e-4)
    assert not np.array_equal(together.pix_to_face[0], together.pix_to_face[1])


def test_back_face_culling_changes_nothing_on_closed_meshes():
    verts, faces = sphere()
    assert is_closed_oriented(faces) and not is_closed_oriented(faces[1:])
    # an extra triangle outside the view opens the mesh, so it is drawn without culling
    extra = np.array([[50.0, 50.0, 3.0], [51.0, 50.0, 3.0], [50.0, 51.0, 3.0]], np.float32)
    open_verts = np.concatenate([verts, extra])
    open_faces = np.concatenate([faces, [[len(verts), len(verts) + 1, len(verts) + 2]]])
    assert not is_closed_oriented(open_faces)
    closed = MeshRasterizer(faces, (H, W))(verts[None], camera())
    opened = MeshRasterizer(open_faces, (H, W))(open_verts[None], camera())
    np.testing.assert_array_equal(closed.pix_to_face, opened.pix_to_face)
    np.testing.assert_array_equal(closed.zbuf, opened.zbuf)
    # inward winding: the same visible surface, normals pointing inward
    inward = MeshRasterizer(faces[:, ::-1], (H, W))(verts[None], camera())
    np.testing.assert_array_equal(inward.mask, closed.mask)
    np.testing.assert_allclose(inward.zbuf, closed.zbuf, rtol=1e-5)
    np.testing.assert_allclose(inward.normals, -closed.normals, atol=1e-5)


def test_face_tags_leave_geometry_unchanged():
    verts, faces = sphere()
    tags = np.arange(len(faces)) % 7
    plain = MeshRasterizer(faces, (H, W))(verts[None], camera())
    tagged = MeshRasterizer(faces, (H, W), face_tags=tags)(verts[None], camera())
    np.testing.assert_array_equal(plain.pix_to_face, tagged.pix_to_face)
    np.testing.assert_allclose(plain.zbuf, tagged.zbuf, rtol=1e-5)  # corners drawn in another order
    np.testing.assert_allclose(plain.bary_coords, tagged.bary_coords, atol=1e-4)
    np.testing.assert_allclose(plain.normals, tagged.normals, atol=1e-4)


def test_tag_vertices_gives_every_face_its_tag_on_its_last_corner():
    _, faces = sphere()
    rng = np.random.default_rng(5)
    tags = rng.integers(0, 2**32, len(faces), dtype=np.uint64) % 5 * 1000003
    render_faces, draw_faces, source, vertex_tags = tag_vertices(faces, tags)
    np.testing.assert_array_equal(vertex_tags[draw_faces[:, 2]], tags)
    np.testing.assert_array_equal(source[render_faces], faces)  # same mesh vertices, caller's order
    rolled = [np.roll(render_faces, k, axis=1) for k in range(3)]
    assert np.all(np.any([np.all(draw_faces == r, axis=1) for r in rolled], axis=0))  # rotations only
    assert len(source) < 1.5 * (faces.max() + 1)


def test_near_plane_clips_and_rotation_is_applied():
    verts, faces = sphere(centre=(0.0, 0.0, 0.0))
    # camera 3 m in front of the sphere looking at it along world +x
    R = np.array([[0, 0, -1], [0, 1, 0], [1, 0, 0]], np.float32)  # world +x -> camera +z
    cams = PerspectiveCameras(R, [0, 0, 3.0], 60.0, (H, W))
    frags = MeshRasterizer(faces, (H, W))(verts[None], cams)
    assert frags.zbuf[0][frags.mask[0]].min() == pytest.approx(2.5, abs=0.01)
    cut = PerspectiveCameras(R, [0, 0, 0.2], 60.0, (H, W), znear=0.1)  # camera inside the sphere
    inside = MeshRasterizer(faces, (H, W))(verts[None], cut)
    assert inside.mask[0].all() and inside.zbuf[0].min() >= 0.1


@pytest.mark.parametrize("make, message", [
    (lambda: MeshRasterizer(np.zeros((3, 2), int), (H, W)), "faces"),
    (lambda: MeshRasterizer(QUAD_FACES, (0, W)), "image_size"),
    (lambda: MeshRasterizer(QUAD_FACES, (H, W))(np.zeros((1, 3, 3), np.float32), camera()), "vertices"),
    (lambda: MeshRasterizer(QUAD_FACES, (H, W))(quad(0, 1, 0, 1)[None], camera(size=(10, 10))), "image_size"),
    (lambda: MeshRasterizer(QUAD_FACES, (H, W))(np.full((1, 4, 3), np.nan, np.float32), camera()), "NaN"),
    (lambda: MeshRasterizer(QUAD_FACES, (H, W))(quad(0, 1, 0, 1)[None], camera(),
                                                 corner_attributes=np.zeros((3, 3, 2))), "corner_attributes"),
])
def test_bad_inputs_are_rejected(make, message):
    with pytest.raises(ValueError, match=message):
        make()
