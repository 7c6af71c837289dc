"""Bad input through the command line.

Unusable input exits with status 2 and one ``champ3d: error: FILE: PROBLEM`` line, and
leaves nothing behind: no output file or folder, no ``.partial-`` leftover. Odd but
usable pictures (grayscale, transparent, very large, several people) are fitted, with a
warning where the picture was changed or a choice was made.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

from champ3d.cli import main

REPO = Path(__file__).resolve().parents[1]
PHOTO = "images/deepfashion_00004955.jpg"


# -- inputs ------------------------------------------------------------------------------
def write_text_as_video(path: Path) -> Path:
    path.write_text("this is a shopping list, not a video\n")
    return path


def write_empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def write_video_without_frames(path: Path, keep_stream: bool) -> Path:
    """An mp4 holding no frames: with its video stream declared (a fragmented mp4 writes
    its tracks before any sample), or without (a plain mp4 drops an empty track)."""
    options = {"movflags": "frag_keyframe+empty_moov"} if keep_stream else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        container.start_encoding()
        container.mux(stream.encode(None))
    with av.open(str(path)) as check:
        assert len(check.streams.video) == int(keep_stream)
        assert all(s.frames == 0 for s in check.streams.video)
    return path


def write_image(path: Path, pixels: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(pixels, mode=mode).save(path)
    return path


def photo(real_fixtures: Path) -> np.ndarray:
    return np.asarray(Image.open(real_fixtures / PHOTO).convert("RGB"))


# -- running the command -----------------------------------------------------------------
def run_in_process(argv, capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # main() replaces it
    capsys.readouterr()
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def run_process(argv) -> tuple[int, str, int]:
    """Run ``champ3d`` in a child process: (exit status, stderr, peak resident memory in bytes)."""
    with subprocess.Popen([sys.executable, "-m", "champ3d.cli", *map(str, argv)], cwd=REPO,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as child:
        stderr = child.stderr.read()
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
    return child.returncode, stderr, usage.ru_maxrss * 1024


def lines_starting(stderr: str, prefix: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith(prefix)]


def assert_clean_failure(code: int, stderr: str, path: Path, problem: str, out_parent: Path, inputs: Path):
    errors = lines_starting(stderr, "champ3d: error:")
    assert code == 2, stderr
    assert len(errors) == 1, stderr
    assert errors[0].startswith(f"champ3d: error: {path}: ") and problem in errors[0], errors[0]
    assert list(out_parent.iterdir()) == [], "output left behind"
    assert not [p for p in inputs.iterdir() if ".partial-" in p.name]


@pytest.fixture
def folders(tmp_path):
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    return inputs, out


# -- unusable input: exit 2, one line, nothing written ---------------------------------
@pytest.mark.parametrize("make, problem", [
    (lambda d: write_text_as_video(d / "clip.mp4"), "not a readable video"),
    (lambda d: write_empty(d / "clip.mp4"), "file is empty"),
    (lambda d: write_video_without_frames(d / "clip.mp4", keep_stream=True), "no decodable frames"),
    (lambda d: write_video_without_frames(d / "clip.mp4", keep_stream=False), "no video stream"),
    (lambda d: write_image(d / "grey.png", np.full((480, 640, 3), 128, np.uint8)), "no person found"),
    (lambda d: write_image(d / "noise.png", np.random.default_rng(0).integers(0, 256, (480, 640, 3), np.uint8)),
     "no person found"),
    (lambda d: write_text_as_video(d / "photo.jpg"), "not a readable image"),
], ids=["text-as-mp4", "empty-file", "mp4-stream-without-frames", "mp4-without-stream", "grey-image",
        "noise-image", "text-as-jpg"])
def test_fit_refuses_unusable_input(folders, capsys, monkeypatch, make, problem):
    inputs, out = folders
    path = make(inputs)
    code, stderr = run_in_process(["fit", path, "--out", out / "fit"], capsys, monkeypatch)
    assert_clean_failure(code, stderr, path, problem, out, inputs)


def test_exit_status_of_the_real_process(folders):
    inputs, out = folders
    path = write_text_as_video(inputs / "dance.mp4")
    code, stderr, _ = run_process(["fit", path, "--out", out / "fit"])
    assert_clean_failure(code, stderr, path, "not a readable video", out, inputs)


def test_guidance_refuses_an_unreadable_reference(folders, capsys, monkeypatch):
    inputs, out = folders
    ref = write_text_as_video(inputs / "ref.png")
    driving = write_image(inputs / "grey.png", np.full((64, 48, 3), 128, np.uint8))
    code, stderr = run_in_process(["guidance", "--ref", ref, "--driving", driving, "--out", out / "guide"],
                                  capsys, monkeypatch)
    assert_clean_failure(code, stderr, ref, "not a readable image", out, inputs)


@pytest.mark.fixtures
def test_guidance_refuses_a_bad_driving_video_and_keeps_nothing(folders, real_fixtures, capsys, monkeypatch):
    inputs, out = folders
    driving = write_text_as_video(inputs / "dance.mp4")
    code, stderr = run_in_process(["guidance", "--ref", real_fixtures / PHOTO, "--driving", driving,
                                   "--out", out / "guide"], capsys, monkeypatch)
    assert_clean_failure(code, stderr, driving, "not a readable video", out, inputs)


def test_conversion_warning_names_the_file_once(folders, capsys, monkeypatch):
    inputs, out = folders
    path = write_image(inputs / "grey.png", np.full((480, 640), 128, np.uint8), mode="L")
    with pytest.warns(UserWarning) as caught:
        code, stderr = run_in_process(["fit", path, "--out", out / "fit"], capsys, monkeypatch)
    assert_clean_failure(code, stderr, path, "no person found", out, inputs)
    notes = [str(w.message) for w in caught if "grayscale" in str(w.message)]
    assert notes == [f"{path}: grayscale image converted to RGB"]


# -- odd but usable pictures: fitted, with a warning -----------------------------------
def fit_in_child(folder: Path, name: str, pixels: np.ndarray, mode: str | None = None):
    """Write the picture, fit it with ``champ3d fit``: (status, stderr, peak memory, fit path)."""
    path = write_image(folder / name, pixels, mode)
    out = folder / f"{Path(name).stem}-fit"
    code, stderr, peak = run_process(["fit", path, "--out", out])
    return code, stderr, peak, out


def assert_fitted(run, warning: str | None = None):
    code, stderr, _, out = run
    assert code == 0, stderr
    assert out.with_suffix(".json").is_file() and out.with_suffix(".safetensors").is_file()
    if warning is not None:
        assert any(warning in line for line in lines_starting(stderr, "champ3d: warning:")), stderr


@pytest.fixture(scope="module")
def usable(real_fixtures, tmp_path_factory):
    """Fits of the grayscale, transparent, 4000x6000 and two-person versions of one photo."""
    folder = tmp_path_factory.mktemp("usable")
    rgb = photo(real_fixtures)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:40, :, 3] = 0  # a transparent band over the top of the picture
    runs = {
        "grayscale": fit_in_child(folder, "gray.png", np.asarray(Image.fromarray(rgb).convert("L")), "L"),
        "rgba": fit_in_child(folder, "rgba.png", rgba, "RGBA"),
        "large": fit_in_child(folder, "large.jpg", cv2.resize(rgb, (4000, 6000), interpolation=cv2.INTER_LINEAR)),
        "two_people": fit_in_child(folder, "two.jpg", np.hstack([rgb, rgb])),
    }
    return runs


@pytest.mark.fixtures
def test_grayscale_photo_is_fitted_with_a_warning(usable):
    assert_fitted(usable["grayscale"], "grayscale image converted to RGB")


@pytest.mark.fixtures
def test_transparent_photo_is_fitted_with_a_warning(usable):
    assert_fitted(usable["rgba"], "transparent pixels composited over white")


@pytest.mark.fixtures
def test_large_photo_is_fitted_without_a_memory_blow_up(usable):
    assert_fitted(usable["large"])
    frame_bytes = 4000 * 6000 * 3
    extra = usable["large"][2] - usable["grayscale"][2]  # same pipeline, a 29x larger picture
    assert extra < 4 * frame_bytes, \
        f"peak memory grew by {extra / 2**20:.0f} MB for a {frame_bytes / 2**20:.0f} MB frame"


@pytest.mark.fixtures
def test_two_people_are_fitted(usable):
    assert_fitted(usable["two_people"])


@pytest.mark.fixtures
def test_two_people_give_a_warning(usable):
    assert_fitted(usable["two_people"], "several people")
