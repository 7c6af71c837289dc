"""Job files: the documented shape, defaults and overrides, path resolution, and every kind
of bad input named by file, case and field."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from champ3d.cli import main
from champ3d.errors import Champ3dInputError
from champ3d.jobs.runner import shard_cases
from champ3d.jobs.spec import load_job, parse_shard

ISSUE_SHAPE = """\
output: runs/ubc_self
defaults: {generator: mesh, size: 512, max_frames: 48, seed: 0}
cases:
  - {name: ubc_self, ref: ubc_frame0.png, driving: ubc.mp4, gt: ubc.mp4}
  - {name: dance_on_photo, ref: photo.jpg, driving: dance.mp4, max_frames: 96}
"""


@pytest.fixture
def job_dir(tmp_path: Path) -> Path:
    """A folder with (empty) input files: parsing checks that inputs exist, not their content."""
    for name in ("ubc_frame0.png", "ubc.mp4", "photo.jpg", "dance.mp4", "backdrop.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "weights").mkdir()
    return tmp_path


def write_job(folder: Path, text: str) -> Path:
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def error_of(path: Path) -> str:
    with pytest.raises(Champ3dInputError) as caught:
        load_job(path)
    return str(caught.value)


def test_the_issue_shape_parses_with_defaults_and_overrides(job_dir):
    job = load_job(write_job(job_dir, ISSUE_SHAPE))
    assert job.output == job_dir / "runs" / "ubc_self"
    first, second = job.cases
    assert (first.name, first.index, first.generator, first.size, first.max_frames, first.seed) == \
        ("ubc_self", 0, "mesh", 512, 48, 0)
    assert first.ref == job_dir / "ubc_frame0.png" and first.gt == job_dir / "ubc.mp4"
    assert second.max_frames == 96 and second.gt is None
    assert first.protocol == "ubc_self" and first.atlas_size == 1024 and first.background == "inpaint"


def test_relative_paths_resolve_against_the_job_folder_not_the_working_directory(job_dir, tmp_path_factory,
                                                                                  monkeypatch):
    path = write_job(job_dir, ISSUE_SHAPE)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    job = load_job(Path(os.path.relpath(path)))
    assert job.cases[1].driving == job_dir / "dance.mp4"
    assert job.output == job_dir / "runs" / "ubc_self"


def test_align_and_fit_mappings_merge_key_by_key(job_dir):
    job = load_job(write_job(job_dir, """\
output: out
defaults: {align: {reground: false}, fit: {pose_iterations: [5, 10], weights: {smooth: 10}}}
cases:
  - {name: a, ref: photo.jpg, driving: dance.mp4, align: {keep_driver_shape: true}, fit: {shape_frames: 3}}
"""))
    case = job.cases[0]
    assert case.align_settings().reground is False and case.align_settings().keep_driver_shape is True
    from champ3d.fitting.fitter import FitSettings

    fit = case.fit_settings(FitSettings())
    assert fit.pose_iterations == (5, 10) and fit.shape_frames == 3
    assert fit.weights["smooth"] == 10 and fit.weights["pose_2d"] == FitSettings().weights["pose_2d"]


def test_unknown_case_key_names_file_case_and_field(job_dir):
    path = write_job(job_dir, ISSUE_SHAPE.replace("max_frames: 96", "max_frame: 96"))
    message = error_of(path)
    assert message.startswith(f"{path}: cases[1] (dance_on_photo).max_frame: unknown key")


@pytest.mark.parametrize("text, where", [
    ("output: o\ncases: [{name: a, ref: photo.jpg, driving: dance.mp4}]\nextra: 1\n", ": extra"),
    ("output: o\ndefaults: {sise: 5}\ncases: [{name: a, ref: photo.jpg, driving: dance.mp4}]\n", ": defaults.sise"),
    ("output: o\ncases: [{name: a, ref: photo.jpg, driving: dance.mp4, align: {flip: true}}]\n",
     ": cases[0] (a).align.flip"),
    ("output: o\ncases: [{name: a, ref: photo.jpg, driving: dance.mp4, fit: {weights: {smoothness: 1}}}]\n",
     ": cases[0] (a).fit.weights.smoothness"),
])
def test_unknown_keys_anywhere_are_named(job_dir, text, where):
    path = write_job(job_dir, text)
    assert error_of(path).startswith(f"{path}{where}: unknown key")


def test_missing_input_names_case_field_and_path(job_dir):
    path = write_job(job_dir, ISSUE_SHAPE.replace("driving: dance.mp4", "driving: gone.mp4"))
    assert error_of(path) == f"{path}: cases[1] (dance_on_photo).driving: {job_dir / 'gone.mp4'} does not exist"


@pytest.mark.parametrize("override, field, problem", [
    ("size: big", "size", "must be an integer >= 8"),
    ("max_frames: 0", "max_frames", "must be an integer >= 1"),
    ("seed: -1", "seed", "must be an integer >= 0"),
    ("generator: sora", "generator", "must be one of ['mesh', 'champ']"),
    ("align: {reground: 1}", "align.reground", "must be true or false"),
    ("fit: {pose_iterations: [5]}", "fit.pose_iterations", "must be a list of two integers"),
    ("atlas_size: 1000", "atlas_size", "must be a power of two"),
    ("background: '#12345'", "background", "a colour must be #RRGGBB"),
    ("background: nowhere.png", "background", "background image not found"),
    ("protocol: no_such_protocol", "protocol", "no protocol named 'no_such_protocol'"),
    ("profile: dirty", "profile", "must be one of ['legacy', 'clean']"),
    ("generator: champ", "weights", "the champ generator needs a weights folder"),
    ("generator: champ, weights: weights, generator_config: {steps: 0}", "generator_config", "steps"),
    ("generator_config: {steps: 2}", "generator_config", "only the champ generator reads it"),
    ("generator: champ, weights: weights, atlas_size: 512", "atlas_size", "only the mesh generator reads it"),
    ("weights: photo.jpg, generator: champ", "weights", "is not a folder"),
    ("ref_frame: 3", "ref_frame", "is a still image"),
    ("camera_path: 'orbit:views=0'", "camera_path", "views: must be a positive integer"),
    ("camera_path: 'orbit:views=12'", "camera_path", "cannot be evaluated against the ground truth"),
    ("camera_path: nowhere.yaml", "camera_path", "nowhere.yaml"),
    ("texture_views: [gone.mp4]", "texture_views[0]", "gone.mp4 does not exist"),
    ("texture_views: ubc.mp4", "texture_views", "must be a non-empty list of strings"),
    ("texture_every: 0", "texture_every", "must be an integer >= 1"),
    ("texture_refine: 1", "texture_refine", "must be true or false"),
    ("generator: champ, weights: weights, texture_views: [ubc.mp4]", "texture_views",
     "only the mesh generator reads it"),
    ("infill_weights: photo.jpg", "infill_weights", "is not a folder"),
    ("infill_weights: weights", "infill_weights", "not a diffusers pipeline folder"),
    ("infill_weights: gone", "infill_weights", "does not exist"),
])
def test_bad_values_name_case_and_field(job_dir, override, field, problem):
    path = write_job(job_dir, f"output: o\ncases:\n  - {{name: a, ref: photo.jpg, driving: dance.mp4, gt: ubc.mp4, "
                              f"{override}}}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: cases[0] (a).{field}: "), message
    assert problem in message, message


def test_defaults_may_hold_keys_of_either_generator(job_dir):
    job = load_job(write_job(job_dir, "output: o\ndefaults: {atlas_size: 512, weights: weights}\ncases:\n"
                                      "  - {name: a, ref: photo.jpg, driving: dance.mp4}\n"
                                      "  - {name: b, ref: photo.jpg, driving: dance.mp4, generator: champ}\n"))
    assert [(c.generator, c.atlas_size) for c in job.cases] == [("mesh", 512), ("champ", 512)]


def test_case_names_must_make_folder_names_and_yaml_errors_are_named(job_dir):
    path = write_job(job_dir, "output: o\ncases: [{name: ../up, ref: photo.jpg, driving: dance.mp4}]\n")
    assert error_of(path).startswith(f"{path}: cases[0] (../up).name: use letters, digits")
    path = write_job(job_dir, "output: o\ncases: [{name: a, name: b}]\n")
    assert error_of(path).startswith(f"{path}: cannot read the job file:")


def test_duplicate_names_and_missing_required_keys(job_dir):
    path = write_job(job_dir, "output: o\ncases:\n  - {name: a, ref: photo.jpg, driving: dance.mp4}\n"
                              "  - {name: a, ref: photo.jpg, driving: dance.mp4}\n")
    assert error_of(path) == f"{path}: cases[1] (a).name: same name as cases[0]"
    path = write_job(job_dir, "output: o\ncases:\n  - {name: a, ref: photo.jpg}\n")
    assert error_of(path) == f"{path}: cases[0] (a).driving: missing required key"
    path = write_job(job_dir, "output: o\ncases: []\n")
    assert error_of(path).startswith(f"{path}: cases: must be a non-empty list")


def test_background_image_and_protocol_file_resolve_against_the_job_folder(job_dir):
    (job_dir / "proto.yaml").write_text((Path(__file__).resolve().parents[1] / "configs" / "protocols" /
                                         "ubc_self.yaml").read_text())
    job = load_job(write_job(job_dir, "output: o\ncases:\n  - {name: a, ref: photo.jpg, driving: dance.mp4, "
                                      "gt: ubc.mp4, background: backdrop.png, protocol: proto.yaml}\n"))
    assert job.cases[0].background == str(job_dir / "backdrop.png")
    assert job.cases[0].protocol == str(job_dir / "proto.yaml")


def test_camera_path_and_texture_views_enter_the_generate_stage(job_dir):
    from champ3d.jobs.generators import GENERATORS

    (job_dir / "turn.yaml").write_text("type: orbit\nviews: 8\nelevation: 10\n")
    job = load_job(write_job(job_dir, "output: o\ncases:\n  - {name: a, ref: photo.jpg, driving: dance.mp4, "
                                      "camera_path: turn.yaml, texture_views: [ubc.mp4, photo.jpg], "
                                      "texture_every: 5, texture_refine: true}\n"))
    case = job.cases[0]
    assert case.camera_path == str(job_dir / "turn.yaml")
    assert case.texture_views == (job_dir / "ubc.mp4", job_dir / "photo.jpg")
    mesh = GENERATORS["mesh"]
    settings = mesh.settings(case, "a")
    assert settings["camera_path"]["views"] == 8 and settings["camera_path"]["elevation"] == 10
    assert (settings["texture_views"], settings["texture_every"], settings["texture_refine"]) == (2, 5, True)
    assert mesh.inputs(case) == {"texture_view_0": job_dir / "ubc.mp4", "texture_view_1": job_dir / "photo.jpg"}


def test_shards_take_cases_by_index_modulo_n(job_dir):
    cases = "".join(f"  - {{name: c{i}, ref: photo.jpg, driving: dance.mp4}}\n" for i in range(7))
    job = load_job(write_job(job_dir, f"output: o\ncases:\n{cases}"))
    shards = [[c.name for c in shard_cases(job, (k, 3))] for k in range(3)]
    assert shards == [["c0", "c3", "c6"], ["c1", "c4"], ["c2", "c5"]]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("3/3", "1", "a/b", "-1/2"):
        with pytest.raises(Champ3dInputError, match="--shard"):
            parse_shard(bad)


def test_cli_reports_a_bad_job_file_with_exit_status_2(job_dir, capsys):
    path = write_job(job_dir, ISSUE_SHAPE.replace("max_frames: 96", "max_frame: 96"))
    assert main(["batch", str(path), "--dry-run"]) == 2
    assert f"champ3d: error: {path}: cases[1] (dance_on_photo).max_frame: unknown key" in capsys.readouterr().err
