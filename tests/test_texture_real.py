"""Real photos: fit, bake, fill, and re-render through the photo's camera and from behind."""
import cv2
import numpy as np
import pytest
import torch
from scipy.ndimage import distance_transform_edt

from champ3d.guidance import fit_media
from champ3d.io.images import read_image
from texture.atlas import UVAtlas
from texture.bake import TextureSample, bake_texture
from texture.infill import fill_texture
from texture.preview import masked_psnr, render_textured, turned_around

ATLAS_SIZE = 1024
PHOTOS = ["images/deepfashion_00004955.jpg", "images/musepose_ref.png"]
SENTINEL = np.array([1.0, 0.0, 1.0], np.float32)  # magenta: marks texels nothing filled


@pytest.fixture(scope="module")
def atlas(body, tmp_path_factory):
    return UVAtlas.from_body(body, ATLAS_SIZE, cache_dir=tmp_path_factory.getbasetemp() / "texture_atlas_cache")


@pytest.fixture(scope="module", params=PHOTOS, ids=lambda p: p.split("/")[-1])
def photo(request, body, real_fixtures, atlas):
    """The photo, its fitted mesh and camera, its bake and the filled texture."""
    path = real_fixtures / request.param
    if not path.is_file():
        pytest.skip(f"{path} not found")
    fitted = fit_media(path, body)
    with torch.no_grad():
        vertices = body(fitted.fit.params).vertices[0].numpy()
    image = read_image(path)
    mask = fitted.detections.full_mask(0)
    sample = bake_texture(image, mask, vertices, fitted.fit.camera, atlas)
    marked = TextureSample(np.where(sample.seen[..., None], sample.colour, SENTINEL), sample.confidence)
    return dict(image=image, mask=mask, vertices=vertices, camera=fitted.fit.camera, sample=sample,
                texture=fill_texture(marked, atlas))


def eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def test_rerender_through_the_photo_camera_reproduces_the_photo(body, photo):
    render, covered = render_textured(body, photo["vertices"][None], photo["texture"], photo["camera"].to_cameras())
    visible = covered[0] & eroded(photo["mask"], 3)  # the body where the photo shows the person
    assert visible.sum() > 50_000
    psnr = masked_psnr(render[0], photo["image"], visible)
    assert psnr >= 28.0, f"PSNR {psnr:.2f} dB"


def test_single_view_texture_is_completed(atlas, photo):
    coverage = photo["sample"].seen[atlas.island_mask].mean()
    assert 0.3 < coverage < 0.6
    texels = atlas.gather(photo["texture"]).astype(np.int16)
    assert not np.any(np.all(texels == (SENTINEL * 255).astype(np.int16), axis=1))  # 100 % of island texels set


def test_back_view_has_no_unset_or_background_patches(body, atlas, photo):
    texture = photo["texture"].copy()
    beyond_gutter = distance_transform_edt(~atlas.island_mask) > 1.5  # what bilinear lookups never reach
    texture[beyond_gutter] = (SENTINEL * 255).astype(np.uint8)
    behind = turned_around(photo["vertices"])
    render, covered = render_textured(body, behind[None], texture, photo["camera"].to_cameras())
    body_pixels = render[0][eroded(covered[0], 1)]
    assert len(body_pixels) > 50_000
    assert np.mean(np.abs(body_pixels - SENTINEL).max(axis=1) < 0.25) < 1e-4

    # no more background colour on the back than on the person in the photo
    image = photo["image"].astype(np.float32) / 255.0
    outside = ~cv2.dilate(photo["mask"].astype(np.uint8), np.ones((31, 31), np.uint8)).astype(bool)
    background = np.median(image[outside], axis=0)
    near = lambda pixels: np.mean(np.linalg.norm(pixels - background, axis=1) < 0.08)
    assert near(body_pixels) <= near(image[eroded(photo["mask"], 3)]) + 0.02
