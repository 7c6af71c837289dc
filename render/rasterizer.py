"""Mesh rasteriser: draws batches of posed meshes that share one topology.

Per pass of up to ``frames_per_pass`` frames the GPU

1. computes smooth vertex normals from the posed world vertices and transforms positions
   and normals into each frame's camera frame (a compute shader);
2. draws every frame in one instanced draw call into its own band of rows of a set of
   render targets, with a depth test and one sample at each pixel centre (no
   anti-aliasing). A :class:`FragmentProgram` (the shader) decides what is written per
   pixel: :func:`fragments_program` writes the raw :class:`Fragments` read back by
   :meth:`MeshRasterizer.__call__`; :mod:`render.shaders` writes Champ's maps.

Geometry conventions:

* cameras, pixels and depth: :mod:`render.cameras` (planar depth, pixel centres at integers);
* vertex normals are angle-weighted averages of the adjacent triangles' unit normals
  (Blender's rule, which Champ's renders used), oriented by the triangle winding:
  counter-clockwise seen from outside gives outward normals (SMPL, Anny, trimesh). Values
  between vertices are interpolated perspective-correctly and re-normalised;
* a triangle is *front-facing* when its winding normal points toward the camera.

For a closed, consistently oriented mesh (every edge shared by exactly two triangles in
opposite directions) whose vertices all lie beyond the near plane, back-facing triangles
can never be the front-most surface, so they are culled: this halves the work and changes
no pixel. Other meshes are drawn without culling.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import moderngl
import numpy as np

from render.cameras import PerspectiveCameras
from render.context import gl_context

# Shader-storage bindings shared by all renderer programs. "Render vertices" are the mesh
# vertices plus the few copies that carry face tags (see tag_vertices); the per-frame
# camera-frame geometry is indexed by render vertex.
BIND_CAM_POS = 0        # vec4 per (frame, render vertex): camera-frame position, w = 1
BIND_CAMERAS = 1        # Camera record per frame
BIND_WORLD = 2          # vec4 per (frame, mesh vertex): world position, w = 1
BIND_FACES = 3          # uint per face corner: render vertex
BIND_FAN_OFFSETS = 4    # uint per mesh vertex + 1: start of each vertex's fan in FAN
BIND_FAN = 5            # uvec2 per face corner, grouped by mesh vertex: the corner's next and
                        # previous mesh vertices in its face
BIND_CAM_NRM = 6        # vec4 per (frame, render vertex): camera-frame unit normal, w = 0
BIND_VERTEX_SOURCE = 7  # uint per render vertex: its mesh vertex
BIND_VERTEX_TAGS = 8    # uint per render vertex: the tag of the faces using it
BIND_PROGRAM = 9        # free for the fragment program

#: One record per frame, 9 vec4 (filled by :func:`camera_records`).
CAMERA_GLSL = """
struct Camera {
    vec4 r0, r1, r2;      // rows of R (world -> camera)
    vec4 t;               // T
    vec4 k;               // fx, fy, cx, cy
    vec4 p0, p1, p2, p3;  // rows of the camera -> clip projection of this frame
};
layout(std430, binding = 1) readonly buffer Cameras { Camera cams[]; };
"""

#: Per (render vertex, frame): the angle-weighted normal from the vertex's fan of faces,
#: then position and normal in the camera frame.
NORMALS_CS = CAMERA_GLSL + """
layout(local_size_x = 64) in;
layout(std430, binding = 0) writeonly buffer CamPos { vec4 cam_pos[]; };
layout(std430, binding = 2) readonly buffer World { vec4 world[]; };
layout(std430, binding = 4) readonly buffer FanOffsets { uint fan_offsets[]; };
layout(std430, binding = 5) readonly buffer Fan { uvec2 fan[]; };
layout(std430, binding = 6) writeonly buffer CamNrm { vec4 cam_nrm[]; };
layout(std430, binding = 7) readonly buffer VertexSource { uint vertex_source[]; };
uniform uint num_verts;
uniform uint num_render_verts;
void main() {
    uint v = gl_GlobalInvocationID.x;
    uint frame = gl_GlobalInvocationID.y;
    if (v >= num_render_verts) return;
    uint source = vertex_source[v];
    uint base = frame * num_verts;
    vec3 p = world[base + source].xyz;
    vec3 n = vec3(0.0);
    for (uint k = fan_offsets[source]; k < fan_offsets[source + 1u]; ++k) {
        uvec2 next_prev = fan[k];
        vec3 e1 = world[base + next_prev.x].xyz - p;
        vec3 e2 = world[base + next_prev.y].xyz - p;
        vec3 face_normal = cross(e1, e2);  // along the winding normal, |.| = 2 * area
        float area2 = length(face_normal);
        float lengths = length(e1) * length(e2);
        if (area2 > 0.0 && lengths > 0.0)
            n += face_normal * (acos(clamp(dot(e1, e2) / lengths, -1.0, 1.0)) / area2);
    }
    Camera c = cams[frame];
    vec3 pc = vec3(dot(c.r0.xyz, p), dot(c.r1.xyz, p), dot(c.r2.xyz, p)) + c.t.xyz;
    vec3 nc = vec3(dot(c.r0.xyz, n), dot(c.r1.xyz, n), dot(c.r2.xyz, n));
    float len = length(nc);
    uint index = frame * num_render_verts + v;
    cam_pos[index] = vec4(pc, 1.0);
    cam_nrm[index] = vec4(len > 0.0 ? nc / len : vec3(0.0), 0.0);
}
"""

RASTER_VS = CAMERA_GLSL + """
layout(std430, binding = 0) readonly buffer CamPos { vec4 cam_pos[]; };
layout(std430, binding = 6) readonly buffer CamNrm { vec4 cam_nrm[]; };
layout(std430, binding = 8) readonly buffer VertexTags { uint vertex_tags[]; };
uniform int num_render_verts;
uniform float tiles;  // frames per pass: the render targets hold this many bands of rows
out gl_PerVertex { vec4 gl_Position; float gl_ClipDistance[2]; };
out vec3 cam_position;
out vec3 cam_normal;
flat out int frame;
flat out uint face_tag;
void main() {
    frame = gl_InstanceID;
    Camera c = cams[frame];
    int index = frame * num_render_verts + gl_VertexID;
    vec4 p = cam_pos[index];
    cam_position = p.xyz;
    cam_normal = cam_nrm[index].xyz;
    face_tag = vertex_tags[gl_VertexID];
    vec4 clip = vec4(dot(c.p0, p), dot(c.p1, p), dot(c.p2, p), dot(c.p3, p));
    // keep each frame inside its own band of rows: -w <= y <= w in the frame's clip space
    gl_ClipDistance[0] = clip.w + clip.y;
    gl_ClipDistance[1] = clip.w - clip.y;
    gl_Position = vec4(clip.x, (clip.y + clip.w * (1.0 + 2.0 * float(frame))) / tiles - clip.w, clip.z, clip.w);
}
"""

#: Declarations every fragment program starts with (after the version line).
FRAGMENT_GLSL = CAMERA_GLSL + """
layout(std430, binding = 0) readonly buffer CamPos { vec4 cam_pos[]; };
layout(std430, binding = 3) readonly buffer Faces { uint faces[]; };
uniform int num_render_verts;
in vec3 cam_position;  // camera frame, OpenCV axes; .z is the planar depth
in vec3 cam_normal;    // interpolated vertex normal (not unit length)
flat in int frame;
flat in uint face_tag; // the face's tag (see MeshRasterizer)

vec3 unit_normal() {
    float len = length(cam_normal);
    return len > 0.0 ? cam_normal / len : vec3(0.0);
}

// The face's first corner, its two edges from it and their cross product, camera frame.
struct FaceFrame { vec3 a; vec3 e1; vec3 e2; vec3 n; float nn; };

FaceFrame face_frame() {
    int base = frame * num_render_verts;
    int face = gl_PrimitiveID;
    FaceFrame f;
    f.a = cam_pos[base + int(faces[3 * face])].xyz;
    f.e1 = cam_pos[base + int(faces[3 * face + 1])].xyz - f.a;
    f.e2 = cam_pos[base + int(faces[3 * face + 2])].xyz - f.a;
    f.n = cross(f.e1, f.e2);
    f.nn = dot(f.n, f.n);
    return f;
}

// Change of the barycentric coordinates over a step d within the face's plane.
vec3 barycentric_change(FaceFrame f, vec3 d) {
    if (f.nn <= 0.0) return vec3(0.0);
    float b1 = dot(cross(d, f.e2), f.n) / f.nn;
    float b2 = dot(cross(f.e1, d), f.n) / f.nn;
    return vec3(-b1 - b2, b1, b2);
}

// Barycentric weights of the face's three corners at cam_position (perspective-correct).
vec3 barycentrics(FaceFrame f) {
    if (f.nn <= 0.0) return vec3(1.0 / 3.0);
    vec3 b = max(vec3(1.0, 0.0, 0.0) + barycentric_change(f, cam_position - f.a), 0.0);  // edge pixels may
    return b / (b.x + b.y + b.z);                                                      // land a hair outside
}
"""

FRAGMENTS_FS = FRAGMENT_GLSL + """
layout(location = 0) out int face_plus_one;
layout(location = 1) out vec4 bary_z;
layout(location = 2) out vec4 normal;
#if NUM_ATTRIBUTE_TARGETS > 0
layout(std430, binding = 9) readonly buffer CornerAttributes { float corner_attributes[]; };
layout(location = 3) out vec4 attributes[NUM_ATTRIBUTE_TARGETS];
#endif
void main() {
    face_plus_one = gl_PrimitiveID + 1;
    vec3 bary = barycentrics(face_frame());
    bary_z = vec4(bary, cam_position.z);
    normal = vec4(unit_normal(), 0.0);
#if NUM_ATTRIBUTE_TARGETS > 0
    for (int k = 0; k < 4 * NUM_ATTRIBUTE_TARGETS; ++k) {
        float value = 0.0;
        if (k < NUM_ATTRIBUTES) {
            for (int corner = 0; corner < 3; ++corner)
                value += bary[corner] * corner_attributes[(3 * gl_PrimitiveID + corner) * NUM_ATTRIBUTES + k];
        }
        attributes[k / 4][k % 4] = value;
    }
#endif
}
"""

#: Largest total size of one fragment program's render targets; passes of programs with
#: many or wide targets hold fewer frames.
MAX_TARGET_BYTES = 1 << 28

#: Relative margin between the meshes' depth range and the near/far clip planes.
DEPTH_MARGIN = 1e-3


def glsl(body: str, **defines: int) -> str:
    """A complete GLSL 4.30 source: version line, ``#define`` lines, then ``body``."""
    lines = ["#version 430"] + [f"#define {name} {value}" for name, value in defines.items()]
    return "\n".join(lines) + "\n" + body


@dataclass(frozen=True)
class Target:
    """A render target of a fragment program: ``components`` channels of ``dtype``
    (moderngl dtype: ``f1`` unorm8, ``f4`` float32, ``i4`` int32), cleared to zero."""

    name: str
    components: int
    dtype: str


@dataclass(frozen=True)
class FragmentProgram:
    """A complete fragment shader (``glsl(FRAGMENT_GLSL + body)``, so the declarations of
    :data:`FRAGMENT_GLSL` are available) and the render targets its outputs are written
    to, in ``location`` order."""

    source: str
    targets: Tuple[Target, ...]


@dataclass
class _ProgramState:
    """A fragment program compiled for one rasteriser: its draw call, render targets and
    the number of frames (row bands) they hold."""

    vao: moderngl.VertexArray
    framebuffer: moderngl.Framebuffer
    frames: int


class RasterPass:
    """Frames ``start:stop`` of a batch, drawn and still on the GPU (valid until the
    rasteriser draws again). The program's render targets hold the frames in bands of
    ``H`` rows, top row first."""

    def __init__(self, framebuffer: moderngl.Framebuffer, program: FragmentProgram,
                 image_size: Tuple[int, int], start: int, stop: int):
        self.framebuffer = framebuffer
        self.program = program
        self.image_size = image_size
        self.start = start
        self.stop = stop

    @property
    def num_frames(self) -> int:
        return self.stop - self.start

    @property
    def viewport(self) -> Tuple[int, int, int, int]:
        """The texel rectangle holding this pass's frames."""
        H, W = self.image_size
        return (0, 0, W, self.num_frames * H)

    def read_into(self, name: str, out: np.ndarray) -> None:
        """Copy target ``name`` of frames start:stop into ``out`` (C-contiguous,
        (frames, H, W[, C]) of the target's dtype)."""
        index = [t.name for t in self.program.targets].index(name)
        target = self.program.targets[index]
        self.framebuffer.read_into(out, viewport=self.viewport, components=target.components,
                                   attachment=index, alignment=1, dtype=target.dtype)


@dataclass
class Fragments:
    """Per-pixel rasterisation results for B frames of (H, W) pixels, as numpy arrays.

    pix_to_face: (B, H, W) int32 index into ``faces`` of the front-most triangle at the pixel
        centre, -1 on background. Indices are per frame (not offset by the frame index).
    bary_coords: (B, H, W, 3) float32 perspective-correct barycentric weights of that face's
        three corners at the pixel centre, summing to 1; 0 on background.
    zbuf: (B, H, W) float32 planar depth (camera z, metres) at the pixel centre; 0 on background.
    normals: (B, H, W, 3) float32 interpolated unit vertex normal, camera frame with OpenCV
        axes (x right, y down, z forward); 0 on background. Not flipped toward the camera.
    attributes: (B, H, W, K) float32 per-face-corner attributes interpolated with
        ``bary_coords`` (e.g. texture coordinates); 0 on background; None when not requested.
    """

    pix_to_face: np.ndarray
    bary_coords: np.ndarray
    zbuf: np.ndarray
    normals: np.ndarray
    attributes: Optional[np.ndarray] = None

    @property
    def mask(self) -> np.ndarray:
        """(B, H, W) bool, True where a face covers the pixel centre."""
        return self.pix_to_face >= 0


def fragments_program(num_attributes: int) -> FragmentProgram:
    """The program that writes raw :class:`Fragments` (with ``num_attributes`` interpolated
    corner attributes, read from storage binding :data:`BIND_PROGRAM`)."""
    attribute_targets = -(-num_attributes // 4)
    source = glsl(FRAGMENTS_FS, NUM_ATTRIBUTES=num_attributes, NUM_ATTRIBUTE_TARGETS=attribute_targets)
    targets = (Target("face", 1, "i4"), Target("bary_z", 4, "f4"), Target("normal", 4, "f4"))
    targets += tuple(Target(f"attributes{i}", 4, "f4") for i in range(attribute_targets))
    return FragmentProgram(source, targets)


class MeshRasterizer:
    """Rasterises batches of posed meshes that share one topology.

    Args:
        faces: (F, 3) vertex indices of the triangles.
        image_size: (H, W) of every rendered frame.
        frames_per_pass: frames drawn per GPU pass (one instanced draw call); larger batches
            are split into passes. Lowered automatically to what OpenGL's size limits allow.
        face_tags: optional (F,) uint32 value per face, handed to fragment programs as
            ``flat uint face_tag`` (0 when not given) through each face's provoking vertex,
            without a per-fragment lookup (see :func:`tag_vertices`); positions and
            normals are unaffected.
    """

    def __init__(self, faces: np.ndarray, image_size: Tuple[int, int], frames_per_pass: int = 16,
                 face_tags: Optional[np.ndarray] = None):
        faces = np.asarray(faces)
        if faces.ndim != 2 or faces.shape[1] != 3 or faces.shape[0] == 0:
            raise ValueError(f"faces: expected (F, 3) vertex indices, got shape {faces.shape}")
        if not np.issubdtype(faces.dtype, np.integer) or faces.min() < 0 or faces.max() >= 2**31:
            raise ValueError("faces: expected non-negative integer vertex indices")
        H, W = (int(s) for s in image_size)
        if H <= 0 or W <= 0:
            raise ValueError(f"image_size must be positive (H, W), got {image_size}")
        if frames_per_pass < 1:
            raise ValueError(f"frames_per_pass must be >= 1, got {frames_per_pass}")
        self.faces = np.ascontiguousarray(faces, dtype=np.int32)
        self.image_size = (H, W)
        self.context = ctx = gl_context()
        max_size = min(ctx.info["GL_MAX_TEXTURE_SIZE"], *ctx.info["GL_MAX_VIEWPORT_DIMS"])
        if H > max_size or W > max_size:
            raise ValueError(f"image_size {image_size} exceeds the OpenGL limit of {max_size} pixels")
        self.frames_per_pass = max(1, min(int(frames_per_pass), max_size // H))
        self.closed = is_closed_oriented(self.faces)

        render_faces, draw_faces, vertex_source, vertex_tags = tag_vertices(self.faces, face_tags)
        self._num_render_verts = len(vertex_source)
        index_dtype = np.uint16 if self._num_render_verts <= 2**16 else np.uint32
        self._index_buffer = ctx.buffer(draw_faces.astype(index_dtype).tobytes())
        self._index_size = np.dtype(index_dtype).itemsize
        self._faces_buffer = ctx.buffer(render_faces.astype(np.uint32).tobytes())
        self._vertex_source = ctx.buffer(vertex_source.astype(np.uint32).tobytes())
        self._vertex_tags = ctx.buffer(vertex_tags.astype(np.uint32).tobytes())
        self._normals_cs = ctx.compute_shader(glsl(NORMALS_CS))
        self._normals_cs["num_render_verts"].value = self._num_render_verts
        render_slots = self.frames_per_pass * self._num_render_verts
        self._cam_pos = ctx.buffer(reserve=render_slots * 16)
        self._cam_nrm = ctx.buffer(reserve=render_slots * 16)
        self._cameras = ctx.buffer(reserve=self.frames_per_pass * CAMERA_RECORD_BYTES)
        self._num_verts = 0
        self._programs: Dict[FragmentProgram, _ProgramState] = {}

    @property
    def num_faces(self) -> int:
        return self.faces.shape[0]

    # -- GPU resources ------------------------------------------------------------------

    def _set_num_verts(self, num_verts: int) -> None:
        """(Re)build the per-vertex buffers for meshes of ``num_verts`` vertices."""
        if num_verts == self._num_verts:
            return
        if self.faces.max() >= num_verts:
            raise ValueError(f"faces index vertex {self.faces.max()} but the meshes have {num_verts} vertices")
        corners = self.faces.reshape(-1)
        order = np.argsort(corners, kind="stable")
        offsets = np.zeros(num_verts + 1, dtype=np.uint32)
        np.cumsum(np.bincount(corners, minlength=num_verts), out=offsets[1:])
        next_prev = np.stack([self.faces[:, [1, 2, 0]].reshape(-1), self.faces[:, [2, 0, 1]].reshape(-1)], axis=1)
        ctx = self.context
        self._fan_offsets = ctx.buffer(offsets.tobytes())
        self._fan = ctx.buffer(next_prev[order].astype(np.uint32).tobytes())
        self._world = ctx.buffer(reserve=self.frames_per_pass * num_verts * 16)
        self._world_host = np.ones((self.frames_per_pass, num_verts, 4), np.float32)
        self._num_verts = num_verts
        self._normals_cs["num_verts"].value = num_verts

    def _bind_buffers(self) -> None:
        for binding, buffer in (
            (BIND_CAM_POS, self._cam_pos), (BIND_CAMERAS, self._cameras), (BIND_WORLD, self._world),
            (BIND_FACES, self._faces_buffer), (BIND_FAN_OFFSETS, self._fan_offsets), (BIND_FAN, self._fan),
            (BIND_CAM_NRM, self._cam_nrm), (BIND_VERTEX_SOURCE, self._vertex_source),
            (BIND_VERTEX_TAGS, self._vertex_tags),
        ):
            buffer.bind_to_storage_buffer(binding)

    def _program_state(self, program: FragmentProgram) -> _ProgramState:
        """``program`` compiled with its render targets (made on first use)."""
        state = self._programs.get(program)
        if state is None:
            ctx = self.context
            H, W = self.image_size
            bytes_per_pixel = sum(t.components * int(t.dtype[1]) for t in program.targets)
            frames = max(1, min(self.frames_per_pass, MAX_TARGET_BYTES // (H * W * bytes_per_pixel)))
            gl_program = ctx.program(vertex_shader=glsl(RASTER_VS), fragment_shader=program.source)
            gl_program["tiles"].value = float(frames)
            gl_program["num_render_verts"].value = self._num_render_verts
            vao = ctx.vertex_array(gl_program, [], index_buffer=self._index_buffer,
                                   index_element_size=self._index_size)
            textures = [ctx.texture((W, frames * H), t.components, dtype=t.dtype) for t in program.targets]
            # every attachment of a framebuffer must have one size: the depth buffer is per program
            depth = ctx.depth_renderbuffer((W, frames * H))
            framebuffer = ctx.framebuffer(textures, depth)
            state = self._programs[program] = _ProgramState(vao, framebuffer, frames)
        return state

    # -- drawing ------------------------------------------------------------------------

    def _check_inputs(self, verts, cameras: PerspectiveCameras) -> Tuple[np.ndarray, PerspectiveCameras]:
        verts = np.asarray(verts)
        if verts.ndim != 3 or verts.shape[2] != 3:
            raise ValueError(f"verts: expected (B, V, 3) world positions, got shape {verts.shape}")
        if not isinstance(cameras, PerspectiveCameras):
            raise ValueError(f"cameras: expected PerspectiveCameras, got {type(cameras).__name__}")
        if tuple(cameras.image_size) != self.image_size:
            raise ValueError(f"cameras.image_size {cameras.image_size} differs from the rasteriser's {self.image_size}")
        if len(cameras) not in (1, verts.shape[0]):
            raise ValueError(f"{len(cameras)} cameras for {verts.shape[0]} meshes")
        verts = np.asarray(verts, dtype=np.float32)
        if not np.all(np.isfinite(verts)):
            raise ValueError("verts: contains NaN or infinite values")
        if len(cameras) == 1 and verts.shape[0] > 1:
            cameras = cameras[np.zeros(verts.shape[0], dtype=np.intp)]
        return verts, cameras

    def passes(self, verts: np.ndarray, cameras: PerspectiveCameras, program: FragmentProgram,
               storage: Optional[moderngl.Buffer] = None) -> Iterator[RasterPass]:
        """Draw ``verts`` (B, V, 3) world positions seen by ``cameras`` (B, or 1 for all)
        with ``program``, ``frames_per_pass`` frames at a time, yielding each drawn pass.
        ``storage`` is bound to storage binding :data:`BIND_PROGRAM` for the program."""
        verts, cameras = self._check_inputs(verts, cameras)
        self._set_num_verts(verts.shape[1])
        ctx = self.context
        H, W = self.image_size
        state = self._program_state(program)
        volume_sign = np.sign(signed_volume(verts[0], self.faces)) if self.closed and len(verts) else 0.0
        for start in range(0, verts.shape[0], state.frames):
            stop = min(start + state.frames, verts.shape[0])
            n = stop - start
            self._world_host[:n, :, :3] = verts[start:stop]
            self._world.write(self._world_host[:n])
            records, all_beyond_near = camera_records(cameras[start:stop], verts[start:stop])
            self._cameras.write(records)
            self._bind_buffers()
            if storage is not None:
                storage.bind_to_storage_buffer(BIND_PROGRAM)
            self._normals_cs.run(-(-self._num_render_verts // 64), n)
            ctx.memory_barrier()

            state.framebuffer.use()
            state.framebuffer.viewport = (0, 0, W, state.frames * H)
            state.framebuffer.clear(0.0, 0.0, 0.0, 0.0, depth=1.0, viewport=(0, 0, W, n * H))
            ctx.front_face = FRONT_FACE
            ctx.provoking_vertex = moderngl.LAST_VERTEX_CONVENTION
            if all_beyond_near and volume_sign != 0.0:
                ctx.enable_only(moderngl.DEPTH_TEST | moderngl.CULL_FACE)
                ctx.cull_face = "back" if volume_sign > 0 else "front"
            else:
                ctx.enable_only(moderngl.DEPTH_TEST)
            state.vao.render(moderngl.TRIANGLES, vertices=3 * self.num_faces, instances=n)
            ctx.memory_barrier()
            yield RasterPass(state.framebuffer, program, self.image_size, start, stop)

    def __call__(self, verts: np.ndarray, cameras: PerspectiveCameras,
                 corner_attributes: Optional[np.ndarray] = None) -> Fragments:
        """Rasterise and read back :class:`Fragments`.

        Args:
            verts: (B, V, 3) float32 world vertex positions.
            cameras: B cameras, or one shared by all frames.
            corner_attributes: optional (F, 3, K) float32 values per face corner, K <= 20
                (e.g. UV coordinates gathered through a face -> UV index), interpolated at
                every pixel into ``Fragments.attributes``.
        """
        num_attributes = 0
        if corner_attributes is not None:
            corner_attributes = np.ascontiguousarray(corner_attributes, dtype=np.float32)
            if corner_attributes.ndim != 3 or corner_attributes.shape[:2] != (self.num_faces, 3):
                raise ValueError(f"corner_attributes: expected ({self.num_faces}, 3, K), got {corner_attributes.shape}")
            num_attributes = corner_attributes.shape[2]
            if not 1 <= num_attributes <= MAX_CORNER_ATTRIBUTES:
                raise ValueError(f"corner_attributes: K must lie in 1..{MAX_CORNER_ATTRIBUTES}, got {num_attributes}")
        program = fragments_program(num_attributes)
        B = np.shape(verts)[0]
        H, W = self.image_size
        frags = Fragments(
            pix_to_face=np.empty((B, H, W), np.int32),
            bary_coords=np.empty((B, H, W, 3), np.float32),
            zbuf=np.empty((B, H, W), np.float32),
            normals=np.empty((B, H, W, 3), np.float32),
            attributes=np.empty((B, H, W, num_attributes), np.float32) if num_attributes else None,
        )
        attribute_buffer = self.context.buffer(corner_attributes.tobytes()) if num_attributes else None
        try:
            for raster_pass in self.passes(verts, cameras, program, storage=attribute_buffer):
                self._read_fragments(raster_pass, frags)
        finally:
            if attribute_buffer is not None:
                attribute_buffer.release()
        return frags

    def _read_fragments(self, raster_pass: RasterPass, frags: Fragments) -> None:
        frames = slice(raster_pass.start, raster_pass.stop)
        H, W = self.image_size
        face = frags.pix_to_face[frames]
        raster_pass.read_into("face", face)
        face -= 1
        rgba = np.empty((raster_pass.num_frames, H, W, 4), np.float32)
        raster_pass.read_into("bary_z", rgba)
        frags.bary_coords[frames] = rgba[..., :3]
        frags.zbuf[frames] = rgba[..., 3]
        raster_pass.read_into("normal", rgba)
        frags.normals[frames] = rgba[..., :3]
        if frags.attributes is not None:
            K = frags.attributes.shape[-1]
            for i in range(-(-K // 4)):
                raster_pass.read_into(f"attributes{i}", rgba)
                frags.attributes[frames, ..., 4 * i:4 * i + 4] = rgba[..., :min(4, K - 4 * i)]


#: Bytes of one frame's camera record (9 vec4, see CAMERA_GLSL).
CAMERA_RECORD_BYTES = 144

#: Interpolated corner attributes per call: 5 float4 render targets next to the three others.
MAX_CORNER_ATTRIBUTES = 20

#: Winding that OpenGL calls front-facing under :meth:`PerspectiveCameras.gl_projection`
#: (whose image rows run up the framebuffer) for triangles whose winding normal points
#: toward the camera.
FRONT_FACE = "cw"


def camera_records(cameras: PerspectiveCameras, verts: np.ndarray) -> Tuple[np.ndarray, bool]:
    """Per-frame camera records for the GPU, and whether every vertex of every frame lies
    beyond the near plane.

    The near and far planes hug each frame's vertex depth range (never nearer than
    ``cameras.znear``), which keeps the depth test precise at any distance.
    """
    z = np.einsum("bj,bvj->bv", cameras.R[:, 2, :], verts) + cameras.T[:, 2:3]
    z_min, z_max = z.min(axis=1), z.max(axis=1)
    znear = np.maximum(z_min * (1.0 - DEPTH_MARGIN), cameras.znear)
    zfar = np.maximum(z_max * (1.0 + DEPTH_MARGIN), znear * (1.0 + DEPTH_MARGIN))
    records = np.zeros((len(cameras), 9, 4), np.float32)
    records[:, 0:3, 0:3] = cameras.R
    records[:, 3, 0:3] = cameras.T
    records[:, 4, 0:2] = cameras.focal_length
    records[:, 4, 2:4] = cameras.principal_point
    records[:, 5:9] = cameras.gl_projection(znear, zfar)
    return records, bool(np.all(z_min > cameras.znear))


def tag_vertices(faces: np.ndarray, face_tags: Optional[np.ndarray]):
    """Render topology that hands every face its tag through its last (provoking) vertex.

    Each mesh vertex takes the tag most common among its faces. A face none of whose
    corners has its tag gets a copy of its first corner carrying the tag. Returns
    ``(render_faces, draw_faces, vertex_source, vertex_tags)``: ``render_faces`` (F, 3) are
    the faces over render vertices in the caller's corner order, ``draw_faces`` the same
    faces rotated (winding kept) so that a corner with the face's tag comes last,
    ``vertex_source`` the mesh vertex of each render vertex and ``vertex_tags`` its tag.
    """
    num_verts = int(faces.max()) + 1
    if face_tags is None:
        return faces, faces, np.arange(num_verts), np.zeros(num_verts, np.uint32)
    tags = np.asarray(face_tags)
    if tags.shape != (len(faces),) or not np.issubdtype(tags.dtype, np.integer):
        raise ValueError(f"face_tags: expected ({len(faces)},) integers, got {tags.dtype} {tags.shape}")
    if tags.size and (tags.min() < 0 or tags.max() >= 2**32):
        raise ValueError("face_tags: values must fit in 32 unsigned bits")
    tags = tags.astype(np.int64)
    # the most common tag of each vertex's faces
    pairs, counts = np.unique(np.stack([faces.reshape(-1), np.repeat(tags, 3)], axis=1), axis=0, return_counts=True)
    order = np.lexsort((-counts, pairs[:, 0]))
    first = np.unique(pairs[order, 0], return_index=True)[1]
    vertex_tags = np.zeros(num_verts, np.int64)
    vertex_tags[pairs[order[first], 0]] = pairs[order[first], 1]
    # faces without a corner of their own tag get a tagged copy of their first corner
    match = vertex_tags[faces] == tags[:, None]
    lonely = np.nonzero(~match.any(axis=1))[0]
    copies, copy_index = np.unique(np.stack([faces[lonely, 0], tags[lonely]], axis=1), axis=0, return_inverse=True)
    render_faces = faces.copy()
    render_faces[lonely, 0] = num_verts + copy_index.reshape(-1)
    match[lonely, 0] = True
    vertex_source = np.concatenate([np.arange(num_verts), copies[:, 0]])
    vertex_tags = np.concatenate([vertex_tags, copies[:, 1]]).astype(np.uint32)
    provoking = np.argmax(match, axis=1)
    rotation = (np.arange(3)[None, :] + provoking[:, None] + 1) % 3
    draw_faces = np.take_along_axis(render_faces, rotation, axis=1)
    return render_faces, draw_faces, vertex_source, vertex_tags


def is_closed_oriented(faces: np.ndarray) -> bool:
    """Whether every edge is shared by exactly two faces that run it in opposite directions."""
    a = faces.astype(np.int64)
    num = int(a.max()) + 1
    directed = np.concatenate([a[:, 0] * num + a[:, 1], a[:, 1] * num + a[:, 2], a[:, 2] * num + a[:, 0]])
    reverse = np.concatenate([a[:, 1] * num + a[:, 0], a[:, 2] * num + a[:, 1], a[:, 0] * num + a[:, 2]])
    directed.sort()
    reverse.sort()
    return bool(np.all(directed[1:] != directed[:-1]) and np.array_equal(directed, reverse))


def signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume enclosed by a closed mesh: positive when its normals point outward."""
    v = verts.astype(np.float64)
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    return float(np.einsum("ij,ij->", a, np.cross(b, c)) / 6.0)
