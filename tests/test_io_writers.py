"""Writing mp4 files and PNG sequences: exact frame rates, colours, odd sizes, all-or-nothing outputs."""
from __future__ import annotations

import os
import zlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.io import PngSequenceWriter, VideoWriter, natural_sort_key, open_frames

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("CHAMP3D_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


def moving_frames(n: int, height: int = 48, width: int = 64):
    """A bright square walking across a dark field, so frames differ and their order shows."""
    for i in range(n):
        frame = np.full((height, width, 3), 30, np.uint8)
        x = (4 * i) % (width - 8)
        frame[8:16, x : x + 8] = (240, 200, 40)
        yield frame


def colour_patches(height: int = 64, width: int = 96) -> np.ndarray:
    """Six saturated 32x32 patches: a BT.601/BT.709 mix-up moves them by 10+ levels."""
    colours = [(230, 30, 30), (30, 230, 30), (30, 30, 230), (230, 230, 30), (30, 230, 230), (128, 128, 128)]
    frame = np.zeros((height, width, 3), np.uint8)
    for k, colour in enumerate(colours):
        r, c = divmod(k, 3)
        frame[32 * r : 32 * r + 32, 32 * c : 32 * c + 32] = colour
    return frame


def leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- VideoWriter


def test_video_round_trip_keeps_fractional_rate_and_frames(tmp_path):
    path = tmp_path / "out.mp4"
    frames = list(moving_frames(30))
    with VideoWriter(path, fps=Fraction(30000, 1001), crf=10) as video:
        for frame in frames:
            video.write(frame)
            assert not path.exists()  # nothing under the final name until it is complete
        assert video.num_frames == 30
    assert leftovers(tmp_path) == ["out.mp4"]
    source = open_frames(path)
    assert source.frame_rate == Fraction(30000, 1001)
    assert source.num_frames == 30 and source.size == (48, 64)
    decoded = list(source)
    assert len(decoded) == 30
    for want, got in zip(frames, decoded):
        assert np.abs(want.astype(int) - got.astype(int)).mean() < 3


@pytest.mark.parametrize(
    "fps, rate",
    [(Fraction(24000, 1001), Fraction(24000, 1001)), ("30000/1001", Fraction(30000, 1001)),
     (30000 / 1001, Fraction(30000, 1001)), (25, Fraction(25)), (12.5, Fraction(25, 2))],
)
def test_frame_rate_forms(tmp_path, fps, rate):
    with VideoWriter(tmp_path / "r.mp4", fps=fps, preset="ultrafast") as video:
        assert video.frame_rate == rate
        for frame in moving_frames(3):
            video.write(frame)
    assert open_frames(tmp_path / "r.mp4").frame_rate == rate


@pytest.mark.parametrize("fps", [0, -25, float("nan"), float("inf"), True])
def test_bad_frame_rates(tmp_path, fps):
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "x.mp4", fps=fps)


def test_bad_encoder_settings(tmp_path):
    with pytest.raises(ValueError, match="crf"):
        VideoWriter(tmp_path / "x.mp4", fps=25, crf=60)
    with pytest.raises(ValueError, match="preset must be one of"):
        VideoWriter(tmp_path / "x.mp4", fps=25, preset="quick")


def test_colours_survive_the_round_trip(tmp_path):
    patches = colour_patches()
    with VideoWriter(tmp_path / "c.mp4", fps=25, crf=0) as video:
        video.write(patches)
    with av.open(str(tmp_path / "c.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.colorspace == 1 and stream.codec_context.color_range == 1  # BT.709, limited
    (got,) = list(open_frames(tmp_path / "c.mp4"))
    centre = (slice(8, 24), slice(8, 24))
    for r in range(2):
        for c in range(3):
            block = (slice(32 * r + 8, 32 * r + 24), slice(32 * c + 8, 32 * c + 24))
            diff = np.abs(got[block].astype(int) - patches[block].astype(int))
            assert diff.max() <= 3, (r, c, got[block][centre].reshape(-1, 3)[0], patches[block][0, 0])


def test_odd_size_is_padded_with_a_warning(tmp_path):
    frames = list(moving_frames(4, height=47, width=63))
    with pytest.warns(UserWarning, match="odd frame size 47x63 padded to 48x64"):
        with VideoWriter(tmp_path / "odd.mp4", fps=25, crf=0) as video:
            for frame in frames:
                video.write(frame)
    decoded = list(open_frames(tmp_path / "odd.mp4"))
    assert decoded[0].shape == (48, 64, 3)
    assert np.abs(decoded[2][:47, :63].astype(int) - frames[2].astype(int)).mean() < 2
    np.testing.assert_allclose(decoded[2][47].astype(int), decoded[2][46].astype(int), atol=4)  # replicated edge


def test_exception_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="render failed"):
        with VideoWriter(tmp_path / "out.mp4", fps=25) as video:
            for i, frame in enumerate(moving_frames(10)):
                video.write(frame)
                if i == 5:
                    raise RuntimeError("render failed")
    assert leftovers(tmp_path) == []


def test_bad_frames_are_refused_and_leave_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
        with VideoWriter(tmp_path / "a.mp4", fps=25) as video:
            video.write(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="but the first was"):
        with VideoWriter(tmp_path / "b.mp4", fps=25) as video:
            video.write(np.zeros((48, 64, 3), np.uint8))
            video.write(np.zeros((64, 48, 3), np.uint8))
    assert leftovers(tmp_path) == []


def test_zero_frames_is_an_error_and_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="no frames were written"):
        with VideoWriter(tmp_path / "empty.mp4", fps=25):
            pass
    assert leftovers(tmp_path) == []


def test_write_outside_with_block_and_reuse_are_refused(tmp_path):
    with pytest.raises(RuntimeError, match="inside a `with` block"):
        VideoWriter(tmp_path / "x.mp4", fps=25).write(np.zeros((2, 2, 3), np.uint8))
    writer = PngSequenceWriter(tmp_path / "frames")
    with writer:
        writer.write(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(RuntimeError, match="inside a `with` block"):
        writer.write(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(RuntimeError, match="writes one output"):
        with writer:
            pass


def test_existing_video_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"previous result")
    with pytest.raises(Champ3dInputError, match="already exists") as info:
        with VideoWriter(path, fps=25) as video:
            video.write(next(moving_frames(1)))
    assert info.value.where == str(path)
    assert path.read_bytes() == b"previous result"
    with VideoWriter(path, fps=25, overwrite=True) as video:
        video.write(next(moving_frames(1)))
    assert open_frames(path).num_frames == 1
    assert leftovers(tmp_path) == ["out.mp4"]


@pytest.mark.fixtures
def test_real_footage_rewrite_keeps_rate_and_count(tmp_path):
    source_path = FIXTURES / "video" / "ubc_fashion_91BjuE6irxS.mp4"
    if not source_path.exists():
        pytest.skip(f"real footage not found at {source_path} (set CHAMP3D_FIXTURES)")
    source = open_frames(source_path)
    with VideoWriter(tmp_path / "copy.mp4", fps=source.frame_rate, preset="ultrafast") as video:
        for frame in source:
            video.write(frame)
    copy = open_frames(tmp_path / "copy.mp4")
    assert copy.frame_rate == Fraction(30000, 1001)
    assert copy.num_frames == 345 and copy.size == (540, 414)
    with av.open(str(tmp_path / "copy.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(345 * 1001 / 30000, abs=1e-3)


# --------------------------------------------------------------------------- PngSequenceWriter


def test_png_sequence_is_lossless_and_named(tmp_path):
    out = tmp_path / "frames"
    frames = list(moving_frames(12, height=33, width=17))
    with PngSequenceWriter(out) as pngs:
        for frame in frames:
            pngs.write(frame)
        assert not out.exists()
    assert leftovers(tmp_path) == ["frames"]
    assert leftovers(out) == [f"{i:04d}.png" for i in range(12)]
    with Image.open(out / "0003.png") as img:
        assert img.mode == "RGB"
    source = open_frames(out)
    assert source.num_frames == 12 and source.frame_rate is None
    for want, got in zip(frames, source):
        np.testing.assert_array_equal(got, want)


def test_png_names_grow_past_four_digits_in_order():
    names = [PngSequenceWriter.frame_name(i) for i in (0, 9, 9999, 10000, 123456)]
    assert names == ["0000.png", "0009.png", "9999.png", "10000.png", "123456.png"]
    assert sorted(reversed(names), key=natural_sort_key) == names


def test_png_compress_level(tmp_path):
    frame = np.tile(np.arange(256, dtype=np.uint8)[None, :, None], (64, 1, 3))
    sizes = {}
    for level in (0, 9):
        with PngSequenceWriter(tmp_path / f"level{level}", compress_level=level) as pngs:
            pngs.write(frame)
        sizes[level] = (tmp_path / f"level{level}" / "0000.png").stat().st_size
        np.testing.assert_array_equal(next(iter(open_frames(tmp_path / f"level{level}"))), frame)
    assert sizes[9] < sizes[0]
    with pytest.raises(ValueError, match="compress_level"):
        PngSequenceWriter(tmp_path / "x", compress_level=12)


def png_rows(path: Path):
    """(colour type, per-row filter bytes) of an 8-bit, non-interlaced PNG, read from its chunks."""
    data = path.read_bytes()
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    colour_type = header[9]
    stride = 1 + width * {0: 1, 2: 3}[colour_type]
    raw = zlib.decompress(idat)
    assert len(raw) == stride * height
    return colour_type, {raw[r * stride] for r in range(height)}


def test_png_grey_and_rgb_frames_are_stored_exactly(tmp_path):
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 10)  # channel order shows
    grey = rng.integers(0, 256, (40, 30), dtype=np.uint8)
    for name, frame in (("rgb", rgb), ("grey", grey), ("view", rgb[::-1, ::2])):
        with PngSequenceWriter(tmp_path / name) as pngs:
            pngs.write(frame)
            pngs.write(frame)
        with Image.open(tmp_path / name / "0001.png") as img:
            assert img.mode == ("L" if frame.ndim == 2 else "RGB")
            np.testing.assert_array_equal(np.asarray(img), frame)
    assert png_rows(tmp_path / "rgb" / "0000.png")[0] == 2 and png_rows(tmp_path / "grey" / "0000.png")[0] == 0


def test_png_default_level_is_the_sub_filter_speed_setting(tmp_path):
    frame = np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (32, 1, 3))
    frame[::3] = 200  # rows the adaptive filters would treat differently
    for level in (1, 6):
        with PngSequenceWriter(tmp_path / f"l{level}", compress_level=level) as pngs:
            pngs.write(frame)
    assert png_rows(tmp_path / "l1" / "0000.png")[1] == {1}  # "sub" on every row
    assert png_rows(tmp_path / "l6" / "0000.png")[1] != {1}
    for bad in (True, 1.0, -1, "1"):
        with pytest.raises(ValueError, match="compress_level"):
            PngSequenceWriter(tmp_path / "x", compress_level=bad)


def test_png_sequence_failure_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with PngSequenceWriter(tmp_path / "frames") as pngs:
            for frame in moving_frames(3):
                pngs.write(frame)
            raise KeyboardInterrupt
    assert leftovers(tmp_path) == []


def test_png_sequence_refuses_to_clobber(tmp_path):
    out = tmp_path / "frames"
    out.mkdir()
    (out / "0000.png").write_bytes(b"old")
    with pytest.raises(Champ3dInputError, match="already exists"):
        with PngSequenceWriter(out) as pngs:
            pngs.write(next(moving_frames(1)))
    assert leftovers(out) == ["0000.png"] and (out / "0000.png").read_bytes() == b"old"
    with PngSequenceWriter(out, overwrite=True) as pngs:
        for frame in moving_frames(2):
            pngs.write(frame)
    assert leftovers(out) == ["0000.png", "0001.png"]
    assert leftovers(tmp_path) == ["frames"]
