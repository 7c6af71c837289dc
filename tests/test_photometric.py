"""Photometric pose refinement (champ3d.fitting.photometric): a body rendered with a known
texture and then knocked out of place is pulled back; on real frames of the UBC-Fashion
turn, a frame's pose refined against a neighbouring frame's bake re-renders it better."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from champ3d.appearance import bake_view, refine_views
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.photometric import PhotometricRefiner
from champ3d.guidance import fit_media
from champ3d.io import open_frames
from texture.atlas import UVAtlas
from texture.bake import TextureSample, bake_texture
from texture.preview import masked_psnr, render_textured

UBC = Path("video/ubc_fashion_91BjuE6irxS.mp4")


def patterned_texture(size: int) -> np.ndarray:
    """A smooth, colourful (size, size, 3) float texture: stripes of three frequencies."""
    v, u = np.mgrid[0:size, 0:size] / size
    return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * 6 * u), 0.5 + 0.4 * np.sin(2 * np.pi * 5 * v),
                     0.5 + 0.4 * np.cos(2 * np.pi * 4 * (u + v))], axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def patterned_scene(body):
    """A body at rest facing the camera, drawn with a patterned texture over white; the
    same body shifted and turned by 5 degrees."""
    camera = CameraIntrinsics.centred(256, 384)
    truth = body.zero_params(1)
    truth.transl = torch.tensor([[0.0, 0.05, 46.0]])
    colour = patterned_texture(256)
    with torch.no_grad():
        vertices = body(truth).vertices.numpy()
    render, covered = render_textured(body, vertices, colour, camera.to_cameras())
    image = (np.where(covered[0][..., None], render[0], 1.0) * 255).round().astype(np.uint8)
    displaced = truth.detach()
    displaced.global_orient = torch.tensor([[0.0, np.deg2rad(5.0), 0.0]], dtype=torch.float32)
    displaced.transl = truth.transl + torch.tensor([[0.03, -0.02, 0.0]])
    return {"camera": camera, "colour": colour, "vertices": vertices, "image": image, "mask": covered[0],
            "displaced": displaced}


def test_a_displaced_body_is_pulled_back_onto_its_render(body, patterned_scene):
    scene = patterned_scene
    camera, start = scene["camera"], scene["displaced"]
    texture = TextureSample(scene["colour"], np.ones(scene["colour"].shape[:2], np.float32))
    refiner = PhotometricRefiner(body, camera)
    result = refiner(scene["image"], scene["mask"], start, texture)

    assert result.kept and result.error_after < 0.1 * result.error_before
    again = refiner(scene["image"], scene["mask"], start, texture)  # bit-identical
    assert all(torch.equal(getattr(again.params, k), v) for k, v in result.params.to_dict().items())

    def pixel_error(params):  # mean distance of the projected vertices to the true ones, pixels
        with torch.no_grad():
            posed = body(params).vertices[0]
        return float((camera.project(posed) - camera.project(torch.from_numpy(scene["vertices"][0]))).norm(dim=-1).mean())

    assert pixel_error(start) > 4.0 and pixel_error(result.params) < 0.5  # depth is not observed: 2D only


def test_a_view_baked_through_a_displaced_fit_is_refined_against_the_anchor(body, patterned_scene):
    scene = patterned_scene
    atlas = UVAtlas.from_body(body, 256)
    anchor = TextureSample(scene["colour"], atlas.island_mask.astype(np.float32))
    view = bake_view(scene["image"], scene["mask"], scene["displaced"], scene["camera"], body, atlas, keep_frame=True)
    (refined,), record = refine_views([view], [anchor], body, atlas)
    assert record["views"] == record["compared"] == record["changed"] == 1
    assert record["error_after"] < 0.2 * record["error_before"]
    seen = refined.sample.seen & view.sample.seen & atlas.island_mask
    error = lambda sample: np.abs(sample.colour[seen] - scene["colour"][seen]).mean()
    assert error(refined.sample) < 0.5 * error(view.sample)  # the re-bake now holds the right colours

    (alone,), record = refine_views([view], [], body, atlas)  # nothing to compare with
    assert alone is view and record["compared"] == record["changed"] == 0 and record["error_before"] is None
    with pytest.raises(ValueError, match="keep_frames"):  # a view without its frame cannot be refined
        refine_views([bake_view(scene["image"], scene["mask"], scene["displaced"], scene["camera"], body, atlas)],
                     [anchor], body, atlas)


def test_a_refinement_that_does_not_help_is_not_kept(body):
    camera = CameraIntrinsics.centred(128, 192)
    params = body.zero_params(1)
    params.transl = torch.tensor([[0.0, 0.05, 46.0]])
    flat = np.full((64, 64, 3), 0.5, np.float32)  # no texture detail: nothing to align
    image = np.full((192, 128, 3), 128, np.uint8)
    result = PhotometricRefiner(body, camera)(image, np.ones((192, 128), bool), params,
                                              TextureSample(flat, np.ones((64, 64), np.float32)))
    assert not result.kept
    for name, value in params.to_dict().items():
        assert torch.equal(getattr(result.params, name), value)


def test_a_frame_of_the_turn_re_renders_better_from_a_neighbours_bake(real_fixtures, body, tmp_path):
    """Frames 160 and 165 (the person turns about 15 degrees between them), each fitted as a
    photo: frame 160's bake rendered with frame 165's fit, before and after refinement."""
    frames = {}
    for index, frame in enumerate(open_frames(real_fixtures / UBC, max_frames=166)):
        if index in (160, 165):
            frames[index] = frame
            cv2.imwrite(str(tmp_path / f"{index}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    fits = {index: fit_media(tmp_path / f"{index}.png", body, tight=True) for index in frames}
    atlas = UVAtlas.from_body(body, 512)
    source = fits[160]
    with torch.no_grad():
        vertices = body(source.fit.params).vertices[0].numpy()
    bake = bake_texture(frames[160], source.detections.full_mask(0), vertices, source.fit.camera, atlas)

    target = fits[165]
    mask = target.detections.full_mask(0)
    result = PhotometricRefiner(body, target.fit.camera)(frames[165], mask, target.fit.params, bake)

    def psnr(params):
        with torch.no_grad():
            posed = body(params).vertices.numpy()
        cameras = target.fit.camera.to_cameras()
        render, covered = render_textured(body, posed, bake.colour, cameras)
        seen, _ = render_textured(body, posed, bake.seen[..., None].repeat(3, -1).astype(np.float32), cameras)
        compared = covered[0] & mask & (seen[0, ..., 0] > 0.999)
        return masked_psnr(render[0], frames[165], compared)

    assert result.kept
    assert psnr(result.params) > psnr(target.fit.params) + 2.0
