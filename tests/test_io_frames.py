"""Reading frames: real video files and images made on disk, plus the real footage fixtures."""
from __future__ import annotations

import os
import tracemalloc
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from champ3d.errors import Champ3dInputError
from champ3d.io import ImageFrames, VideoFrames, natural_sort_key, open_frames, read_image

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("CHAMP3D_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))

H, W = 48, 64


def quadrants(height: int = H, width: int = W) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, white bottom-right: every flip shows."""
    img = np.zeros((height, width, 3), np.uint8)
    img[: height // 2, : width // 2] = (220, 20, 20)
    img[: height // 2, width // 2 :] = (20, 220, 20)
    img[height // 2 :, : width // 2] = (20, 20, 220)
    img[height // 2 :, width // 2 :] = (235, 235, 235)
    return img


def gray_level(i: int) -> int:
    return 16 + 9 * i


def gray_frames(n: int, height: int = H, width: int = W):
    for i in range(n):
        yield np.full((height, width, 3), gray_level(i % 24), np.uint8)


def write_video(path, frames, *, rate=Fraction(25), codec="libx264", fmt="mp4", rotation=None,
                hflip=False, matrix=None, options=None, container_options=None, color_trc=None):
    """Encode frames with PyAV directly (independent of champ3d's writer)."""
    frames = iter(frames)
    first = next(frames)
    with av.open(str(path), "w", format=fmt, options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.height, stream.width = first.shape[:2]
        stream.pix_fmt = "yuv420p"
        if color_trc is not None:
            stream.codec_context.color_trc = color_trc
        if rotation is not None:
            stream.set_display_rotation(rotation, hflip=hflip)
        if matrix is not None:
            stream.set_display_matrix(matrix)
        for frame in (first, *frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return Path(path)


def write_empty_video(path, fmt, codec):
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        container.start_encoding()
    return Path(path)


def cut_in_half(path: Path) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: len(data) // 2])
    return cut


# --------------------------------------------------------------------------- containers


@pytest.mark.parametrize(
    "name, fmt, codec, options",
    [
        ("clip.mp4", "mp4", "libx264", None),
        ("clip.mov", "mov", "libx264", None),
        ("clip.avi", "avi", "mpeg4", {"qscale": "2"}),
        ("clip.webm", "webm", "libvpx-vp9", {"deadline": "realtime", "cpu-used": "8", "crf": "10", "b": "0"}),
        ("clip.mkv", "matroska", "libx264", None),
    ],
)
def test_video_containers_stream_ordered_rgb_frames(tmp_path, name, fmt, codec, options):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    path = write_video(tmp_path / name, gray_frames(24), fmt=fmt, codec=codec, options=options)
    source = open_frames(path)
    assert isinstance(source, VideoFrames)
    assert source.size == (H, W)
    assert source.frame_rate == Fraction(25) and source.fps == 25.0
    assert source.num_frames == 24
    assert source.num_frames_exact == (fmt in ("mp4", "mov", "avi"))
    frames = list(source)
    assert len(frames) == 24
    for i, frame in enumerate(frames):
        assert frame.dtype == np.uint8 and frame.shape == (H, W, 3) and frame.flags["C_CONTIGUOUS"]
        assert abs(float(frame.mean()) - gray_level(i)) < 4, f"frame {i} out of order or badly decoded"
    assert source.num_frames == 24 and source.num_frames_exact


def test_fractional_frame_rate_is_exact(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", gray_frames(12), rate=Fraction(30000, 1001))
    source = open_frames(path)
    assert source.frame_rate == Fraction(30000, 1001)
    assert source.fps == pytest.approx(29.97002997)


def test_max_frames(tmp_path):
    path = write_video(tmp_path / "clip.mp4", gray_frames(20))
    short = open_frames(path, max_frames=5)
    assert short.num_frames == 5
    frames = list(short)
    assert len(frames) == 5 and abs(float(frames[-1].mean()) - gray_level(4)) < 4
    assert len(list(open_frames(path, max_frames=100))) == 20
    with pytest.raises(ValueError, match="max_frames"):
        open_frames(path, max_frames=0)


def test_iteration_restarts_and_early_stop_closes(tmp_path):
    source = open_frames(write_video(tmp_path / "clip.mp4", gray_frames(10)))
    for _ in source:
        break
    assert len(list(source)) == 10
    assert len(list(source)) == 10


# --------------------------------------------------------------------------- rotation


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# The display matrix maps a coded pixel (x right, y down) to x' = a*x + c*y, y' = b*x + d*y
# (ISO/IEC 14496-12). A phone's "rotate=90" is [0, 1, 0, -1, 0, 0, 0, 0, 1] in 16.16 fixed point:
# x' = -y, y' = x, i.e. the picture turns a quarter turn clockwise for display.
PHONE_ROTATE_90 = [0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"matrix": PHONE_ROTATE_90}, lambda img: np.rot90(img, k=-1)),  # clockwise
        ({"rotation": 90}, lambda img: np.rot90(img, k=1)),  # PyAV's angle is counter-clockwise
        ({"rotation": -90}, lambda img: np.rot90(img, k=-1)),
        ({"rotation": 180}, lambda img: img[::-1, ::-1]),
        ({"rotation": 0, "hflip": True}, lambda img: img[:, ::-1]),
        ({"rotation": 90, "hflip": True}, lambda img: np.rot90(img, k=1)[:, ::-1]),
    ],
    ids=["phone-rotate-90", "ccw-90", "cw-90", "180", "mirror", "ccw-90-mirror"],
)
def test_display_matrix_is_applied(tmp_path, kwargs, expected):
    coded = quadrants()
    path = write_video(tmp_path / "rotated.mov", [coded] * 3, fmt="mov", options={"crf": "0"}, **kwargs)
    with av.open(str(path)) as container:  # the matrix really round-trips through the file
        first = next(container.decode(video=0))
        assert any(sd.type.name == "DISPLAYMATRIX" for sd in first.side_data)
    source = open_frames(path)
    want = expected(coded)
    assert source.size == want.shape[:2]
    frames = list(source)
    assert len(frames) == 3
    assert frames[0].shape == want.shape
    assert _mean_abs(frames[0], want) < 6


def test_unrotated_video_is_left_alone(tmp_path):
    coded = quadrants()
    source = open_frames(write_video(tmp_path / "plain.mp4", [coded] * 2, options={"crf": "0"}))
    assert source.size == (H, W)
    assert _mean_abs(next(iter(source)), coded) < 6


# --------------------------------------------------------------------------- bad video input


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 20)
    with pytest.raises(Champ3dInputError, match="not a readable video") as info:
        open_frames(path)
    assert info.value.where == str(path)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(Champ3dInputError, match="empty"):
        open_frames(empty)
    with pytest.raises(Champ3dInputError, match="does not exist"):
        open_frames(tmp_path / "missing.mp4")


@pytest.mark.parametrize("fmt, codec, name", [("mp4", "libx264", "zero.mp4"), ("avi", "mpeg4", "zero.avi")])
def test_zero_frame_video(tmp_path, fmt, codec, name):
    path = write_empty_video(tmp_path / name, fmt, codec)
    assert path.stat().st_size > 0
    with pytest.raises(Champ3dInputError, match="no (video|decodable) frames"):
        open_frames(path)


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=44100)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 44100
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(Champ3dInputError, match="no video stream"):
        open_frames(path)


def test_truncated_mp4_with_index_at_end(tmp_path):
    cut = cut_in_half(write_video(tmp_path / "clip.mp4", gray_frames(40)))
    with pytest.raises(Champ3dInputError, match="truncated"):
        open_frames(cut)


def test_truncated_mp4_with_index_at_start(tmp_path):
    full = write_video(tmp_path / "clip.mp4", gray_frames(40), container_options={"movflags": "+faststart"})
    with pytest.raises(Champ3dInputError, match="truncated: its index reaches byte"):
        open_frames(cut_in_half(full))


def test_damaged_packets_raise_while_decoding(tmp_path):
    full = write_video(tmp_path / "clip.mp4", gray_frames(80), container_options={"movflags": "+faststart"})
    data = full.read_bytes()
    damaged = tmp_path / "damaged.mp4"
    keep = len(data) * 3 // 4
    damaged.write_bytes(data[:keep] + bytes(len(data) - keep))  # the last quarter zeroed, size unchanged
    source = open_frames(damaged)
    with pytest.raises(Champ3dInputError, match="damaged or truncated near frame"):
        list(source)


@pytest.mark.parametrize("name, fmt, codec", [("clip.webm", "webm", "libvpx-vp9"), ("clip.mkv", "matroska", "libx264")])
def test_truncated_matroska_raises_after_the_decodable_frames(tmp_path, name, fmt, codec):
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this FFmpeg build")
    options = {"deadline": "realtime", "cpu-used": "8"} if codec == "libvpx-vp9" else None
    cut = cut_in_half(write_video(tmp_path / name, gray_frames(60), fmt=fmt, codec=codec, options=options))
    source = open_frames(cut)
    assert source.num_frames == 60 and not source.num_frames_exact
    seen = []
    with pytest.raises(Champ3dInputError, match="truncated or damaged: .* about 60 frames but the stream ended after"):
        for frame in source:
            seen.append(frame)
    assert 0 < len(seen) < 45


def test_hdr_transfer_warns(tmp_path):
    path = write_video(tmp_path / "hdr.mp4", gray_frames(2), color_trc=16)  # SMPTE ST 2084 (PQ)
    with pytest.warns(UserWarning, match="HDR video"):
        open_frames(path)


# --------------------------------------------------------------------------- memory


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_streaming_memory_does_not_grow_with_length(tmp_path):
    height, width, n = 128, 160, 900
    frame_bytes = height * width * 3
    frames = (np.full((height, width, 3), (i * 7) % 256, np.uint8) for i in range(n))
    path = write_video(tmp_path / "long.mp4", frames, options={"preset": "ultrafast"})
    source = open_frames(path)

    tracemalloc.start()
    try:
        rss = []
        peaks = []
        for i, frame in enumerate(source):
            if i in (100, n - 1):
                peaks.append(tracemalloc.get_traced_memory()[1])
                rss.append(_rss_bytes())
        assert i == n - 1
    finally:
        tracemalloc.stop()
    # Keeping every frame would add (n - 100) * frame_bytes = 49 MB to both measures.
    assert peaks[1] - peaks[0] < 2 * frame_bytes, peaks
    assert peaks[1] < 8 * frame_bytes, peaks
    assert rss[1] - rss[0] < 80 * frame_bytes, rss


# --------------------------------------------------------------------------- images


def test_image_folder_natural_order(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    names = ["frame10.png", "frame2.png", "frame1.jpg", "Frame3.PNG", "frame11.webp", "frame4.bmp"]
    order = sorted(names, key=natural_sort_key)
    assert order == ["frame1.jpg", "frame2.png", "Frame3.PNG", "frame4.bmp", "frame10.png", "frame11.webp"]
    for i, name in enumerate(order):
        fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP"}[name.rsplit(".", 1)[1].lower()]
        options = {"quality": 95} if fmt == "JPEG" else {"lossless": True} if fmt == "WEBP" else {}
        Image.fromarray(np.full((H, W, 3), gray_level(i), np.uint8)).save(folder / name, format=fmt, **options)
    (folder / "notes.txt").write_text("not a frame")
    (folder / ".hidden.png").write_bytes(b"junk")
    (folder / "sub").mkdir()

    source = open_frames(folder)
    assert isinstance(source, ImageFrames)
    assert [p.name for p in source.files] == order
    assert source.frame_rate is None and source.fps is None
    assert source.num_frames == 6 and source.num_frames_exact and source.size == (H, W)
    frames = list(source)
    assert [round(float(f.mean())) for f in frames] == [gray_level(i) for i in range(6)]
    assert len(list(open_frames(folder, max_frames=2))) == 2


def test_image_folder_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images")
    with pytest.raises(Champ3dInputError, match="holds no images"):
        open_frames(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(mixed / "0.png")
    Image.fromarray(np.zeros((H + 2, W, 3), np.uint8)).save(mixed / "1.png")
    with pytest.raises(Champ3dInputError, match="differs from") as info:
        open_frames(mixed)
    assert info.value.where == str(mixed / "1.png")


def test_single_image_and_exif_orientation(tmp_path):
    stored = quadrants()
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display", as phones write it
    path = tmp_path / "photo.jpg"
    Image.fromarray(stored).save(path, quality=98, exif=exif)
    source = open_frames(path)
    assert source.num_frames == 1 and source.size == (W, H)
    (frame,) = list(source)
    assert _mean_abs(frame, np.rot90(stored, k=-1)) < 4
    assert _mean_abs(read_image(path), frame) == 0


def test_large_portrait_photo(tmp_path):
    big = np.zeros((4000, 6000, 3), np.uint8)
    big[:2000, :3000] = (200, 30, 30)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "dslr.jpg"
    Image.fromarray(big).save(path, quality=90, exif=exif)
    source = open_frames(path)
    assert source.size == (6000, 4000)
    frame = read_image(path)
    assert frame.shape == (6000, 4000, 3) and frame.dtype == np.uint8
    assert frame[100, 3900].tolist() == pytest.approx([200, 30, 30], abs=6)  # top-left corner turned to top-right


def test_grayscale_image_warns_and_becomes_rgb(tmp_path):
    gray = np.arange(H * W, dtype=np.uint32).reshape(H, W) % 256
    path = tmp_path / "gray.png"
    Image.fromarray(gray.astype(np.uint8)).save(path)
    with pytest.warns(UserWarning, match="grayscale image converted to RGB"):
        rgb = read_image(path)
    assert rgb.shape == (H, W, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], gray)


def test_16bit_grayscale_is_scaled(tmp_path):
    values = np.array([[0, 257, 65535, 32896]], np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with pytest.warns(UserWarning, match="16-bit grayscale"):
        rgb = read_image(path)
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 255, 128])


def test_rgba_is_composited_over_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 100, 0, 255)  # opaque
    rgba[0, 1] = (200, 100, 0, 0)  # transparent
    rgba[1, 0] = (200, 100, 0, 128)  # half
    rgba[1, 1] = (0, 0, 0, 51)
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    with pytest.warns(UserWarning, match="composited over white"):
        rgb = read_image(path)
    expected = [
        [[200, 100, 0], [255, 255, 255]],
        [[round((200 * 128 + 255 * 127) / 255), round((100 * 128 + 255 * 127) / 255), round(255 * 127 / 255)],
         [204, 204, 204]],
    ]
    np.testing.assert_array_equal(rgb, expected)


def test_opaque_rgba_and_palette_read_silently(tmp_path):
    colours = quadrants()
    rgba = np.concatenate([colours, np.full((H, W, 1), 255, np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "opaque.png")
    Image.fromarray(colours).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(tmp_path / "palette.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), colours)
        np.testing.assert_array_equal(read_image(tmp_path / "palette.png"), colours)


def test_folder_warns_once_per_kind(tmp_path):
    for i in range(5):
        Image.fromarray(np.full((H, W), 10 * i, np.uint8)).save(tmp_path / f"{i}.png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frames = list(open_frames(tmp_path))
    assert len(frames) == 5
    assert [str(w.message) for w in caught] == [f"{tmp_path} (first: 0.png): grayscale image converted to RGB"]


def test_bad_images(tmp_path):
    fake = tmp_path / "fake.png"
    fake.write_text("not an image")
    with pytest.raises(Champ3dInputError, match="not a readable image"):
        open_frames(fake)

    path = tmp_path / "cut.jpg"
    Image.fromarray(quadrants(480, 640)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    source = open_frames(path)  # the header is intact
    with pytest.raises(Champ3dInputError, match="damaged or truncated image"):
        list(source)

    floats = tmp_path / "float.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(floats)
    with pytest.raises(Champ3dInputError, match="floating-point"):
        read_image(floats)


# --------------------------------------------------------------------------- real footage


def _fixture(name: str) -> Path:
    path = FIXTURES / "video" / name
    if not path.exists():
        pytest.skip(f"real footage not found at {path} (set CHAMP3D_FIXTURES)")
    return path


@pytest.mark.fixtures
@pytest.mark.parametrize(
    "name, frames, size, rate",
    [
        ("ubc_fashion_91BjuE6irxS.mp4", 345, (540, 414), Fraction(30000, 1001)),
        ("dance_unianimate_source.mp4", 150, (1108, 692), Fraction(16)),
    ],
)
def test_real_footage(name, frames, size, rate):
    source = open_frames(_fixture(name))
    assert source.num_frames == frames and source.num_frames_exact
    assert source.size == size
    assert source.frame_rate == rate
    count = 0
    for frame in source:
        assert frame.shape == (*size, 3)
        count += 1
    assert count == frames and source.num_frames == frames
