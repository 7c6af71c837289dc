"""``champ3d animate``: a real run on the fixtures (frame count, frame rate, outputs), the
moving-camera rendering on a posed body, and bad input refused with exit code 2 before
anything is written."""
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from champ3d.animation import path_cameras, posed_vertices, render_animation, textured_renderer
from champ3d.cli import main
from champ3d.fitting.camera import CameraIntrinsics
from champ3d.fitting.fit_io import load_fit
from champ3d.fitting.fitter import BodyFit
from champ3d.guidance_folder import GUIDANCE_TYPES, GuidanceFolder
from champ3d.io import open_frames
from render.camera_paths import parse_camera_path
from render.renderer import ChampMapRenderer

REF = Path("images/deepfashion_00004955.jpg")
DRIVING = Path("video/dance_unianimate_source.mp4")


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def assert_nothing_written(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(out.name)]


@pytest.fixture(scope="module")
def animation(real_fixtures, tmp_path_factory):
    out = tmp_path_factory.mktemp("animate") / "run"
    code = main(["animate", "--ref", str(real_fixtures / REF), "--driving", str(real_fixtures / DRIVING),
                 "--out", str(out), "--size", "256", "--max-frames", "8"])
    assert code == 0
    return out


def test_one_frame_per_driving_frame_at_the_driving_frame_rate(animation, real_fixtures):
    video = open_frames(animation / "animation.mp4")
    driving = open_frames(real_fixtures / DRIVING, max_frames=8)
    assert video.num_frames == driving.num_frames == 8
    assert video.frame_rate == driving.frame_rate and isinstance(video.frame_rate, Fraction)
    guidance = GuidanceFolder(animation)
    assert guidance.num_frames == 8 and set(GUIDANCE_TYPES) <= set(guidance.types)
    assert tuple(video.size) == guidance.size and max(guidance.size) == 256


def test_frames_are_the_textured_body_over_the_background(animation):
    background = read_rgb(animation / "background.png")
    texture = read_rgb(animation / "texture.png")
    assert texture.shape == (1024, 1024, 3) and texture.std() > 10
    for k, frame in enumerate(open_frames(animation / "animation.mp4")):
        mask = cv2.imread(str(animation / "mask" / f"{k:04d}.png"), cv2.IMREAD_GRAYSCALE) > 0
        textured = read_rgb(animation / "textured" / f"{k:04d}.png")
        near = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        inside = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        assert not textured[~near].any()  # the body over black, nothing beyond its edge
        far = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
        difference = np.abs(frame.astype(int) - background)
        assert np.median(difference[far]) <= 2  # H.264 keeps the plate
        assert np.median(np.abs(frame.astype(int) - textured)[inside]) <= 6  # and the body over it
        assert np.median(difference.max(-1)[inside]) > 20


def test_the_background_plate_has_no_person_left(animation, real_fixtures):
    background = read_rgb(animation / "background.png")
    height, width = background.shape[:2]
    reference = cv2.resize(read_rgb(real_fixtures / REF), (width, height), interpolation=cv2.INTER_AREA)
    _, detections, _ = load_fit(animation / "fits" / "reference")
    person = cv2.resize(detections.full_mask(0).astype(np.uint8), (width, height)) > 0
    # the fixture is a studio photo on a light backdrop: where the person stood, the plate is backdrop
    assert reference[person].mean() < 150 and background[person].mean() > 180


def test_a_camera_path_moves_the_camera_for_every_output(body, tmp_path):
    params = body.zero_params(6)
    params.transl[:, 2] = 12.0
    params.transl[:, 0] = torch.linspace(-0.3, 0.3, 6)  # walking sideways
    params.body_pose[:, 9, 2] = torch.linspace(-0.8, 0.8, 6)  # the left arm waves
    camera = CameraIntrinsics.centred(96, 128, focal_scale=4.0)
    fit = BodyFit(params=params, camera=camera, interpolated=np.zeros(6, bool), error_2d=np.zeros(6, np.float32),
                  backend=body.backend)
    path = parse_camera_path({"type": "orbit", "views": 4}, "test")
    texture = np.full((64, 64, 3), 180, np.uint8)
    cameras = path_cameras(path, fit, camera, path.view_of_frame(np.arange(6)))
    assert len(cameras) == 6
    render_animation(tmp_path, fit, body, textured_renderer(body, texture, camera), cameras,
                     plate=np.zeros((128, 96, 3), np.uint8), fps=10, guidance=True)
    folder = GuidanceFolder(tmp_path)
    assert folder.num_frames == 6 and folder.size == (128, 96)
    assert open_frames(tmp_path / "animation.mp4").num_frames == 6
    renderer = ChampMapRenderer(body.faces.numpy(), body.face_parts.numpy(), (128, 96))
    vertices = posed_vertices(fit, body, slice(0, 6))[0]
    masks = [renderer(vertices[k:k + 1], cameras[k]).mask[0] for k in range(6)]
    for k in range(6):
        np.testing.assert_array_equal(cv2.imread(str(tmp_path / "mask" / f"{k:04d}.png"), cv2.IMREAD_GRAYSCALE),
                                      masks[k])
    # view 0 is the guidance camera, and frame 4 comes back to it
    for k in (0, 4):
        np.testing.assert_array_equal(masks[k], renderer(vertices[k:k + 1], camera.to_cameras()).mask[0])
    assert (masks[1] != masks[0]).mean() > 0.02  # a quarter turn later the body looks different
    # the camera turns about each frame's root: the root stays where the guidance camera sees it
    roots = params.transl.numpy()[:, None, :]
    for k in range(6):
        seen, _ = cameras[k].project(roots[k])
        expected, _ = camera.to_cameras().project(roots[k])
        np.testing.assert_allclose(seen, expected, atol=1e-2)
    textured = read_rgb(tmp_path / "textured" / "0001.png")
    assert np.all(textured[masks[1] == 0] <= 180)
    assert np.median(textured[cv2.erode(masks[1], np.ones((3, 3), np.uint8)) > 0]) == 180


@pytest.mark.parametrize("extra, message", [
    (["--camera-path", "{zero}"], "views: must be a positive integer, got 0"),
    (["--camera-path", "{unknown}"], "unknown key 'azimuth'"),
    (["--camera-path", "orbit:views=0"], "views: must be a positive integer"),
    (["--atlas-size", "1000"], "power of two"),
    (["--background", "#12345"], "#RRGGBB"),
    (["--generator", "champ"], "--weights"),
    (["--texture-views", "{nowhere}"], "nowhere.mp4: file or folder does not exist"),
    (["--infill-weights", "{nowhere}"], "texture in-filling checkpoint folder does not exist"),
])
def test_bad_settings_exit_2_before_any_work(tmp_path, capsys, extra, message):
    (tmp_path / "zero.yaml").write_text("type: orbit\nviews: 0\n")
    (tmp_path / "unknown.yaml").write_text("type: orbit\nazimuth: 30\n")
    extra = [e.format(zero=tmp_path / "zero.yaml", unknown=tmp_path / "unknown.yaml", nowhere=tmp_path / "nowhere.mp4")
             for e in extra]
    out = tmp_path / "out"
    code = main(["animate", "--ref", str(tmp_path / "missing.jpg"), "--driving", str(tmp_path / "missing.mp4"),
                 "--out", str(out)] + extra)
    assert code == 2
    assert message in capsys.readouterr().err
    assert_nothing_written(out)


def test_a_reference_without_a_person_exits_2_and_leaves_nothing(real_fixtures, tmp_path, capsys):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((320, 240, 3), 128, np.uint8))
    out = tmp_path / "out"
    code = main(["animate", "--ref", str(grey), "--driving", str(real_fixtures / DRIVING), "--out", str(out),
                 "--size", "128", "--max-frames", "2"])
    assert code == 2
    assert "no person found" in capsys.readouterr().err
    assert_nothing_written(out)
