"""Anny (Apache-2.0 code, CC0 data) as champ3d's default, licence-free body model.

Anny's own frame is Z up, front −Y, the person's left +X, metres, root at the pelvis.
:data:`ANNY_TO_BODY` turns it into the body frame of :mod:`champ3d.body.base`.

Posable joints: :data:`BODY_JOINTS` and :data:`HAND_JOINTS` (Anny bone labels). Their
axis-angle rotations are Anny ``local-ref`` deltas: world-aligned axes (of Anny's rest
pose) about the bone head. Every other bone (twist bones, toes, metacarpals, eyes) stays
at rest. The shape is Anny's 6 phenotype values (gender, age, muscle, weight, height,
proportions), each in [0, 1].
"""
from __future__ import annotations

import roma
import torch

from champ3d.body.base import BodyModel, BodyOutput, BodyParams, face_majority
from champ3d.body.keypoints import BODY_KEYPOINT_NAMES, FINGERS, KEYPOINT_NAMES

ANNY_TO_BODY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

BODY_JOINTS = (
    "spine05", "spine04", "spine03", "spine02", "spine01", "neck01", "head",
    "clavicle.L", "clavicle.R", "upperarm01.L", "upperarm01.R",
    "lowerarm01.L", "lowerarm01.R", "wrist.L", "wrist.R",
    "upperleg01.L", "upperleg01.R", "lowerleg01.L", "lowerleg01.R", "foot.L", "foot.R",
)
HAND_JOINTS = tuple(
    f"finger{f}-{k}.{side}" for side in ("L", "R") for f in range(1, 6) for k in range(1, 4)
)

# Champ labels a vertex by the SMPL joint that dominates its skinning; Anny's bones are
# grouped into the same 24 regions (SMPL's "hip" joint moves the thigh, "knee" the shin...).
_PART_OF_BONE_PREFIX = (
    ("root", "pelvis"), ("pelvis.", "pelvis"), ("spine05", "spine1"), ("spine04", "spine1"),
    ("spine03", "spine2"), ("spine02", "spine3"), ("spine01", "spine3"),
    ("upperleg", "{side}_hip"), ("lowerleg", "{side}_knee"), ("foot", "{side}_ankle"),
    ("toe", "{side}_foot"), ("neck", "neck"), ("clavicle", "{side}_collar"),
    ("shoulder01", "{side}_collar"), ("head", "head"), ("eye", "head"),
    ("upperarm", "{side}_shoulder"), ("lowerarm", "{side}_elbow"), ("wrist", "{side}_wrist"),
    ("metacarpal", "{side}_wrist"), ("finger", "{side}_hand"),
)

_FINGER_BONE = {finger: i + 1 for i, finger in enumerate(FINGERS)}


def part_of_bone(label: str) -> str:
    side = "left" if label.endswith(".L") else "right"
    for prefix, part in _PART_OF_BONE_PREFIX:
        if label.startswith(prefix):
            return part.format(side=side)
    raise KeyError(f"no body part for Anny bone {label!r}")


class AnnyBody(BodyModel):
    """Anny behind the :class:`BodyModel` interface (float32, dense torch skinning)."""

    backend = "anny"
    knee_joints = (BODY_JOINTS.index("lowerleg01.L"), BODY_JOINTS.index("lowerleg01.R"))

    def __init__(self):
        super().__init__()
        import anny  # heavy import (and a one-time cache build): only when used

        from render.palette import PART_NAMES

        model = anny.Anny(skinning_method="lbs").to(torch.float32)
        model.requires_grad_(False)
        self.anny = model
        labels = list(model.bone_labels)
        self.num_bones = len(labels)
        self.num_body_joints = len(BODY_JOINTS)
        self.num_hand_joints = len(HAND_JOINTS)
        self.num_shape = len(model.phenotype_labels)
        self.register_buffer("_body_bone_ids", torch.tensor([labels.index(b) for b in BODY_JOINTS]))
        self.register_buffer("_hand_bone_ids", torch.tensor([labels.index(b) for b in HAND_JOINTS]))
        self.register_buffer("_anny_to_body", ANNY_TO_BODY.clone())

        faces = model.get_triangular_faces().long()
        self.register_buffer("faces", faces)
        dominant_bone = model.vertex_bone_indices.gather(
            1, model.vertex_bone_weights.argmax(dim=1, keepdim=True)
        )[:, 0]
        bone_part = torch.tensor([PART_NAMES.index(part_of_bone(b)) for b in labels])
        vertex_parts = bone_part[dominant_bone.long()]
        self.register_buffer("face_parts", face_majority(vertex_parts[faces]))
        self.register_buffer("vertex_parts", vertex_parts)
        self.register_buffer("uv_coords", model.texture_coordinates.to(torch.float32))
        self.register_buffer("face_uv_indices", model.face_texture_coordinate_indices.long())

        self._build_keypoint_sources(labels)
        self._build_rig(labels)
        self._rest_cache = None
        self._basis_cache = None
        self._surface_cache = None

    # -- keypoints ---------------------------------------------------------------------
    def _build_keypoint_sources(self, labels: list[str]) -> None:
        """Each keypoint is either a vertex blend (COCO regressor, fingertips) or a bone head."""
        import anny

        coco = anny.KeypointsRegressor.coco(self.anny, labels=list(BODY_KEYPOINT_NAMES))
        rows = [coco.regression_weights.to(torch.float32)]
        regressed = list(BODY_KEYPOINT_NAMES)
        head_names, head_bones = [], []
        rest = self.anny(pose_parameters=None)
        rest_vertices = rest["rest_vertices"][0]
        rest_heads = rest["rest_bone_heads"][0]
        dominant = self.anny.vertex_bone_indices.gather(
            1, self.anny.vertex_bone_weights.argmax(dim=1, keepdim=True)
        )[:, 0]
        for side, suffix in (("left", ".L"), ("right", ".R")):
            head_names.append(f"{side}_hand_wrist")
            head_bones.append(labels.index("wrist" + suffix))
            for finger, f in _FINGER_BONE.items():
                joints = ("cmc", "mcp", "ip") if finger == "thumb" else ("mcp", "pip", "dip")
                for k, joint in enumerate(joints, start=1):
                    head_names.append(f"{side}_hand_{finger}_{joint}")
                    head_bones.append(labels.index(f"finger{f}-{k}{suffix}"))
                # the fingertip: the last phalanx's vertex farthest along that phalanx
                last = labels.index(f"finger{f}-3{suffix}")
                direction = rest_heads[last] - rest_heads[labels.index(f"finger{f}-2{suffix}")]
                candidates = torch.nonzero(dominant == last)[:, 0]
                reach = (rest_vertices[candidates] - rest_heads[last]) @ direction
                tip = torch.zeros(rows[0].shape[1])
                tip[candidates[reach.argmax()]] = 1.0
                rows.append(tip[None])
                regressed.append(f"{side}_hand_{finger}_tip")
        self.register_buffer("_regressor", torch.cat(rows))  # (K_reg, V)
        self.register_buffer("_head_bones", torch.tensor(head_bones))
        order = regressed + head_names
        self.register_buffer("_keypoint_order", torch.tensor([order.index(n) for n in KEYPOINT_NAMES]))

    def _build_rig(self, labels: list[str]) -> None:
        """Constants of the keypoint rig that :meth:`keypoints` evaluates instead of the mesh.

        Anny's forward kinematics with ``local-ref`` deltas (rotations in world-aligned axes
        about bone heads, :func:`anny.utils.kinematics.forward_kinematic`) gives every bone c
        the posed rotation V_c = V_p · D_c (V_root = U_root^T, U the reference orientations)
        and head w_c = w_p + V_p · o_c (w_root = 0), where o_c is the bone's offset in the
        reference pose. Only the posed joints (:data:`BODY_JOINTS`, :data:`HAND_JOINTS`)
        have D ≠ I, so every bone moves rigidly with its nearest posed ancestor-or-self a,
        and every keypoint, linear in the skinning transforms, is exactly
        ``sum_a V_a · Pi[k, a]`` over the 52 posed joints (root included) for a basis Pi
        that depends on the shape alone (:meth:`_rig_fold`). Its shape dependence is
        linear in Anny's blendshape coefficients, precomputed here over each keypoint's
        few regressor vertices.
        """
        model = self.anny
        if model.bone_orientation != "cached" or model.pose_parameterization != "local-ref":
            raise ValueError(
                f"the keypoint rig expects Anny's cached bone orientations and local-ref poses, got "
                f"{model.bone_orientation!r} and {model.pose_parameterization!r}"
            )
        parents = [int(p) for p in model.bone_parents]
        parents[0] = 0
        posed = [0] + self._body_bone_ids.tolist() + self._hand_bone_ids.tolist()
        slot = {bone: i for i, bone in enumerate(posed)}
        group, posed_parent = [], [0] * len(posed)
        for bone in range(self.num_bones):
            a = bone
            while a not in slot:
                a = parents[a]
            group.append(slot[a])
            if bone in slot and bone != 0:
                a = parents[bone]
                while a not in slot:
                    a = parents[a]
                posed_parent[slot[bone]] = slot[a]
        ancestors = torch.zeros(self.num_bones, self.num_bones)  # [c, c'] = c' on the path root..c
        chain = torch.zeros(len(posed), len(posed))  # [a, n] = posed n on the path (root, a]
        for bone in range(self.num_bones):
            c = bone
            while True:
                ancestors[bone, c] = 1.0
                if c == 0:
                    break
                c = parents[c]
        depth = [0] * len(posed)
        for a in range(1, len(posed)):
            n = a
            while n != 0:
                chain[a, n] = 1.0
                depth[a] += 1
                n = posed_parent[n]
        # the chain level by level: each level's joints and their parents' places in the level before
        levels = [[0]]
        for d in range(1, max(depth) + 1):
            levels.append([a for a in range(len(posed)) if depth[a] == d])
        self._rig_level_sizes = [len(level) for level in levels[1:]]
        self._rig_level_parents = [
            torch.tensor([previous.index(posed_parent[a]) for a in level])
            for previous, level in zip(levels[:-1], levels[1:])
        ]
        self.register_buffer("_rig_level_order", torch.tensor(sum(levels[1:], [])) - 1)  # into the deltas
        self.register_buffer("_rig_inverse", torch.argsort(torch.tensor(sum(levels, []))))
        self.register_buffer("_bone_parents", torch.tensor(parents))
        self.register_buffer("_rig_posed_bones", torch.tensor(posed))
        self.register_buffer("_rig_group", torch.tensor(group))
        self.register_buffer("_rig_posed_parent", torch.tensor(posed_parent))
        self.register_buffer("_rig_ancestors", ancestors)
        self.register_buffer("_rig_chain", chain)

        # P[k, j] = sum_v W[k, v] w[v, j] [v_rest; 1], v_rest = template + sum_i c_i B_i
        skin = torch.zeros(len(model.template_vertices), self.num_bones)  # (V, bones) dense weights
        skin.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.float())
        num_coeffs = model.blendshapes.shape[0]
        blend = model.blendshapes.permute(1, 0, 2).reshape(-1, num_coeffs * 3)
        template, linear, weight = [], [], []
        for row in self._regressor:
            support = torch.nonzero(row)[:, 0]
            weighted_skin = row[support, None] * skin[support]  # (n, bones)
            template.append(weighted_skin.T @ model.template_vertices[support])
            linear.append((weighted_skin.T @ blend[support]).reshape(self.num_bones, num_coeffs, 3))
            weight.append(weighted_skin.sum(0))
        self.register_buffer("_rig_template", torch.stack(template))  # (K_reg, bones, 3)
        linear = torch.stack(linear).permute(2, 0, 1, 3)  # (coeffs, K_reg, bones, 3)
        self.register_buffer("_rig_blendshapes", linear.reshape(num_coeffs, -1).contiguous())
        self.register_buffer("_rig_weight", torch.stack(weight))  # (K_reg, bones)
        self.register_buffer("_rig_to_body", ANNY_TO_BODY @ model.reference_bone_orientations[0].T)

    def _rig_rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Blendshape coefficients, rest bone heads, each bone's turn U_c R_c^T from its rest
        to its reference orientation, and the bone heads in the reference pose (root at 0)."""
        model = self.anny
        none = shape.new_zeros(1, 0)
        coeffs = model._get_phenotype_blendshape_coefficients(shape, none, none)[0]
        heads = model.template_bone_heads + torch.einsum("i,ijd->jd", coeffs, model.bone_heads_blendshapes)
        rest_rotation = roma.special_procrustes(
            model.bone_template_orientation_matrices
            + torch.einsum("i,ijxy->jxy", coeffs, model.bone_orientation_blendshapes)
        )
        to_reference = model.reference_bone_orientations @ rest_rotation.transpose(1, 2)
        parent = self._bone_parents
        parent_turn = torch.cat([torch.eye(3)[None], to_reference[1:]])[parent]  # A_p (A_root = I)
        offsets = (parent_turn @ (heads - heads[parent])[..., None])[..., 0]
        return coeffs, heads, to_reference, self._rig_ancestors @ offsets

    def _rig_fold(self, rest: tuple, points: torch.Tensor, weight: torch.Tensor, bones: torch.Tensor,
                  head_bones: torch.Tensor | None = None) -> torch.Tensor:
        """Basis (N, 52, 3) of N skinned points ``sum_j T_j (sum_v W[n, v] w[v, j] [v_rest; 1])``,
        followed by the heads of ``head_bones``. Each point lists its bones ``bones`` (N, S),
        ``weight`` = sum_v W[n, v] w[v, bone] (N, S) and ``points`` = sum_v W[n, v] w[v, bone] v_rest
        (N, S, 3)."""
        _, heads, to_reference, reference_heads = rest
        num_posed = len(self._rig_posed_bones)
        group = self._rig_group[bones]
        moved = (to_reference[bones] @ (points - weight[..., None] * heads[bones])[..., None])[..., 0]
        moved = moved + weight[..., None] * (reference_heads[bones] - reference_heads[self._rig_posed_bones[group]])
        count = len(points)
        slots = (torch.arange(count, device=group.device)[:, None] * num_posed + group).reshape(-1)
        basis = moved.new_zeros(count * num_posed, 3).index_add(0, slots, moved.reshape(-1, 3))
        joint_weight = weight.new_zeros(count * num_posed).index_add(0, slots, weight.reshape(-1))
        basis, joint_weight = basis.view(count, num_posed, 3), joint_weight.view(count, num_posed)
        if head_bones is not None:
            basis = torch.cat([basis, basis.new_zeros(len(head_bones), num_posed, 3)])
            joint_weight = torch.cat([joint_weight, torch.nn.functional.one_hot(
                self._rig_group[head_bones], num_posed).to(weight.dtype)])
        # each joint's head w_a = sum over the posed chain (root, a] of V_parent(n) · step_n
        posed_heads = reference_heads[self._rig_posed_bones]
        steps = posed_heads - posed_heads[self._rig_posed_parent]
        carried = joint_weight @ self._rig_chain  # (N, 52): weight of step n
        return basis.index_add(1, self._rig_posed_parent, carried[..., None] * steps)

    def _keypoint_basis(self, shape: torch.Tensor, rest: tuple | None = None) -> torch.Tensor:
        """(K, 52, 3) rig basis of the keypoints, in KEYPOINT_NAMES order; cached per shape.
        ``rest``: ``_rig_rest(shape)`` when the caller has it already."""
        cached = self._basis_cache
        if not shape.requires_grad and cached is not None and torch.equal(cached[0], shape):
            return cached[1]
        rest = self._rig_rest(shape) if rest is None else rest
        points = self._rig_template + (rest[0] @ self._rig_blendshapes).view(self._rig_template.shape)
        bones = torch.arange(self.num_bones, device=points.device).expand(len(points), -1)
        basis = self._rig_fold(rest, points, self._rig_weight, bones, self._head_bones)[self._keypoint_order]
        if not shape.requires_grad:
            self._basis_cache = (shape.detach().clone(), basis)
        return basis

    def _rig_rotations(self, params: BodyParams) -> torch.Tensor:
        """(B, 52, 3, 3) posed-joint rotations V_a (without V_root), a chain over the posed joints."""
        deltas = roma.rotvec_to_rotmat(torch.cat([params.body_pose, params.hand_pose], dim=1))
        deltas = deltas.index_select(1, self._rig_level_order).split(self._rig_level_sizes, dim=1)
        level = torch.eye(3, dtype=deltas[0].dtype, device=deltas[0].device).expand(len(deltas[0]), 1, 3, 3)
        rotations = [level]
        for delta, parents in zip(deltas, self._rig_level_parents):
            level = level.index_select(1, parents) @ delta
            rotations.append(level)
        return torch.cat(rotations, dim=1).index_select(1, self._rig_inverse)

    # -- model -------------------------------------------------------------------------
    def default_shape(self) -> torch.Tensor:
        """A young adult of average build, androgynous: the fitter's starting point."""
        values = {"gender": 0.5, "age": 0.6667, "muscle": 0.5, "weight": 0.5, "height": 0.5, "proportions": 0.5}
        return torch.tensor([values[k] for k in self.anny.phenotype_labels], device=self.faces.device)

    def shape_prior_scale(self) -> torch.Tensor:
        """Per-phenotype prior stiffness: age and height are barely observable from
        canonical-scale landmarks (scale-depth ambiguity), so they are held near average."""
        stiffness = {"gender": 1.0, "age": 30.0, "muscle": 1.0, "weight": 1.0, "height": 3.0, "proportions": 1.0}
        return torch.tensor([stiffness[k] for k in self.anny.phenotype_labels], device=self.faces.device)

    def _rest(self, shape: torch.Tensor) -> dict:
        """Rest mesh and bone poses for ``shape``; cached while it is constant."""
        cached = self._rest_cache
        if cached is not None and not shape.requires_grad and torch.equal(cached[0], shape):
            return cached[1]
        none = shape.new_zeros(shape.shape[0], 0)  # no local changes, no facial actions
        coeffs = self.anny._get_phenotype_blendshape_coefficients(shape, none, none)
        rest = self.anny.get_rest_model(coeffs)
        if not shape.requires_grad:
            self._rest_cache = (shape.detach().clone(), rest)
        return rest

    def _to_camera(self, points: torch.Tensor, params: BodyParams) -> torch.Tensor:
        rotation = roma.rotvec_to_rotmat(params.global_orient) @ self._anny_to_body
        return points @ rotation.transpose(1, 2) + params.transl[:, None]

    def _rig_points(self, params: BodyParams, basis: torch.Tensor) -> torch.Tensor:
        """(B, N, 3) camera-frame points of a rig ``basis`` (N, 52, 3) for one shared shape."""
        rotation = roma.rotvec_to_rotmat(params.global_orient) @ self._rig_to_body
        # turning the 52 joint rotations costs far less than turning the N points
        rotations = rotation[:, None] @ self._rig_rotations(params)
        return torch.einsum("bjxy,kjy->bkx", rotations, basis) + params.transl[:, None]

    def keypoints(self, params: BodyParams) -> torch.Tensor:
        if params.shape.shape[0] > 1:  # a shape per frame: a basis per frame
            return torch.cat([self.keypoints(params.select(slice(i, i + 1))) for i in range(params.batch_size)])
        return self._rig_points(params, self._keypoint_basis(params.shape))

    def keypoints_and_vertices(self, params: BodyParams, vertex_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keypoints and mesh vertices ``vertex_ids``, as in ``forward(params)`` but from one
        rig pass over both bases, without skinning the whole mesh."""
        if params.shape.shape[0] > 1:  # a shape per frame
            pairs = [self.keypoints_and_vertices(params.select(slice(i, i + 1)), vertex_ids)
                     for i in range(params.batch_size)]
            return torch.cat([k for k, _ in pairs]), torch.cat([v for _, v in pairs])
        shape = params.shape
        rest = self._rig_rest(shape) if shape.requires_grad else None  # shared by both bases
        keypoint_basis = self._keypoint_basis(shape, rest)
        points = self._rig_points(params, torch.cat([keypoint_basis, self._surface_basis(shape, vertex_ids, rest)]))
        return points[:, :len(keypoint_basis)], points[:, len(keypoint_basis):]

    def _surface_basis(self, shape: torch.Tensor, vertex_ids: torch.Tensor, rest: tuple | None = None) -> torch.Tensor:
        """(N, 52, 3) rig basis of mesh vertices ``vertex_ids``; cached per vertex set, and
        per shape while the shape is constant (the pose pass of a fit). ``rest`` as for
        :meth:`_keypoint_basis`."""
        cached = self._surface_cache
        if cached is None or not torch.equal(cached[0], vertex_ids):
            model = self.anny
            cached = (
                vertex_ids.clone(),
                model.template_vertices[vertex_ids],
                model.blendshapes[:, vertex_ids].reshape(len(model.blendshapes), -1).contiguous(),
                model.vertex_bone_indices[vertex_ids].long(),
                model.vertex_bone_weights[vertex_ids].float(),
                None,
            )
            self._surface_cache = cached
        _, template, blendshapes, bones, weight, constant = cached
        if not shape.requires_grad and constant is not None and torch.equal(constant[0], shape):
            return constant[1]
        rest = self._rig_rest(shape) if rest is None else rest
        rest_vertices = template + (rest[0] @ blendshapes).view(template.shape)
        points = weight[..., None] * rest_vertices[:, None]
        basis = self._rig_fold(rest, points, weight, bones)
        if not shape.requires_grad:
            self._surface_cache = cached[:5] + ((shape.detach().clone(), basis),)
        return basis

    def forward(self, params: BodyParams) -> BodyOutput:
        rest = self._rest(params.shape)
        batch = params.batch_size
        deltas = torch.eye(4, device=params.transl.device).repeat(batch, self.num_bones, 1, 1)
        deltas[:, self._body_bone_ids, :3, :3] = roma.rotvec_to_rotmat(params.body_pose)
        deltas[:, self._hand_bone_ids, :3, :3] = roma.rotvec_to_rotmat(params.hand_pose)
        transforms, bone_poses = self.anny.get_bone_transforms(deltas, rest["rest_bone_poses"])
        vertices = self.anny.get_skinned_vertices(rest["rest_vertices"].expand(batch, -1, -1), transforms)
        regressed = torch.einsum("kv,bvx->bkx", self._regressor, vertices)
        keypoints = torch.cat([regressed, bone_poses[:, self._head_bones, :3, 3]], dim=1)[:, self._keypoint_order]
        return BodyOutput(
            vertices=self._to_camera(vertices, params),
            keypoints=self._to_camera(keypoints, params),
        )

