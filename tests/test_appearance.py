"""The reference texture fused with more views of the person (champ3d.appearance), on real
frames of the UBC-Fashion turn: the back view fills what the front photo never saw, with
the person's real colours; and the orbit and animate commands take the views."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from champ3d.appearance import (MAX_VIDEO_BAKES, REFERENCE_FIRST, SOURCE_COLOURS, TextureViews, frames_to_bake,
                                reference_texture)
from champ3d.cli import main
from champ3d.errors import Champ3dInputError
from champ3d.guidance import fit_media
from champ3d.io import open_frames
from texture.atlas import UVAtlas
from texture.bake import bake_texture
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
    front = fit_media(turn_photos[FRONT], body)
    back = fit_media(turn_photos[BACK], body, tight=True)  # the fit the view is baked through
    image = cv2.cvtColor(cv2.imread(str(turn_photos[FRONT])), cv2.COLOR_BGR2RGB)
    alone = reference_texture(image, front.fit, front.detections, body, 512)
    fused = reference_texture(image, front.fit, front.detections, body, 512, TextureViews((turn_photos[BACK],)))
    (alone, alone_info, alone_sources), (fused, fused_info, fused_sources) = (
        (t.texture, t.info, t.sources) for t in (alone, fused))
    assert alone_info["texel_sources"]["views"] == 0.0 and fused_info["texel_sources"]["views"] > 0.2
    for info in (alone_info, fused_info):
        assert abs(sum(info["texel_sources"].values()) - 1.0) < 1e-6
    assert fused_info["texel_sources"]["filled"] < alone_info["texel_sources"]["filled"] - 0.2
    coloured = lambda sources, name: np.all(sources == SOURCE_COLOURS[name], axis=-1).sum()
    assert coloured(alone_sources, "views") == 0 < coloured(fused_sources, "views")
    assert coloured(fused_sources, "filled") < coloured(alone_sources, "filled")
    assert fused_info["texels_seen"] == alone_info["texels_seen"]
    assert fused_info["texels_seen_fused"] > alone_info["texels_seen"] + 0.2
    assert fused_info["views"] == [{"path": str(turn_photos[BACK]), "frames": 1, "baked": [0]}]
    # what the photo sees head-on keeps the photo's colours
    atlas = UVAtlas.from_body(body, 512)
    with torch.no_grad():
        vertices = body(front.fit.params).vertices[0].numpy()
    head_on = bake_texture(image, front.detections.full_mask(0), vertices, front.fit.camera,
                           atlas).confidence >= REFERENCE_FIRST
    assert head_on.mean() > 0.1
    np.testing.assert_array_equal(fused[head_on], alone[head_on])

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


def test_orbit_takes_refined_texture_views_and_a_background(turn_photos, tmp_path, capsys):
    out = tmp_path / "orbit"
    assert main(["orbit", "--ref", str(turn_photos[FRONT]), "--out", str(out), "--views", "4", "--size", "96",
                 "--atlas-size", "256", "--texture-views", str(turn_photos[BACK]), "--texture-refine",
                 "--background", "inpaint"]) == 0
    summary, _ = json.JSONDecoder().raw_decode(capsys.readouterr().out)  # the JSON, then a line of text
    refinement = summary["texture"]["refinement"]
    assert refinement["views"] == 1 and refinement["error_after"] <= refinement["error_before"]
    assert (out / "background.png").is_file() and (out / "texture.png").is_file()
    assert (out / "texture_sources.png").is_file()
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


def test_a_job_case_with_a_camera_path_and_texture_views(turn_photos, real_fixtures, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"output: out\ncases:\n  - {{name: turn, ref: {turn_photos[FRONT]}, driving: {real_fixtures / UBC}, "
                   f"max_frames: 4, size: 96, atlas_size: 256, camera_path: 'orbit:views=4', "
                   f"texture_views: [{turn_photos[BACK]}]}}\n")
    assert main(["batch", str(job)]) == 0
    assert open_frames(tmp_path / "out" / "turn" / "video.mp4").num_frames == 4
    record = json.loads((tmp_path / "out" / "turn" / "run.json").read_text())
    assert record["status"] == "done" and record["settings"]["texture_views"] == [str(turn_photos[BACK])]
    (generated,) = (tmp_path / "out" / ".cache" / "generate").glob("*/texture.png")
    masks = [cv2.imread(str(generated.parent / "mask" / f"{k:04d}.png"), cv2.IMREAD_GRAYSCALE) > 0 for k in range(4)]
    iou = [(masks[0] & m).sum() / (masks[0] | m).sum() for m in masks]
    assert iou[1] < 0.5 and iou[3] < 0.5, iou  # a quarter turn: the camera sees the body's sides
