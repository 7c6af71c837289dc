"""The reference texture fused with more views of the person (champ3d.appearance), on real
frames of the UBC-Fashion turn: the back view fills what the front photo never saw, with
the person's real colours; and the orbit and animate commands take the views."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from champ3d.appearance import MAX_VIDEO_BAKES, TextureViews, frames_to_bake, reference_texture
from champ3d.cli import main
from champ3d.errors import Champ3dInputError
from champ3d.guidance import fit_media
from champ3d.io import open_frames
from texture.preview import masked_psnr, render_textured

UBC = Path("video/ubc_fashion_91BjuE6irxS.mp4")
FRONT, BACK = 0, 180  # frames of the turn: facing the camera, and facing away


def test_frames_to_bake_every_nth_found_frame():
    found = np.ones(25, bool)
    found[[10, 11]] = False
    assert frames_to_bake(found, 5).tolist() == [0, 5, 15, 20]
    assert frames_to_bake(np.ones(25, bool), 1, limit=4).tolist() == [0, 8, 16, 24]
    assert len(frames_to_bake(np.ones(10_000, bool), 1)) == MAX_VIDEO_BAKES


def test_every_must_be_a_positive_integer():
    with pytest.raises(Champ3dInputError, match="--texture-every"):
        TextureViews((), every=0)


@pytest.fixture(scope="module")
def turn_photos(real_fixtures, tmp_path_factory):
    """Frames FRONT and BACK of the turn, written as photos."""
    folder = tmp_path_factory.mktemp("turn")
    paths = {}
    for index, frame in enumerate(open_frames(real_fixtures / UBC, max_frames=BACK + 1)):
        if index in (FRONT, BACK):
            paths[index] = folder / f"frame_{index:03d}.png"
            cv2.imwrite(str(paths[index]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return paths


def test_a_back_view_fills_the_back_with_the_persons_colours(turn_photos, body):
    front, back = (fit_media(turn_photos[i], body) for i in (FRONT, BACK))
    image = cv2.cvtColor(cv2.imread(str(turn_photos[FRONT])), cv2.COLOR_BGR2RGB)
    alone, alone_info = reference_texture(image, front.fit, front.detections, body, 512)
    fused, fused_info = reference_texture(image, front.fit, front.detections, body, 512,
                                          TextureViews((turn_photos[BACK],)))
    assert fused_info["texels_seen"] == alone_info["texels_seen"]
    assert fused_info["texels_seen_fused"] > alone_info["texels_seen"] + 0.2
    assert fused_info["views"] == [{"path": str(turn_photos[BACK]), "frames": 1, "baked": [0]}]

    # the back photo, re-rendered with each texture through its own fit
    back_image = cv2.cvtColor(cv2.imread(str(turn_photos[BACK])), cv2.COLOR_BGR2RGB)
    with torch.no_grad():
        vertices = body(back.fit.params).vertices.numpy()
    psnr = {}
    for name, texture in (("alone", alone), ("fused", fused)):
        render, covered = render_textured(body, vertices, texture, back.fit.camera.to_cameras())
        inside = covered[0] & cv2.erode(back.detections.full_mask(0).astype(np.uint8), np.ones((7, 7))).astype(bool)
        psnr[name] = masked_psnr(render[0], back_image, inside)
    assert psnr["fused"] > 22.0 and psnr["fused"] > psnr["alone"] + 3.0, psnr


def test_orbit_takes_texture_views_and_a_background(turn_photos, tmp_path):
    out = tmp_path / "orbit"
    assert main(["orbit", "--ref", str(turn_photos[FRONT]), "--out", str(out), "--views", "4", "--size", "96",
                 "--atlas-size", "256", "--texture-views", str(turn_photos[BACK]), "--background", "inpaint"]) == 0
    assert (out / "background.png").is_file() and (out / "texture.png").is_file()
    assert open_frames(out / "orbit.mp4").num_frames == 4
    plate = cv2.imread(str(out / "background.png"))
    assert plate.mean() > 200  # the studio's white, the person removed


def test_texture_views_are_checked_before_any_work(turn_photos, tmp_path, capsys):
    missing = tmp_path / "nowhere.mp4"
    out = tmp_path / "orbit"
    assert main(["orbit", "--ref", str(turn_photos[FRONT]), "--out", str(out),
                 "--texture-views", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == []
