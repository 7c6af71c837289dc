"""The fitter's cheap paths give the mesh's own numbers: Anny's keypoint rig and surface
points against full skinning, for random shapes and poses, values and shape gradients."""
from __future__ import annotations

import torch


def random_params(body, batch: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    params = body.zero_params(batch)
    params.shape = torch.rand(1, body.num_shape, generator=generator)
    params.body_pose = 0.5 * torch.randn(params.body_pose.shape, generator=generator)
    params.hand_pose = 0.5 * torch.randn(params.hand_pose.shape, generator=generator)
    params.global_orient = torch.randn(batch, 3, generator=generator)
    params.transl = torch.randn(batch, 3, generator=generator) + torch.tensor([0.0, 0.0, 5.0])
    return params


def test_keypoint_rig_matches_the_skinned_mesh(body):
    params = random_params(body, 4, seed=1)
    with torch.no_grad():
        rig = body.keypoints(params)
        mesh = body(params).keypoints
    assert rig.shape == mesh.shape
    torch.testing.assert_close(rig, mesh, atol=5e-5, rtol=0)  # metres (float32 at 5 m)


def test_rig_vertices_match_the_skinned_mesh(body):
    params = random_params(body, 3, seed=2)
    ids = torch.arange(0, int(body.faces.max()) + 1, 29)
    with torch.no_grad():
        keypoints, points = body.keypoints_and_vertices(params, ids)
        out = body(params)
    torch.testing.assert_close(points, out.vertices[:, ids], atol=5e-5, rtol=0)
    torch.testing.assert_close(keypoints, out.keypoints, atol=5e-5, rtol=0)


def test_shape_gradients_match_the_skinned_mesh(body):
    params = random_params(body, 2, seed=3)
    ids = torch.arange(0, int(body.faces.max()) + 1, 97)

    def gradient(points_of):
        shape = params.shape.clone().requires_grad_(True)
        params.shape = shape
        (grad,) = torch.autograd.grad(points_of(params).square().sum(), shape)
        return grad

    rig = gradient(body.keypoints)
    mesh = gradient(lambda p: body(p).keypoints)
    torch.testing.assert_close(rig, mesh, rtol=1e-3, atol=1e-3)
    surface = gradient(lambda p: body.keypoints_and_vertices(p, ids)[1])
    skinned = gradient(lambda p: body(p).vertices[:, ids])
    torch.testing.assert_close(surface, skinned, rtol=1e-3, atol=1e-3)


def test_keypoint_basis_follows_the_shape(body):
    """The cached basis of one shape is not reused for another."""
    a, b = random_params(body, 1, seed=4), random_params(body, 1, seed=4)
    b.shape = 1.0 - a.shape
    with torch.no_grad():
        first, second, again = body.keypoints(a), body.keypoints(b), body.keypoints(a)
    assert not torch.allclose(first, second)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    torch.testing.assert_close(second, body(b).keypoints, atol=5e-5, rtol=0)


def test_a_shape_per_frame(body):
    params = random_params(body, 3, seed=5)
    params.shape = torch.rand(3, body.num_shape, generator=torch.Generator().manual_seed(6))
    ids = torch.arange(0, int(body.faces.max()) + 1, 211)
    with torch.no_grad():
        out = body(params)
        torch.testing.assert_close(body.keypoints(params), out.keypoints, atol=5e-5, rtol=0)
        torch.testing.assert_close(body.keypoints_and_vertices(params, ids)[1], out.vertices[:, ids], atol=5e-5, rtol=0)
