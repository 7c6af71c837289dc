"""SMPL and SMPL-X (licensed model files the user brings) behind the :class:`BodyModel` interface.

The skinning is the ``smplx`` package's (``smplx.lbs``); the model file is read here,
without running code from it: ``.npz`` files with ``allow_pickle=False`` (object members
such as SMPL-X's ``joint2num`` dictionaries are skipped), ``.pkl`` files through an
unpickler that only rebuilds numpy arrays and scipy sparse matrices. Pickles holding
``chumpy`` objects (the original SMPL downloads) are refused with a hint: convert them
first (smplx's ``tools/clean_ch.py``). A folder is searched for smplx's file names,
``SMPLX_<GENDER>.npz`` / ``SMPL_<GENDER>.npz``, then ``.pkl``.

Frames. The model's native frame is y up, the body facing +z, the person's left +x,
metres. :data:`SMPL_TO_BODY` (a half turn about x) turns it into the body frame of
:mod:`champ3d.body.base`; the root (the pelvis joint of the shaped body) is placed at
``transl`` after ``global_orient``.

Parameters (:class:`BodyParams`):

* ``shape`` (S = ``num_betas``): each value in [0, 1], ``betas = BETA_LIMIT · (2·shape − 1)``,
  so 0.5 is the mean body and the box [0, 1] spans ±:data:`BETA_LIMIT` standard
  deviations of the shape space (the fitter optimises shapes in (0, 1));
  :meth:`SmplxBody.betas` converts;
* ``body_pose`` (21 joints): the model's joints 1..21 in its own order (left hip, right hip,
  spine1, left knee, ... right wrist), axis-angle in the model's native frame;
* ``hand_pose`` (30 joints): SMPL-X's 15 finger joints of the left hand, then of the right,
  in smplx's order (index1-3, middle1-3, pinky1-3, ring1-3, thumb1-3), relative to the
  *flat* hand of the template (the file's mean hand pose is not added). SMPL has no
  fingers: ``hand_pose`` is accepted and ignored, and its two hand joints stay at rest.
  Jaw, eyes and facial expression stay at rest.

Keypoints (:data:`champ3d.body.keypoints.KEYPOINT_NAMES`): shoulders, elbows, wrists, hips,
knees and ankles are the model's joints; nose, eyes, ears, toes, heels and the five
fingertips are the vertices smplx uses for them (``smplx.vertex_ids``: ``smplx`` for
SMPL-X, ``smplh`` for SMPL, whose topologies they are tied to). SMPL-X finger joints are
its finger joints (thumb1/2/3 = CMC/MCP/IP, other fingers 1/2/3 = MCP/PIP/DIP). SMPL's
rigid hands have no finger joints, so those keypoints are placed on the straight line from
the wrist to each fingertip at :data:`SMPL_FINGER_FRACTIONS` (an approximation).

Parts: a vertex's part is its dominant skinning joint's (SMPL's 24 joints are Champ's
parts; SMPL-X's jaw and eyes count as head, its finger joints as the hands), a triangle's
the majority of its corners'. UVs: an OBJ given as ``uv_obj`` (same faces, ``f v/vt``),
else the ``vt``/``ft`` arrays of the model file, else a cylindrical projection about the
body's vertical axis (with a warning): ``u = 0.5 + atan2(x, z) / 2π`` (the front at
u = 0.5, the seam at the back, where triangles spanning it stretch across the texture),
``v`` the height from the lowest (0) to the highest (1) template vertex.
"""
from __future__ import annotations

import math
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES
from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, lbs
from smplx.vertex_ids import vertex_ids as SMPLX_VERTEX_IDS

from champ3d.body.base import BodyModel, BodyOutput, BodyParams, face_majority
from champ3d.body.keypoints import FINGERS, KEYPOINT_NAMES
from champ3d.errors import Champ3dInputError

SMPL_TO_BODY = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
BETA_LIMIT = 5.0

MODEL_TYPES = {
    # type: (file stem, joints, vertices, smplx vertex-id table)
    "smplx": ("SMPLX", 55, 10475, "smplx"),
    "smpl": ("SMPL", 24, 6890, "smplh"),
}
GENDERS = ("neutral", "male", "female")
REQUIRED_ARRAYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")

#: SMPL only: where a finger's three inner keypoints sit on the wrist-to-fingertip line.
SMPL_FINGER_FRACTIONS = {"thumb": (0.2, 0.45, 0.72), "other": (0.5, 0.72, 0.87)}

NUM_BODY_JOINTS = 21
NUM_HAND_JOINTS = 30
_SMPLX_FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")
_SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
_BODY_JOINT_KEYPOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
_BODY_VERTEX_KEYPOINTS = {
    "nose": "nose", "left_eye": "leye", "right_eye": "reye", "left_ear": "lear", "right_ear": "rear",
    "left_big_toe": "LBigToe", "right_big_toe": "RBigToe", "left_small_toe": "LSmallToe",
    "right_small_toe": "RSmallToe", "left_heel": "LHeel", "right_heel": "RHeel",
}


class SmplxBody(BodyModel):
    """SMPL-X or SMPL from a local model file (see the module notes for every convention).

    Args:
        model_path: the model file (``.npz`` or ``.pkl``) or a folder holding smplx's names.
        model_type: ``"smplx"`` or ``"smpl"``.
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (picks the file in a folder).
        num_betas: shape coefficients used (at most those the file holds).
        uv_obj: an OBJ with the texture layout of this topology, if the file has none.

    Raises:
        Champ3dInputError: the file is missing, unreadable, unsafe to read, or not a
            ``model_type`` model.
    """

    #: ``body_pose`` indices of the knees (flexion is +x, as for every backend).
    knee_joints = (3, 4)

    def __init__(self, model_path: os.PathLike | str, model_type: str = "smplx", gender: str = "neutral",
                 num_betas: int = 10, uv_obj: os.PathLike | str | None = None):
        super().__init__()
        if model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {sorted(MODEL_TYPES)}, got {model_type!r}")
        if gender not in GENDERS:
            raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
        self.backend = model_type
        self.model_file = _model_file(Path(model_path), model_type, gender)
        arrays = load_model_arrays(self.model_file)
        _, num_joints, num_vertices, vertex_table = MODEL_TYPES[model_type]
        _check_arrays(self.model_file, arrays, model_type, num_joints, num_vertices)

        self.num_body_joints = NUM_BODY_JOINTS
        self.num_hand_joints = NUM_HAND_JOINTS
        self.num_joints = num_joints
        shapedirs = arrays["shapedirs"]
        self.num_shape = min(int(num_betas), shapedirs.shape[2])
        f32 = lambda a: torch.as_tensor(np.asarray(a, np.float32))
        v_template, faces = f32(arrays["v_template"]), torch.as_tensor(arrays["f"].astype(np.int64))
        shapedirs = f32(shapedirs[:, :, : self.num_shape])
        posedirs = f32(arrays["posedirs"]).reshape(num_vertices * 3, -1).T.contiguous()  # (P, V*3)
        regressor, weights = f32(arrays["J_regressor"]), f32(arrays["weights"])
        parents = torch.as_tensor(arrays["kintree_table"][0].astype(np.int64))
        parents[0] = -1
        for name, value in (("v_template", v_template), ("shapedirs", shapedirs), ("posedirs", posedirs),
                            ("J_regressor", regressor), ("lbs_weights", weights), ("parents", parents),
                            ("faces", faces), ("_smpl_to_body", SMPL_TO_BODY.clone())):
            self.register_buffer(name, value)

        joint_names = _SMPL_JOINT_NAMES if model_type == "smpl" else tuple(SMPLX_JOINT_NAMES[:num_joints])
        self._build_keypoints(joint_names, SMPLX_VERTEX_IDS[vertex_table], model_type)
        self._build_parts(joint_names)
        uv_coords, face_uv_indices = _uv_layout(arrays, faces, v_template, self.model_file, uv_obj)
        self.register_buffer("uv_coords", uv_coords)
        self.register_buffer("face_uv_indices", face_uv_indices)

    # -- construction ------------------------------------------------------------------
    def _build_keypoints(self, joint_names, vertex_ids: dict, model_type: str) -> None:
        """Each keypoint is a fixed blend of posed joints and posed vertices:
        ``keypoints = M @ [joints; vertices[keypoint_vertices]]``."""
        sources: dict[str, dict] = {name: {("joint", name): 1.0} for name in _BODY_JOINT_KEYPOINTS}
        sources.update({name: {("vertex", key): 1.0} for name, key in _BODY_VERTEX_KEYPOINTS.items()})
        for side in ("left", "right"):
            wrist = ("joint", f"{side}_wrist")
            sources[f"{side}_hand_wrist"] = {wrist: 1.0}
            for finger in FINGERS:
                tip = ("vertex", f"{side[0]}{finger}")
                inner = ("cmc", "mcp", "ip") if finger == "thumb" else ("mcp", "pip", "dip")
                sources[f"{side}_hand_{finger}_tip"] = {tip: 1.0}
                for k, joint in enumerate(inner):
                    if model_type == "smplx":
                        sources[f"{side}_hand_{finger}_{joint}"] = {("joint", f"{side}_{finger}{k + 1}"): 1.0}
                    else:
                        f = SMPL_FINGER_FRACTIONS["thumb" if finger == "thumb" else "other"][k]
                        sources[f"{side}_hand_{finger}_{joint}"] = {wrist: 1.0 - f, tip: f}
        vertex_keys = sorted({key for blend in sources.values() for kind, key in blend if kind == "vertex"})
        columns = {("joint", n): i for i, n in enumerate(joint_names)}
        columns.update({("vertex", key): len(joint_names) + i for i, key in enumerate(vertex_keys)})
        matrix = torch.zeros(len(KEYPOINT_NAMES), len(columns))
        for row, name in enumerate(KEYPOINT_NAMES):
            for source, weight in sources[name].items():
                matrix[row, columns[source]] = weight
        ids = torch.tensor([vertex_ids[key] for key in vertex_keys])
        self.register_buffer("_keypoint_matrix", matrix)  # (K, J + Kv)
        self.register_buffer("_keypoint_vertices", ids)  # (Kv,)
        # the rows of the model the keypoint vertices need, for keypoints() without the mesh
        self.register_buffer("_joint_template", self.J_regressor @ self.v_template)  # (J, 3)
        self.register_buffer("_joint_shapedirs", torch.einsum("jv,vcs->jcs", self.J_regressor, self.shapedirs))
        cols = (ids[:, None] * 3 + torch.arange(3)).reshape(-1)
        self.register_buffer("_kv_posedirs", self.posedirs[:, cols].contiguous())  # (P, Kv*3)

    def _build_parts(self, joint_names) -> None:
        from render.palette import PART_NAMES

        def part(joint: str) -> str:
            if joint in PART_NAMES:
                return joint
            if joint in ("jaw", "left_eye_smplhf", "right_eye_smplhf"):
                return "head"
            return f"{joint.split('_')[0]}_hand"  # SMPL-X finger joints

        joint_part = torch.tensor([PART_NAMES.index(part(name)) for name in joint_names])
        vertex_parts = joint_part[self.lbs_weights.argmax(dim=1)]
        self.register_buffer("vertex_parts", vertex_parts)
        self.register_buffer("face_parts", face_majority(vertex_parts[self.faces]))

    # -- parameters --------------------------------------------------------------------
    def betas(self, shape: torch.Tensor) -> torch.Tensor:
        """champ3d shape values in [0, 1] -> smplx betas."""
        return BETA_LIMIT * (2.0 * shape - 1.0)

    def default_shape(self) -> torch.Tensor:
        """The mean body (all betas 0)."""
        return torch.full((self.num_shape,), 0.5, device=self.v_template.device)

    def shape_prior_scale(self) -> torch.Tensor:
        """Scales a shape deviation to betas, so the fitter's prior is SMPLify's ``|betas|²``."""
        return torch.full((self.num_shape,), 2.0 * BETA_LIMIT, device=self.v_template.device)

    def _full_pose(self, params: BodyParams) -> torch.Tensor:
        """(B, J, 3) smplx pose with the root at rest (the global turn is applied afterwards)."""
        pose = params.body_pose.new_zeros(params.batch_size, self.num_joints, 3)
        pose[:, 1 : 1 + NUM_BODY_JOINTS] = params.body_pose
        if self.backend == "smplx":  # after the jaw and the eyes (22..24) come the fingers
            pose[:, 25:] = params.hand_pose
        return pose

    def _to_camera(self, points: torch.Tensor, root: torch.Tensor, params: BodyParams) -> torch.Tensor:
        rotation = batch_rodrigues(params.global_orient) @ self._smpl_to_body
        return (points - root[:, None]) @ rotation.transpose(1, 2) + params.transl[:, None]

    def _batch_betas(self, params: BodyParams) -> torch.Tensor:
        return self.betas(params.shape).expand(params.batch_size, -1)

    # -- model -------------------------------------------------------------------------
    def keypoints(self, params: BodyParams) -> torch.Tensor:
        """The keypoints from the joints and the few keypoint vertices alone (no full mesh)."""
        batch = params.batch_size
        betas = self._batch_betas(params)
        joints = self._joint_template + blend_shapes(betas, self._joint_shapedirs)
        rotations = batch_rodrigues(self._full_pose(params).reshape(-1, 3)).reshape(batch, -1, 3, 3)
        posed_joints, transforms = batch_rigid_transform(rotations, joints, self.parents, dtype=joints.dtype)
        ids = self._keypoint_vertices
        pose_feature = (rotations[:, 1:] - torch.eye(3, dtype=joints.dtype, device=joints.device)).reshape(batch, -1)
        rest = (self.v_template[ids] + blend_shapes(betas, self.shapedirs[ids])
                + (pose_feature @ self._kv_posedirs).reshape(batch, -1, 3))
        skin = torch.einsum("vj,bjxy->bvxy", self.lbs_weights[ids], transforms)
        vertices = (skin[..., :3, :3] @ rest[..., None])[..., 0] + skin[..., :3, 3]
        keypoints = self._keypoint_matrix @ torch.cat((posed_joints, vertices), dim=1)
        return self._to_camera(keypoints, posed_joints[:, 0], params)

    def forward(self, params: BodyParams) -> BodyOutput:
        vertices, joints = lbs(
            self._batch_betas(params), self._full_pose(params).reshape(params.batch_size, -1),
            self.v_template, self.shapedirs, self.posedirs, self.J_regressor, self.parents, self.lbs_weights,
        )
        keypoints = self._keypoint_matrix @ torch.cat((joints, vertices[:, self._keypoint_vertices]), dim=1)
        root = joints[:, 0]
        return BodyOutput(
            vertices=self._to_camera(vertices, root, params),
            keypoints=self._to_camera(keypoints, root, params),
        )


# -- model files -------------------------------------------------------------------------
def _model_file(path: Path, model_type: str, gender: str) -> Path:
    if not path.exists():
        raise Champ3dInputError(path, f"{model_type} model file or folder does not exist")
    if path.is_file():
        return path
    stem = f"{MODEL_TYPES[model_type][0]}_{gender.upper()}"
    for suffix in (".npz", ".pkl"):
        if (path / (stem + suffix)).is_file():
            return path / (stem + suffix)
    raise Champ3dInputError(path, f"folder holds no {stem}.npz or {stem}.pkl")


def load_model_arrays(path: os.PathLike | str) -> dict[str, np.ndarray]:
    """The numeric arrays of an smplx model file (``.npz`` or ``.pkl``), read without running code."""
    path = Path(path)
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                arrays = {}
                for key in archive.files:
                    try:
                        arrays[key] = archive[key]
                    except ValueError:  # an object member (e.g. joint2num): needs pickle, not needed
                        continue
                return arrays
        except (OSError, EOFError, ValueError) as err:
            raise Champ3dInputError(path, f"not a readable .npz model file ({err})") from None
    if path.suffix.lower() == ".pkl":
        try:
            with open(path, "rb") as file:
                data = _ArrayUnpickler(file, path).load()
        except Champ3dInputError:
            raise
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as err:
            raise Champ3dInputError(path, f"not a readable .pkl model file ({err})") from None
        if not isinstance(data, dict):
            raise Champ3dInputError(path, "a .pkl model file must hold a dictionary of arrays")
        dense = {str(k): _dense(v) for k, v in data.items()}
        return {k: v for k, v in dense.items() if v is not None}
    raise Champ3dInputError(path, "model files are .npz or .pkl")


def _dense(value):
    """A numeric numpy array for ``value``, or None for what a model needs no array of."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value
    if hasattr(value, "toarray"):  # scipy sparse (SMPL's J_regressor)
        return np.asarray(value.toarray())
    return None


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy arrays, scalars and scipy sparse matrices; refuses every other global."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor"),
        ("__builtin__", "object"), ("builtins", "object"),
        ("_codecs", "encode"),  # how protocol-2 pickles written by Python 3 store bytes
    }
    _SPARSE = ("csc_matrix", "csr_matrix", "coo_matrix")

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            module = {"copy_reg": "copyreg", "__builtin__": "builtins"}.get(module, module)
            return super().find_class(module, name)
        if module.startswith("scipy.sparse") and name in self._SPARSE:
            import scipy.sparse

            return getattr(scipy.sparse, name)
        if module.startswith("chumpy"):
            raise Champ3dInputError(
                self._path, "the file stores chumpy objects; convert it to plain arrays first "
                "(smplx's tools/clean_ch.py) or use the .npz release")
        raise Champ3dInputError(self._path, f"refusing to load {module}.{name} from a pickle (only arrays are read)")


def _check_arrays(path: Path, arrays: dict, model_type: str, num_joints: int, num_vertices: int) -> None:
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise Champ3dInputError(path, f"not an smplx model file: missing {', '.join(missing)}")
    expected = {
        "v_template": (num_vertices, 3),
        "J_regressor": (num_joints, num_vertices),
        "weights": (num_vertices, num_joints),
        "posedirs": (num_vertices, 3, 9 * (num_joints - 1)),
        "kintree_table": (2, num_joints),
    }
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise Champ3dInputError(
                path, f"{key} has shape {arrays[key].shape}, expected {shape} for a {model_type} model "
                f"({num_vertices} vertices, {num_joints} joints)")
    shapedirs, faces = arrays["shapedirs"], arrays["f"]
    if shapedirs.ndim != 3 or shapedirs.shape[:2] != (num_vertices, 3):
        raise Champ3dInputError(path, f"shapedirs has shape {shapedirs.shape}, expected ({num_vertices}, 3, S)")
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= num_vertices:
        raise Champ3dInputError(path, "f must be (F, 3) vertex indices")


# -- texture layout ----------------------------------------------------------------------
def _uv_layout(arrays: dict, faces: torch.Tensor, v_template: torch.Tensor, model_file: Path,
               uv_obj) -> tuple[torch.Tensor, torch.Tensor]:
    if uv_obj is not None:
        return read_obj_uvs(uv_obj, faces)
    if "vt" in arrays and "ft" in arrays:
        vt, ft = arrays["vt"], arrays["ft"]
        if ft.shape != tuple(faces.shape) or ft.min() < 0 or ft.max() >= len(vt):
            raise Champ3dInputError(model_file, f"ft {ft.shape} does not index vt {vt.shape} face by face")
        return torch.as_tensor(vt[:, :2], dtype=torch.float32), torch.as_tensor(ft.astype(np.int64))
    warnings.warn(
        f"{model_file}: the model file has no UV layout and none was given; using a cylindrical "
        "projection (textures will not match the official layout)", stacklevel=3)
    return cylindrical_uvs(v_template), faces.clone()


def cylindrical_uvs(vertices: torch.Tensor) -> torch.Tensor:
    """(V, 2) per-vertex UVs of a y-up, +z-facing mesh (module notes)."""
    u = 0.5 + torch.atan2(vertices[:, 0], vertices[:, 2]) / (2 * math.pi)
    y = vertices[:, 1]
    v = (y - y.min()) / (y.max() - y.min()).clamp(min=1e-9)
    return torch.stack((u, v), dim=1).float()


def read_obj_uvs(path: os.PathLike | str, faces: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``vt`` and per-face ``vt`` indices of an OBJ whose ``f v/vt`` faces are ``faces``.

    Raises:
        Champ3dInputError: unreadable, no ``vt``, or faces that differ from the model's.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as err:
        raise Champ3dInputError(path, f"cannot read the UV file ({err.strerror})") from None
    uvs, face_vertices, face_uvs = [], [], []
    try:
        for line in lines:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "vt":
                uvs.append((float(parts[1]), float(parts[2])))
            elif parts[0] == "f":
                if len(parts) != 4 or any("/" not in p for p in parts[1:]):
                    raise ValueError(f"faces must be triangles written as v/vt, got {line!r}")
                corners = [p.split("/") for p in parts[1:]]
                face_vertices.append([int(c[0]) - 1 for c in corners])
                face_uvs.append([int(c[1]) - 1 for c in corners])
    except (ValueError, IndexError) as err:
        raise Champ3dInputError(path, f"malformed OBJ: {err}") from None
    if not uvs:
        raise Champ3dInputError(path, "the OBJ has no texture coordinates (vt)")
    face_vertices, face_uvs = torch.tensor(face_vertices).reshape(-1, 3), torch.tensor(face_uvs).reshape(-1, 3)
    if face_vertices.shape != faces.shape or not torch.equal(face_vertices, faces.cpu()):
        raise Champ3dInputError(path, f"the OBJ's {len(face_vertices)} faces are not the model's {len(faces)} faces")
    if face_uvs.min() < 0 or face_uvs.max() >= len(uvs):
        raise Champ3dInputError(path, "a face indexes a texture coordinate that does not exist")
    return torch.tensor(uvs, dtype=torch.float32), face_uvs.long()
