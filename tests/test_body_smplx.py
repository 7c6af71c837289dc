"""The SMPL / SMPL-X backend, on model files in smplx's on-disk format written here.

The files are synthetic: a stick-figure skeleton with the real joint counts and the real
vertex counts (the keypoint vertex ids of ``smplx.vertex_ids`` are tied to them), each
vertex scattered around its bone, random shape and pose blend shapes. ``smplx``'s own
classes read the same files and serve as the reference.
"""
from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch

smplx = pytest.importorskip("smplx")

from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES  # noqa: E402
from smplx.utils import Struct  # noqa: E402
from smplx.vertex_ids import vertex_ids as VERTEX_IDS  # noqa: E402

from champ3d.body import make_body  # noqa: E402
from champ3d.body.keypoints import NUM_KEYPOINTS, keypoint_index  # noqa: E402
from champ3d.body.smplx_body import BETA_LIMIT, SMPL_FINGER_FRACTIONS, SmplxBody  # noqa: E402
from champ3d.errors import Champ3dInputError  # noqa: E402
from render.palette import PART_NAMES  # noqa: E402

FLIP = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # y up / +z front -> y down / facing -z

# SMPL's 22 body joints, T-pose, metres, y up, the person's left +x, facing +z
BODY_REST = {
    "pelvis": (0.0, 0.0, 0.0), "left_hip": (0.09, -0.08, 0.0), "right_hip": (-0.09, -0.08, 0.0),
    "spine1": (0.0, 0.10, -0.01), "left_knee": (0.10, -0.48, 0.01), "right_knee": (-0.10, -0.48, 0.01),
    "spine2": (0.0, 0.23, -0.01), "left_ankle": (0.10, -0.88, -0.02), "right_ankle": (-0.10, -0.88, -0.02),
    "spine3": (0.0, 0.29, 0.0), "left_foot": (0.11, -0.94, 0.10), "right_foot": (-0.11, -0.94, 0.10),
    "neck": (0.0, 0.50, 0.0), "left_collar": (0.07, 0.41, 0.0), "right_collar": (-0.07, 0.41, 0.0),
    "head": (0.0, 0.62, 0.02), "left_shoulder": (0.17, 0.44, 0.0), "right_shoulder": (-0.17, 0.44, 0.0),
    "left_elbow": (0.42, 0.43, 0.0), "right_elbow": (-0.42, 0.43, 0.0),
    "left_wrist": (0.67, 0.43, 0.0), "right_wrist": (-0.67, 0.43, 0.0),
}
BODY_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
FINGER_Z = {"index": 0.03, "middle": 0.01, "ring": -0.01, "pinky": -0.03, "thumb": 0.05}
ROOT_OFFSET = np.array([0.01, 0.9, 0.02])  # the pelvis is not at the file's origin


def skeleton(model_type: str):
    """(names, rest joints (J, 3), parents) of a synthetic model."""
    names = list(BODY_REST)
    joints = [BODY_REST[n] for n in names]
    parents = list(BODY_PARENTS)
    if model_type == "smpl":
        for side, sign in (("left", 1), ("right", -1)):
            names.append(f"{side}_hand")
            joints.append((sign * 0.76, 0.43, 0.0))
            parents.append(names.index(f"{side}_wrist"))
        return names, np.array(joints) + ROOT_OFFSET, parents
    head = names.index("head")
    for name, joint in (("jaw", (0.0, 0.57, 0.05)), ("left_eye_smplhf", (0.03, 0.66, 0.08)),
                        ("right_eye_smplhf", (-0.03, 0.66, 0.08))):
        names.append(name)
        joints.append(joint)
        parents.append(head)
    for side, sign in (("left", 1), ("right", -1)):
        for finger in ("index", "middle", "pinky", "ring", "thumb"):
            parent = names.index(f"{side}_wrist")
            for k in range(3):
                start, step = (0.03, 0.025) if finger == "thumb" else (0.09, 0.03)
                names.append(f"{side}_{finger}{k + 1}")
                joints.append((sign * (0.67 + start + step * k), 0.43 - (0.01 if finger == "thumb" else 0.0),
                               FINGER_Z[finger]))
                parents.append(parent)
                parent = len(names) - 1
    assert names == SMPLX_JOINT_NAMES[:55]
    return names, np.array(joints) + ROOT_OFFSET, parents


def special_vertices(model_type: str, names, joints):
    """{vertex id: (position, bone)} for smplx's keypoint vertices, placed where they belong."""
    table = VERTEX_IDS["smplx" if model_type == "smplx" else "smplh"]
    j = lambda n: joints[names.index(n)]
    spots = {
        "nose": ("head", (0.0, -0.03, 0.10)), "leye": ("head", (0.03, 0.03, 0.08)),
        "reye": ("head", (-0.03, 0.03, 0.08)), "lear": ("head", (0.08, 0.0, 0.0)),
        "rear": ("head", (-0.08, 0.0, 0.0)), "LBigToe": ("left_foot", (-0.01, -0.03, 0.09)),
        "LSmallToe": ("left_foot", (0.04, -0.03, 0.06)), "LHeel": ("left_ankle", (0.0, -0.08, -0.05)),
        "RBigToe": ("right_foot", (0.01, -0.03, 0.09)), "RSmallToe": ("right_foot", (-0.04, -0.03, 0.06)),
        "RHeel": ("right_ankle", (0.0, -0.08, -0.05)),
    }
    for side, sign in (("left", 1), ("right", -1)):
        for finger in ("thumb", "index", "middle", "ring", "pinky"):
            if model_type == "smplx":
                spots[f"{side[0]}{finger}"] = (f"{side}_{finger}3", (sign * 0.025, 0.0, 0.0))
            else:
                reach, drop = (0.06, -0.01) if finger == "thumb" else (0.12, 0.0)
                tip = (sign * reach, drop, FINGER_Z[finger])
                spots[f"{side[0]}{finger}"] = (f"{side}_hand", tip)
    return {table[key]: (j(bone) + np.array(offset), names.index(bone)) for key, (bone, offset) in spots.items()}


def model_arrays(model_type: str, seed: int = 0) -> dict:
    """The arrays smplx reads, for a synthetic model; also the design (bone of each vertex)."""
    rng = np.random.default_rng(seed)
    names, joints, parents = skeleton(model_type)
    J = len(names)
    V = 10475 if model_type == "smplx" else 6890
    special = special_vertices(model_type, names, joints)
    bone = np.arange(V) % J
    children = {b: [c for c, p in enumerate(parents) if p == b] for b in range(J)}
    reach = np.array([joints[children[b][0]] - joints[b] if children[b] else np.zeros(3) for b in range(J)])
    v = joints[bone] + rng.uniform(0, 0.8, (V, 1)) * reach[bone] + rng.normal(0, 0.02, (V, 3))
    regular = np.ones(V, bool)
    for vid, (pos, b) in special.items():
        v[vid], bone[vid], regular[vid] = pos, b, False
    regressor = np.zeros((J, V))
    for b in range(J):
        ids = np.nonzero(regular & (bone == b))[0]
        v[ids] += joints[b] - v[ids].mean(0)  # the regressed joint is exactly the designed one
        regressor[b, ids] = 1.0 / len(ids)
    weights = np.zeros((V, J))
    weights[np.arange(V), bone] = 1.0
    parent_of = np.array([max(p, 0) for p in parents])
    blended = regular & (bone > 0)
    weights[np.nonzero(blended)[0], bone[blended]] = 0.8
    weights[np.nonzero(blended)[0], parent_of[bone[blended]]] += 0.2
    faces = np.concatenate([
        np.nonzero(regular & (bone == b))[0][: 3 * (np.sum(regular & (bone == b)) // 3)].reshape(-1, 3)
        for b in range(J)
    ]).astype(np.uint32)
    posedirs = np.zeros((V, 3, 9 * (J - 1)))
    moved = np.concatenate([rng.choice(V, 400, replace=False), list(special)])
    posedirs[moved] = rng.normal(0, 0.003, (len(moved), 3, 9 * (J - 1)))
    arrays = {
        "v_template": v, "f": faces, "J_regressor": regressor, "weights": weights,
        "kintree_table": np.array([[4294967295] + parents[1:], list(range(J))], dtype=np.int64),
        "shapedirs": rng.normal(0, 0.01, (V, 3, 20)), "posedirs": posedirs,
    }
    if model_type == "smplx":
        arrays.update(
            hands_componentsl=np.eye(45), hands_componentsr=np.eye(45),
            hands_meanl=rng.normal(0, 0.1, 45), hands_meanr=rng.normal(0, 0.1, 45),
            lmk_faces_idx=np.arange(51) % len(faces), lmk_bary_coords=np.full((51, 3), 1 / 3),
        )
    return arrays, bone, names


def write_npz(path, arrays, **extra):
    np.savez_compressed(path, **{k: np.asarray(v, np.float32) if v.dtype == np.float64 else v
                                 for k, v in arrays.items()}, **extra)
    return path


@pytest.fixture(scope="module")
def smplx_model(tmp_path_factory):
    arrays, bone, names = model_arrays("smplx")
    folder = tmp_path_factory.mktemp("smplx_model")
    path = write_npz(folder / "SMPLX_NEUTRAL.npz", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = SmplxBody(folder)
    return body, arrays, bone, path


@pytest.fixture(scope="module")
def smpl_model(tmp_path_factory):
    arrays, bone, names = model_arrays("smpl", seed=1)
    path = write_npz(tmp_path_factory.mktemp("smpl_model") / "SMPL_NEUTRAL.npz", arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = SmplxBody(path, model_type="smpl")
    return body, arrays, bone, path


def random_params(body, batch: int, seed: int = 0, scale: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    params = body.zero_params(batch, shape=torch.rand(body.num_shape, generator=g) * 0.6 + 0.2)
    params.global_orient = torch.randn(batch, 3, generator=g) * scale
    params.body_pose = torch.randn(batch, body.num_body_joints, 3, generator=g) * scale
    params.hand_pose = torch.randn(batch, body.num_hand_joints, 3, generator=g) * scale
    params.transl = torch.randn(batch, 3, generator=g) * 0.2 + torch.tensor([0.0, 0.0, 3.0])
    return params


def to_camera(points, root, params):
    """What the body frame convention says: SMPL frame -> camera, about the root."""
    from smplx.lbs import batch_rodrigues

    rotation = batch_rodrigues(params.global_orient) @ FLIP
    return (points - root[:, None]) @ rotation.transpose(1, 2) + params.transl[:, None]


# -- SMPL-X ------------------------------------------------------------------------------
def test_shapes_and_rest_pose_is_the_template_in_the_camera_frame(smplx_model):
    body, arrays, _, _ = smplx_model
    params = body.zero_params(2)
    params.transl[1] = torch.tensor([0.1, -0.2, 2.5])
    out = body(params)
    V = len(arrays["v_template"])
    assert out.vertices.shape == (2, V, 3) and out.keypoints.shape == (2, NUM_KEYPOINTS, 3)
    assert body.faces.shape == (len(arrays["f"]), 3) and body.faces.dtype == torch.int64
    assert body.face_parts.shape == (len(arrays["f"]),)
    template = torch.tensor(arrays["v_template"], dtype=torch.float32)
    pelvis = template[np.nonzero(arrays["J_regressor"][0])[0]].mean(0)
    expected = (template - pelvis) @ FLIP
    torch.testing.assert_close(out.vertices[0], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.vertices[1], expected + params.transl[1], atol=1e-5, rtol=0)
    # camera frame: head up (-y), the person's left at +x, the face towards the camera (-z)
    kp = out.keypoints[0]
    assert kp[keypoint_index("nose"), 1] < kp[keypoint_index("left_hip"), 1] - 0.3
    assert kp[keypoint_index("left_shoulder"), 0] > kp[keypoint_index("right_shoulder"), 0] + 0.2
    assert kp[keypoint_index("nose"), 2] < kp[keypoint_index("left_ear"), 2] - 0.05


def test_matches_smplx_reference_model(smplx_model):
    body, arrays, _, path = smplx_model
    params = random_params(body, 3)
    reference = smplx.SMPLX(str(path), num_betas=body.num_shape, use_pca=False, flat_hand_mean=True,
                            batch_size=3)
    with torch.no_grad():
        ref = reference(betas=body.betas(params.shape).expand(3, -1), body_pose=params.body_pose.reshape(3, -1),
                        left_hand_pose=params.hand_pose[:, :15].reshape(3, -1),
                        right_hand_pose=params.hand_pose[:, 15:].reshape(3, -1),
                        global_orient=torch.zeros(3, 3), transl=torch.zeros(3, 3))
        out = body(params)
        cheap = body.keypoints(params)
    root = ref.joints[:, 0]
    torch.testing.assert_close(out.vertices, to_camera(ref.vertices, root, params), atol=1e-5, rtol=0)
    # smplx's joints: 55 model joints, then nose, eyes, ears, feet and fingertips from vertices
    names = SMPLX_JOINT_NAMES
    for ours, theirs in (("left_shoulder", "left_shoulder"), ("right_knee", "right_knee"),
                         ("nose", "nose"), ("left_ear", "left_ear"), ("right_heel", "right_heel"),
                         ("left_big_toe", "left_big_toe"), ("left_hand_index_mcp", "left_index1"),
                         ("right_hand_thumb_ip", "right_thumb3"), ("right_hand_pinky_dip", "right_pinky3"),
                         ("left_hand_middle_tip", "left_middle"), ("right_hand_wrist", "right_wrist")):
        expected = to_camera(ref.joints[:, [names.index(theirs)]], root, params)[:, 0]
        torch.testing.assert_close(out.keypoints[:, keypoint_index(ours)], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(cheap, out.keypoints, atol=1e-5, rtol=0)


def test_keypoints_differentiable_for_fitting(smplx_model):
    body = smplx_model[0]
    params = random_params(body, 2)
    for t in (params.shape, params.body_pose, params.hand_pose, params.global_orient):
        t.requires_grad_(True)
    body.keypoints(params).square().sum().backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0
               for t in (params.shape, params.body_pose, params.hand_pose, params.global_orient))


def test_shape_values_map_to_betas(smplx_model):
    body = smplx_model[0]
    assert torch.equal(body.betas(body.default_shape()), torch.zeros(body.num_shape))
    assert body.betas(torch.ones(1))[0] == BETA_LIMIT and body.betas(torch.zeros(1))[0] == -BETA_LIMIT
    assert body.num_shape == 10


def test_parts_follow_the_dominant_joint(smplx_model):
    body, arrays, bone, _ = smplx_model
    names = SMPLX_JOINT_NAMES[:55]
    part = {n: n for n in PART_NAMES} | {"jaw": "head", "left_eye_smplhf": "head", "right_eye_smplhf": "head"}
    face_bone = bone[arrays["f"].astype(np.int64)[:, 0]]
    expected = [PART_NAMES.index(part.get(names[b], names[b].split("_")[0] + "_hand")) for b in face_bone]
    assert body.face_parts.tolist() == expected
    assert set(body.face_parts.tolist()) == set(range(len(PART_NAMES)))


def test_missing_uvs_fall_back_to_a_cylinder_with_a_warning(smplx_model):
    body, arrays, _, path = smplx_model
    with pytest.warns(UserWarning, match="cylindrical"):
        SmplxBody(path)
    assert torch.equal(body.face_uv_indices, body.faces)
    uv = body.uv_coords
    assert uv.shape == (len(arrays["v_template"]), 2) and uv.min() >= 0 and uv.max() <= 1
    nose = VERTEX_IDS["smplx"]["nose"]
    assert abs(uv[nose, 0] - 0.5) < 0.05  # the front is the middle of the texture
    head, heel = uv[VERTEX_IDS["smplx"]["lear"], 1], uv[VERTEX_IDS["smplx"]["LHeel"], 1]
    assert head > 0.8 and heel < 0.1  # v points up


def test_uvs_from_the_model_file_or_an_obj(tmp_path, smplx_model):
    _, arrays, _, _ = smplx_model
    F = len(arrays["f"])
    rng = np.random.default_rng(3)
    vt, ft = rng.uniform(0, 1, (3 * F, 2)), np.arange(3 * F).reshape(F, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        body = SmplxBody(write_npz(tmp_path / "with_uv.npz", arrays | {"vt": vt, "ft": ft}))
    torch.testing.assert_close(body.uv_coords, torch.tensor(vt, dtype=torch.float32))
    assert torch.equal(body.face_uv_indices, torch.tensor(ft))

    obj = tmp_path / "uv.obj"
    faces = arrays["f"].astype(np.int64)
    lines = [f"v {x} {y} {z}" for x, y, z in arrays["v_template"]]
    lines += [f"vt {u} {v}" for u, v in vt[::-1]]
    lines += ["f " + " ".join(f"{a + 1}/{len(vt) - t}" for a, t in zip(fv, fu)) for fv, fu in zip(faces, ft)]
    obj.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        body = SmplxBody(tmp_path / "with_uv.npz", uv_obj=obj)
    corner_uv = body.uv_coords[body.face_uv_indices]
    torch.testing.assert_close(corner_uv, torch.tensor(vt[ft], dtype=torch.float32))

    obj.write_text("\n".join(lines[: -1]) + "\n")  # one face short
    with pytest.raises(Champ3dInputError, match="faces are not the model's"):
        SmplxBody(tmp_path / "with_uv.npz", uv_obj=obj)


def test_fitter_recovers_a_known_pose(smplx_model):
    from test_fitting import synthetic_detections

    from champ3d.fitting.camera import CameraIntrinsics
    from champ3d.fitting.fitter import BodyFitter, FitSettings

    body = smplx_model[0]
    T = 3
    camera = CameraIntrinsics.centred(384, 512)
    truth = body.zero_params(T, shape=body.default_shape() + 0.05)
    phase = torch.linspace(0, 1, T)
    names = SMPLX_JOINT_NAMES[1:22]
    for joint, axis, amplitude in (("left_shoulder", 2, -0.8), ("right_elbow", 1, 0.9),
                                   ("left_knee", 0, 0.6), ("right_hip", 0, -0.4)):
        truth.body_pose[:, names.index(joint), axis] = amplitude * phase
    truth.global_orient[:, 1] = 0.3 * phase
    truth.transl[:] = torch.tensor([0.05, 0.1, 30.0])
    detections = synthetic_detections(body, truth, camera)
    settings = FitSettings(shape_frames=T, shape_iterations=(40, 60))
    fit = BodyFitter(body, settings).fit(detections, camera)

    with torch.no_grad():
        true_kp, fit_kp = body.keypoints(truth), body.keypoints(fit.params)
    hips = [keypoint_index("left_hip"), keypoint_index("right_hip")]
    rel = lambda k: k[:, :23] - k[:, hips].mean(1, keepdim=True)
    error = (rel(true_kp) - rel(fit_kp)).norm(dim=-1).mean().item()
    assert error < 0.03, f"mean body joint error {error * 1000:.0f} mm"
    assert np.median(fit.error_2d) < 0.01
    assert fit.backend == "smplx"


# -- SMPL --------------------------------------------------------------------------------
def test_smpl_matches_reference_and_ignores_hand_pose(smpl_model):
    body, arrays, _, _ = smpl_model
    params = random_params(body, 2, seed=4)
    reference = smplx.SMPL("unused", data_struct=Struct(**arrays), num_betas=body.num_shape, batch_size=2)
    pose = torch.cat([params.body_pose.reshape(2, -1), torch.zeros(2, 6)], dim=1)
    with torch.no_grad():
        ref = reference(betas=body.betas(params.shape).expand(2, -1), body_pose=pose,
                        global_orient=torch.zeros(2, 3), transl=torch.zeros(2, 3))
        out = body(params)
        params.hand_pose = torch.randn_like(params.hand_pose)
        again = body(params)
    root = ref.joints[:, 0]
    torch.testing.assert_close(out.vertices, to_camera(ref.vertices, root, params), atol=1e-5, rtol=0)
    torch.testing.assert_close(again.vertices, out.vertices)
    assert out.vertices.shape[1] == 6890 and body.backend == "smpl" and body.num_hand_joints == 30
    # fingers lie on the wrist-to-fingertip line at the documented fractions
    kp = out.keypoints
    wrist, tip = kp[:, keypoint_index("left_hand_wrist")], kp[:, keypoint_index("left_hand_ring_tip")]
    for name, f in zip(("mcp", "pip", "dip"), SMPL_FINGER_FRACTIONS["other"]):
        torch.testing.assert_close(kp[:, keypoint_index(f"left_hand_ring_{name}")], wrist + f * (tip - wrist))
    tip_vertex = to_camera(ref.vertices[:, [VERTEX_IDS["smplh"]["lring"]]], root, params)[:, 0]
    torch.testing.assert_close(tip, tip_vertex, atol=1e-5, rtol=0)
    torch.testing.assert_close(body.keypoints(params), out.keypoints, atol=1e-5, rtol=0)
    assert PART_NAMES.index("left_hand") in body.face_parts.tolist()


# -- files and factory ------------------------------------------------------------------
def test_model_files_are_read_without_running_code(tmp_path, smpl_model):
    _, arrays, _, _ = smpl_model
    # an npz with an object member (SMPL-X releases carry joint2num dictionaries) loads
    extra = np.empty((), dtype=object)
    extra[()] = {"pelvis": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        body = make_body("smplx", model_path=write_npz(tmp_path / "obj.npz", arrays, joint2num=extra),
                         model_type="smpl")
    assert isinstance(body, SmplxBody)

    # a plain pickle of arrays and a scipy sparse regressor (smplx's cleaned SMPL files) loads
    import scipy.sparse

    plain = dict(arrays, J_regressor=scipy.sparse.csc_matrix(arrays["J_regressor"]), bs_type="lrotmin")
    (tmp_path / "SMPL_MALE.pkl").write_bytes(pickle.dumps(plain, protocol=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from_pickle = SmplxBody(tmp_path, model_type="smpl", gender="male")
    torch.testing.assert_close(from_pickle.J_regressor, body.J_regressor)

    # anything else in a pickle is refused before it can run
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(dict(arrays, x=Payload())))
    with pytest.raises(Champ3dInputError, match=r"evil\.pkl: refusing to load builtins\.print"):
        SmplxBody(tmp_path / "evil.pkl", model_type="smpl")


@pytest.mark.parametrize("problem, match", [
    ("missing", "does not exist"),
    ("not_npz", "not a readable .npz"),
    ("wrong_type", r"v_template has shape \(6890, 3\), expected \(10475, 3\)"),
    ("no_weights", "missing weights"),
    ("empty_folder", "folder holds no SMPLX_NEUTRAL.npz"),
])
def test_bad_model_files_name_the_file(tmp_path, smpl_model, problem, match):
    _, arrays, _, _ = smpl_model
    path = tmp_path / "model.npz"
    if problem == "not_npz":
        path.write_text("hello")
    elif problem == "wrong_type":
        write_npz(path, arrays)
    elif problem == "no_weights":
        write_npz(path, {k: v for k, v in arrays.items() if k != "weights"})
    elif problem == "empty_folder":
        path = tmp_path
    with pytest.raises(Champ3dInputError, match=match) as error:
        SmplxBody(path)
    assert str(path) in str(error.value)


def test_make_body_rejects_unknown_backends():
    with pytest.raises(ValueError, match="unknown body backend 'smpl'"):
        make_body("smpl")
    with pytest.raises(ValueError, match="takes no options"):
        make_body("anny", model_path="x")
