"""``champ3d orbit``: 3DHM's 30-view turntable on a real photo (every view written, the
views agree on the colour of each body point), and bad input refused with exit code 2."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from champ3d.cli import main
from champ3d.fitting.fit_io import load_fit
from champ3d.guidance_folder import GUIDANCE_TYPES, GuidanceFolder
from champ3d.io import open_frames
from champ3d.animation import posed_vertices
from render.cameras import PerspectiveCameras
from render.rasterizer import MeshRasterizer

REF = Path("images/deepfashion_00004955.jpg")
VIEWS = 30


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def orbit(real_fixtures, tmp_path_factory):
    out = tmp_path_factory.mktemp("orbit") / "run"
    assert main(["orbit", "--ref", str(real_fixtures / REF), "--out", str(out), "--size", "128"]) == 0
    return out


def test_all_30_views_are_written(orbit):
    folder = GuidanceFolder(orbit, types=GUIDANCE_TYPES)
    assert folder.num_frames == VIEWS and max(folder.size) == 128
    assert len(list((orbit / "textured").glob("*.png"))) == VIEWS
    assert open_frames(orbit / "orbit.mp4").num_frames == VIEWS
    record = json.loads((orbit / "cameras.json").read_text())
    assert [round(v["azimuth"]) for v in record["views"]] == list(range(0, 360, 12))
    grid = read_rgb(orbit / "orbit_grid.png")
    assert grid.shape[0] * grid.shape[1] >= VIEWS * folder.size[0] * folder.size[1]
    for k in range(VIEWS):  # every view shows the body
        assert (cv2.imread(str(orbit / "mask" / f"{k:04d}.png"), cv2.IMREAD_GRAYSCALE) > 0).sum() > 500


def test_views_agree_on_the_colour_of_each_body_point(orbit, body):
    fit, _, _ = load_fit(orbit / "fits" / "reference")
    vertices = posed_vertices(fit, body, slice(0, 1))[0][0]
    record = json.loads((orbit / "cameras.json").read_text())
    k = record["intrinsics"]
    size = (k["height"], k["width"])
    cameras = PerspectiveCameras(np.array([v["R"] for v in record["views"]]), np.array([v["T"] for v in record["views"]]),
                                 (k["fx"], k["fy"]), size, principal_point=(k["cx"], k["cy"]))
    every_view = np.repeat(vertices[None], VIEWS, 0)
    fragments = MeshRasterizer(body.faces.numpy(), size)(every_view, cameras)
    uv, depth = cameras.project(every_view)
    # textures are detailed at this size (a plaid shirt 60 px tall): compare slightly blurred views
    images = [cv2.GaussianBlur(read_rgb(orbit / "textured" / f"{i:04d}.png").astype(np.float32), (0, 0), 1.0)
              for i in range(VIEWS)]

    def visible(i):
        """Vertices in view i on the front-most surface, away from the silhouette."""
        pixel = np.rint(uv[i]).astype(int)
        inside = (pixel[:, 0] >= 0) & (pixel[:, 0] < size[1]) & (pixel[:, 1] >= 0) & (pixel[:, 1] < size[0])
        pixel = np.clip(pixel, 0, [size[1] - 1, size[0] - 1])
        interior = cv2.erode(fragments.mask[i].astype(np.uint8), np.ones((5, 5), np.uint8))[pixel[:, 1], pixel[:, 0]]
        return inside & (interior > 0) & (np.abs(fragments.zbuf[i][pixel[:, 1], pixel[:, 0]] - depth[i]) < 0.01)

    def colours(i, points):
        xy = uv[i][points].astype(np.float32)
        return cv2.remap(images[i], xy[:, :1], xy[:, 1:], cv2.INTER_LINEAR)[:, 0]

    shuffle = np.random.default_rng(0).permutation
    for a, b in ((0, 1), (0, 29), (7, 8), (14, 15), (22, 23)):
        both = visible(a) & visible(b)
        assert both.sum() > 300
        ca, cb = colours(a, both), colours(b, both)
        same = np.median(np.abs(ca - cb).max(-1))
        unrelated = np.median(np.abs(ca - cb[shuffle(len(cb))]).max(-1))
        assert same < 12 and same < unrelated / 4, (a, b, same, unrelated)


@pytest.mark.parametrize("extra, message", [
    (["--views", "0"], "views: must be a positive integer, got 0"),
    (["--path", "{zero}"], "views: must be a positive integer, got 0"),
    (["--path", "{unknown}"], "unknown key 'spin'"),
    (["--path", "swing", "--views", "4"], "either --path or --views"),
    (["--atlas-size", "100"], "power of two"),
    (["--elevation", "120"], "elevation: must lie in [-90, 90]"),
])
def test_bad_settings_exit_2_before_any_work(tmp_path, capsys, extra, message):
    (tmp_path / "zero.yaml").write_text("type: orbit\nviews: 0\n")
    (tmp_path / "unknown.yaml").write_text("type: swing\nspin: 2\n")
    extra = [e.format(zero=tmp_path / "zero.yaml", unknown=tmp_path / "unknown.yaml") for e in extra]
    out = tmp_path / "out"
    assert main(["orbit", "--ref", str(tmp_path / "missing.jpg"), "--out", str(out)] + extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("out")]


def test_a_reference_without_a_person_exits_2_and_leaves_nothing(tmp_path, capsys):
    grey = tmp_path / "grey.png"
    cv2.imwrite(str(grey), np.full((320, 240, 3), 128, np.uint8))
    out = tmp_path / "out"
    assert main(["orbit", "--ref", str(grey), "--out", str(out), "--size", "128"]) == 2
    assert "no person found" in capsys.readouterr().err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("out")]


def test_orbit_geometry_feeds_the_multiview_metric(orbit):
    from champ3d.eval.multiview import GEOMETRY_FILE, load_view_geometry, multiview_l1

    geometry = load_view_geometry(orbit / GEOMETRY_FILE)
    frames = np.stack([read_rgb(orbit / "textured" / f"{i:04d}.png") for i in range(VIEWS)])
    consistent = multiview_l1(frames, geometry, "orbit")
    shifted = multiview_l1(np.roll(frames, 3, axis=2), geometry, "orbit")
    assert geometry.num_views == VIEWS and np.isfinite(consistent).all()
    # 128-px views of a plaid shirt alias (about 0.05 mean L1 on [0, 1]); a 3-px shift is clearly worse
    assert np.median(consistent) < 0.07 and np.median(consistent) < 0.75 * np.median(shifted)
