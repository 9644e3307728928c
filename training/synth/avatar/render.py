"""Headless rasteriser for avatars: one moderngl context on EGL per process (Mesa's llvmpipe on a CPU, the GPU
where there is one), reused for every frame.

A frame is drawn once into two attachments, each read back with one glReadPixels: RGBA, whose alpha marks the
person (so the silhouette excludes props, walls and photo), and the camera-frame depth in metres (inf where
nothing was drawn). The projection is the project's pinhole (`training.synth.camera.Camera`: fx, fy, cx, cy,
OpenCV axes, pixel centres at integers) written as a GL clip matrix, so a world point projected with
`Frame.project` lands on the pixel the rasteriser drew it on, to float precision.

Between frames of one body topology only the vertex positions and normals are uploaded; faces, regions and
pattern coordinates stay on the GPU, and recently used scenes keep their textures there. A closed body's back
faces are culled. Mesa's llvmpipe cannot be shared across fork(): create renderers in the worker processes.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from training.synth.avatar.appearance import PATTERNS, Appearance, Garment
from training.synth.avatar.mesh import AvatarMesh, Region
from training.synth.avatar.scene import Box, Light, Scene, Surface, load_photo
from training.synth.camera import Camera

log = logging.getLogger(__name__)

NEAR_M = 0.02
FAR_M = 300.0
DEFAULT_VISIBILITY_TOLERANCE_M = 0.10
_PHOTO_CACHE = 8

# Lighting is Lambert plus ambient, evaluated per vertex: walls, floors and box faces are flat, so that is exact
# for them, and the body's vertices are a centimetre or so apart. Garment patterns are evaluated per pixel.
_LIGHT = """
uniform mat4 u_clip;   // world -> clip, pixel centres at integer OpenCV coordinates; clip w = camera-frame z
uniform vec3 u_eye;
uniform vec3 u_light_dir;
uniform float u_light;
uniform float u_ambient;
float lambert(vec3 n) { return u_ambient + u_light * max(dot(n, u_light_dir), 0.0); }
"""

_SURFACE_VERTEX = (
    "#version 330\n"
    + _LIGHT
    + """
uniform int u_unlit;   // photos carry their own lighting
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
in vec3 in_colour;
out vec2 v_uv;
out vec3 v_tint;
void main() {
    gl_Position = u_clip * vec4(in_pos, 1.0);
    v_uv = in_uv;
    vec3 n = in_normal;
    if (dot(n, u_eye - in_pos) < 0.0) n = -n;  // light the side the camera sees
    v_tint = in_colour * (u_unlit == 1 ? 1.0 : lambert(n));
}
"""
)

_SURFACE_FRAGMENT = """
#version 330
uniform float u_gain;  // the camera's exposure
uniform int u_textured;
uniform sampler2D u_texture;
in vec2 v_uv;
in vec3 v_tint;
layout(location = 0) out vec4 f_colour;  // alpha 0: not the person
layout(location = 1) out float f_depth;  // camera-frame z: 1 / (1 / clip w), exact at every pixel
void main() {
    vec3 c = u_textured == 1 ? v_tint * texture(u_texture, v_uv).rgb : v_tint;
    f_colour = vec4(min(c * u_gain, vec3(1.0)), 0.0);
    f_depth = 1.0 / gl_FragCoord.w;
}
"""

_BODY_VERTEX = (
    "#version 330\n"
    + _LIGHT
    + """
uniform vec2 u_axis;   // body's vertical axis (x, z), for pattern coordinates when the mesh has no uv
uniform int u_has_uv;
in vec3 in_pos;
in vec3 in_normal;     // outward, not normalised
in vec2 in_uv;
in vec4 in_region_a;   // one-hot region (SKIN, HAIR, TOP, BOTTOM | SHOES, EYES, LIPS, -), interpolated so that
in vec4 in_region_b;   // each pixel takes the nearest region: borders run smoothly through triangles
out vec2 v_uv;
out float v_shade;
out vec4 v_region_a;
out vec4 v_region_b;
void main() {
    gl_Position = u_clip * vec4(in_pos, 1.0);
    v_shade = lambert(normalize(in_normal));
    v_region_a = in_region_a;
    v_region_b = in_region_b;
    // Without uv: metres around and along the body's axis, so stripes run level round the torso.
    v_uv = u_has_uv == 1 ? in_uv : vec2(atan(in_pos.x - u_axis.x, in_pos.z - u_axis.y) * 0.16, in_pos.y);
}
"""
)

_BODY_FRAGMENT = """
#version 330
uniform float u_gain;
uniform int u_has_iris;
uniform vec3 u_iris[2];      // each eyeball's front in uv: centre, radius
uniform vec3 u_region_colour[7];
uniform ivec2 u_pattern;     // TOP, BOTTOM: 0 plain, 1 stripes, 2 checks
uniform vec3 u_second[2];
uniform vec4 u_axes[2];      // pattern axes: (cos, sin, -sin, cos) of its angle, over its period
in vec2 v_uv;
in float v_shade;
in vec4 v_region_a;
in vec4 v_region_b;
layout(location = 0) out vec4 f_colour;  // alpha 1: the person
layout(location = 1) out float f_depth;

const float IRIS_RADIUS = 0.3;   // of the cap's radius in uv
const float PUPIL_RADIUS = 0.12;
const vec3 SCLERA = vec3(0.92, 0.90, 0.86);

float pattern(int kind, vec2 p, vec4 axes) {
    vec2 q = vec2(dot(p, axes.xy), dot(p, axes.zw));
    if (kind == 1) return step(0.5, fract(q.y));
    if (kind == 2) return mod(floor(q.x) + floor(q.y), 2.0);
    return 0.0;
}

void main() {
    int region = 0;
    float best = v_region_a.x;
    if (v_region_a.y > best) { best = v_region_a.y; region = 1; }
    if (v_region_a.z > best) { best = v_region_a.z; region = 2; }
    if (v_region_a.w > best) { best = v_region_a.w; region = 3; }
    if (v_region_b.x > best) { best = v_region_b.x; region = 4; }
    if (v_region_b.y > best) { best = v_region_b.y; region = 5; }
    if (v_region_b.z > best) { region = 6; }
    vec3 albedo = u_region_colour[region];
    if (region == 5 && u_has_iris == 1) {
        // white of the eye, the iris (the eye colour) over the middle of the cap, a dark pupil in it
        float d = min(distance(v_uv, u_iris[0].xy) / u_iris[0].z, distance(v_uv, u_iris[1].xy) / u_iris[1].z);
        albedo = d < IRIS_RADIUS ? (d < PUPIL_RADIUS ? vec3(0.03) : albedo) : SCLERA;
    }
    if (region == 2 || region == 3) {
        int g = region - 2;
        albedo = mix(albedo, u_second[g], pattern(u_pattern[g], v_uv, u_axes[g]));
    }
    f_colour = vec4(min(albedo * v_shade * u_gain, vec3(1.0)), 1.0);
    f_depth = 1.0 / gl_FragCoord.w;
}
"""


# Auto-exposure metered on the face, as webcams do: a face turned to the camera lands at EXPOSURE_TARGET(skin
# luma) whatever the light and the skin, so a light face is not clipped white and a deep one is not drawn nearly
# black, while lighter skin still renders lighter. The room takes the same gain (a deep-skinned subject brightens
# the wall behind). The meter reads the light on a surface facing the camera, so an empty frame of the same scene
# and camera is exposed as the frames with the person in it.
EXPOSURE_TARGET = (0.38, 0.40)  # face value = a + b * skin luma (sRGB 0..1)
EXPOSURE_GAIN = (0.4, 2.2)  # a camera that meters on a deep-skinned face still keeps a light shirt


def exposure_gain(skin: Sequence[float], light: Light, camera: Camera) -> float:
    """The camera gain that puts a face of colour `skin`, turned to `camera`, at its exposure target."""
    luma = 0.2126 * skin[0] + 0.7152 * skin[1] + 0.0722 * skin[2]
    facing = max(0.0, float(np.dot(light.unit_direction(), -np.asarray(camera.rotation)[2])))
    face = max(1e-3, luma * (light.ambient + light.intensity * facing))
    target = EXPOSURE_TARGET[0] + EXPOSURE_TARGET[1] * luma
    return float(np.clip(target / face, *EXPOSURE_GAIN))


@dataclass(frozen=True)
class Frame:
    """One rendered image: `rgb` (H, W, 3) uint8; `silhouette` (H, W) uint8, 255 on the person and 0 elsewhere
    (props, walls and photo excluded); `depth` (H, W) float32 camera-frame z in metres, inf where nothing was
    drawn; and the `camera` it was drawn with."""

    rgb: np.ndarray
    silhouette: np.ndarray
    depth: np.ndarray
    camera: Camera

    def project(self, points_world: Any, *, tolerance_m: Any = DEFAULT_VISIBILITY_TOLERANCE_M) -> np.ndarray:
        """World points (N, 3) -> (N, 3) float32 [x_px, y_px, visible].

        Pixels follow OpenCV (pixel centres at integers, the rasteriser's own convention here). `visible` is 1.0
        when the point lies in front of the camera, inside the image, and no drawn surface lies more than
        `tolerance_m` in front of it at its pixel. `tolerance_m` is one value or one per point: a point on the
        skin needs a few millimetres; a joint centre sits inside the body (a hip some 0.1 m behind the skin
        seen from the front or back), so it needs about its depth, or it would count as hidden by its own body."""
        pts = np.asarray(points_world, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise ValueError(f"Frame.project: points must have shape (N, 3), got {pts.shape}")
        tol = np.asarray(tolerance_m, dtype=np.float64)
        if tol.ndim > 1 or (tol.ndim == 1 and tol.shape != (len(pts),)) or not np.all((tol >= 0.0) & (tol < 10.0)):
            raise ValueError(f"Frame.project: tolerance_m must be 0..10 metres, one value or one per point, got {tol}")
        tol = np.broadcast_to(tol, (len(pts),))
        uv, z = self.camera.project(pts)
        h, w = self.depth.shape
        finite = np.all(np.isfinite(uv), axis=1)
        col, row = np.rint(np.where(np.isfinite(uv), uv, -1.0)).astype(np.int64).T
        inside = finite & (z > NEAR_M) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        surface = np.full(len(pts), -np.inf)
        surface[inside] = self.depth[row[inside], col[inside]]
        visible = inside & (z <= surface + tol)
        return np.column_stack([uv, visible.astype(np.float64)]).astype(np.float32)


def clip_matrix(camera: Camera) -> np.ndarray:
    """4x4 float64 world -> GL clip coordinates for `camera`; the clip w of a point is its camera-frame z.

    A pixel centre at integer OpenCV coordinate u sits at GL window coordinate u + 0.5, and GL's window y (up from
    row 0 of the read-back buffer) equals OpenCV's v (down from the top row), so read-back rows come out top first."""
    view = np.eye(4)
    view[:3, :3] = camera.rotation
    view[:3, 3] = -camera.rotation @ np.asarray(camera.centre, dtype=np.float64)
    w, h = camera.width, camera.height
    n, f = NEAR_M, FAR_M
    proj = np.array(
        [
            [2 * camera.fx / w, 0.0, (2 * camera.cx + 1) / w - 1, 0.0],
            [0.0, 2 * camera.fy / h, (2 * camera.cy + 1) / h - 1, 0.0],
            [0.0, 0.0, (f + n) / (f - n), -2 * f * n / (f - n)],
            [0.0, 0.0, 1.0, 0.0],
        ]
    )
    return proj @ view


def _gl_matrix(m: np.ndarray) -> bytes:
    return np.ascontiguousarray(m.T, dtype=np.float32).tobytes()  # GL reads matrices column by column


class NormalSolver:
    """Area-weighted vertex normals for one topology, with numpy only: the face-corner list is sorted by vertex
    once, so each frame is a cross product and one segmented sum. Normals point out of a closed mesh whichever
    way its faces wind (the sign follows the mesh's signed volume)."""

    def __init__(self, faces: np.ndarray, n_vertices: int) -> None:
        self.faces_t = np.ascontiguousarray(faces.T, dtype=np.intp)
        corners = faces.ravel()
        order = np.argsort(corners, kind="stable")
        self.face_of_corner = order // 3
        sorted_vertex = corners[order]
        self.starts = np.flatnonzero(np.r_[True, sorted_vertex[1:] != sorted_vertex[:-1]])
        self.vertex_of_segment = sorted_vertex[self.starts]
        self.n_vertices = n_vertices
        self.complete = len(self.starts) == n_vertices  # every vertex is used by a face
        self.outward_ccw = True  # set per frame: do the faces wind counter-clockwise seen from outside?

    def __call__(self, vertices: np.ndarray) -> np.ndarray:
        v = vertices
        a = v[self.faces_t[0]]
        e1, e2 = v[self.faces_t[1]] - a, v[self.faces_t[2]] - a
        fn = np.empty_like(e1)
        fn[:, 0] = e1[:, 1] * e2[:, 2] - e1[:, 2] * e2[:, 1]
        fn[:, 1] = e1[:, 2] * e2[:, 0] - e1[:, 0] * e2[:, 2]
        fn[:, 2] = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
        self.outward_ccw = float(np.einsum("ij,ij->", a, fn)) >= 0.0  # 6 x the signed volume
        if not self.outward_ccw:
            np.negative(fn, out=fn)
        sums = np.add.reduceat(fn[self.face_of_corner], self.starts, axis=0)
        if self.complete:
            return sums
        out = np.zeros((self.n_vertices, 3), dtype=fn.dtype)
        out[self.vertex_of_segment] = sums
        return out


def is_closed_and_oriented(faces: np.ndarray) -> bool:
    """Is every edge shared by exactly two faces that run along it in opposite directions (a closed surface
    wound one way)? Only then may the renderer skip the faces turned away from the camera."""
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    n = int(faces.max()) + 1 if faces.size else 0
    forward = np.unique(directed[:, 0] * n + directed[:, 1])
    backward = np.unique(directed[:, 1] * n + directed[:, 0])
    return len(forward) == len(directed) and np.array_equal(forward, backward)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Outward, area-weighted vertex normals (V, 3) float32, not normalised."""
    return NormalSolver(faces, len(vertices))(np.asarray(vertices, dtype=np.float32))


_CONTEXT: Any = None


def gl_context() -> Any:
    """The process's moderngl context (EGL, no display), created on first use."""
    global _CONTEXT  # noqa: PLW0603 - one context per process, shared by every renderer
    if _CONTEXT is None:
        try:
            import moderngl
        except ImportError as exc:
            raise RuntimeError(
                "avatar renderer: moderngl is missing; install the train extra (pip install -e .[train])"
            ) from exc
        try:
            settings: dict[str, Any] = {"backend": "egl"}  # no display server: a headless EGL context
            _CONTEXT = moderngl.create_context(standalone=True, **settings)
        except Exception as exc:
            raise RuntimeError(
                "avatar renderer: no EGL OpenGL context; install libegl1 libegl-mesa0 libgl1-mesa-dri "
                f"(scripts/system-deps.sh): {exc}"
            ) from exc
        log.info("avatar renderer: %s, OpenGL %s", _CONTEXT.info["GL_RENDERER"], _CONTEXT.info["GL_VERSION"])
    return _CONTEXT


class _Body:
    """GPU buffers for one body topology: indices, regions and uv stay; positions + normals are rewritten per frame."""

    def __init__(self, ctx: Any, program: Any, mesh: AvatarMesh) -> None:
        self.faces = np.array(mesh.faces, dtype=np.int32, copy=True)
        self.regions = np.array(mesh.regions, dtype=np.uint8, copy=True)
        self.uv = None if mesh.uv is None else np.array(mesh.uv, dtype=np.float32, copy=True)
        n = mesh.n_vertices
        self.normals = NormalSolver(self.faces, n)
        self.closed = is_closed_and_oriented(self.faces)
        self.interleaved = np.empty((n, 6), dtype=np.float32)
        self.dynamic = ctx.buffer(reserve=self.interleaved.nbytes, dynamic=True)
        one_hot = np.zeros((n, 8), dtype=np.float32)
        one_hot[np.arange(n), self.regions] = 1.0
        self.buffers = [self.dynamic, ctx.buffer(one_hot.tobytes())]
        self.index = ctx.buffer(self.faces.tobytes())
        content: list[tuple[Any, ...]] = [
            (self.dynamic, "3f 3f", "in_pos", "in_normal"),
            (self.buffers[1], "4f 4f", "in_region_a", "in_region_b"),
        ]
        if self.uv is not None:
            self.buffers.append(ctx.buffer(self.uv.tobytes()))
            content.append((self.buffers[2], "2f", "in_uv"))
        self.vao = ctx.vertex_array(program, content, index_buffer=self.index, index_element_size=4)

    def matches(self, mesh: AvatarMesh) -> bool:
        if mesh.faces.shape != self.faces.shape or mesh.regions.shape != self.regions.shape:
            return False
        if (mesh.uv is None) != (self.uv is None):
            return False
        same_uv = mesh.uv is None or self.uv is None or np.array_equal(mesh.uv, self.uv)
        return bool(np.array_equal(mesh.faces, self.faces) and np.array_equal(mesh.regions, self.regions) and same_uv)

    def upload(self, mesh: AvatarMesh) -> None:
        self.interleaved[:, :3] = mesh.vertices
        self.interleaved[:, 3:] = self.normals(self.interleaved[:, :3])
        self.dynamic.write(self.interleaved)

    def release(self) -> None:
        self.vao.release()
        self.index.release()
        for buf in self.buffers:
            buf.release()


class _RoomGL:
    """A room's surfaces (each with its texture) on the GPU. The textures depend only on the room and the scene's
    seed (Scene.surfaces), so scenes that differ in light or props share one _RoomGL."""

    def __init__(self, ctx: Any, program: Any, scene: Scene) -> None:
        self.surfaces: list[tuple[Surface, Any, Any]] = []
        self._buffers: list[Any] = []
        for s in scene.surfaces():
            buf = ctx.buffer(_quad(s.origin, s.u_edge, s.v_edge, s.normal).astype(np.float32).tobytes())
            vao = ctx.vertex_array(program, [(buf, _SURFACE_LAYOUT, *_SURFACE_ATTRIBUTES)])
            self.surfaces.append((s, vao, _texture(ctx, s.texture)))
            self._buffers.append(buf)

    def release(self) -> None:
        for _, vao, tex in self.surfaces:
            vao.release()
            tex.release()
        for buf in self._buffers:
            buf.release()


def _room_key(scene: Scene) -> tuple[Any, ...]:
    return (scene.room, scene.seed)


_SURFACE_LAYOUT = "3f 3f 2f 3f"
_PROP_BOXES = 32  # boxes the props buffer holds before it grows
_SURFACE_ATTRIBUTES = ("in_pos", "in_normal", "in_uv", "in_colour")
_WHITE = np.ones(3)


def _texture(ctx: Any, image: np.ndarray) -> Any:
    import moderngl

    tex = ctx.texture((image.shape[1], image.shape[0]), 3, np.ascontiguousarray(image).tobytes(), alignment=1)
    tex.build_mipmaps()
    tex.filter = (moderngl.LINEAR_MIPMAP_NEAREST, moderngl.LINEAR)
    tex.repeat_x = tex.repeat_y = False
    return tex


def _quad(origin: np.ndarray, u_edge: np.ndarray, v_edge: np.ndarray, normal: np.ndarray,
          uv: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)) -> np.ndarray:  # fmt: skip
    """Two triangles (6, 11): position, normal, texture coordinate (u0, v0 at origin; u1, v1 opposite), white."""
    u0, v0, u1, v1 = uv
    corners = np.stack([origin, origin + u_edge, origin + u_edge + v_edge, origin + v_edge])
    tex = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]])
    rows = np.column_stack([corners, np.broadcast_to(normal, (4, 3)), tex, np.broadcast_to(_WHITE, (4, 3))])
    return rows[[0, 1, 2, 0, 2, 3]]


_BOX_FACES = (  # (axis, sign) of each face's outward normal
    (0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0), (2, 1.0), (2, -1.0),
)  # fmt: skip


def _box_vertices(centre: Any, size: Any, yaw_deg: float, colour: Any) -> np.ndarray:
    """36 vertices (position, normal, uv, colour) of a box turned by yaw_deg about the vertical through its centre."""
    half = np.asarray(size, np.float64) / 2
    yaw = math.radians(yaw_deg)
    rot = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rows = []
    for axis, sign in _BOX_FACES:
        a, b = [k for k in range(3) if k != axis]
        normal = np.zeros(3)
        normal[axis] = sign
        corners = []
        for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            p = np.zeros(3)
            p[axis], p[a], p[b] = sign * half[axis], sa * half[a], sb * half[b]
            corners.append(p)
        for i in (0, 1, 2, 0, 2, 3):
            rows.append(np.concatenate([rot @ corners[i] + np.asarray(centre), rot @ normal, (0.0, 0.0), colour]))
    return np.asarray(rows)


class AvatarRenderer:
    """Renders an AvatarMesh in a Scene through a Camera with an Appearance. One instance per image size; all
    share the process's GL context. Not thread-safe: use one thread (or one process) per renderer."""

    def __init__(self, width: int = 640, height: int = 480, *, scene_cache: int = 8) -> None:
        """`scene_cache`: how many rooms keep their textures on the GPU (about 10 MB each). Drawing a new room's
        textures costs tens of milliseconds, so a data set should cycle through a pool of at most this many rooms
        (scenes.room_pool); a scene's light and props (desk, chair) may change freely without redrawing them."""
        if not (16 <= width <= 8192 and 16 <= height <= 8192):
            raise ValueError(f"AvatarRenderer: image size must be 16..8192 pixels a side, got {width}x{height}")
        if scene_cache < 1:
            raise ValueError(f"AvatarRenderer: scene_cache must be at least 1, got {scene_cache}")
        self.scene_cache = int(scene_cache)
        self.width, self.height = int(width), int(height)
        self.ctx = gl_context()
        ctx = self.ctx
        self.surface_program = ctx.program(vertex_shader=_SURFACE_VERTEX, fragment_shader=_SURFACE_FRAGMENT)
        self.body_program = ctx.program(vertex_shader=_BODY_VERTEX, fragment_shader=_BODY_FRAGMENT)
        size = (self.width, self.height)
        self._colour = ctx.renderbuffer(size, components=4)  # RGB + person flag in alpha
        self._depth_out = ctx.renderbuffer(size, components=1, dtype="f4")  # camera-frame z, metres
        self._zbuffer = ctx.depth_renderbuffer(size)
        self.fbo = ctx.framebuffer(color_attachments=[self._colour, self._depth_out], depth_attachment=self._zbuffer)
        self._photo_buf = ctx.buffer(reserve=6 * 11 * 4, dynamic=True)
        self._photo_vao = ctx.vertex_array(
            self.surface_program, [(self._photo_buf, _SURFACE_LAYOUT, *_SURFACE_ATTRIBUTES)]
        )
        self._body: _Body | None = None
        self._rooms: OrderedDict[tuple[Any, ...], _RoomGL] = OrderedDict()
        self._props_buf = ctx.buffer(reserve=_PROP_BOXES * 36 * 11 * 4, dynamic=True)
        self._props_vao = ctx.vertex_array(
            self.surface_program, [(self._props_buf, _SURFACE_LAYOUT, *_SURFACE_ATTRIBUTES)]
        )
        self._props_key: tuple[Box, ...] = ()
        self._photos: OrderedDict[str, Any] = OrderedDict()
        self.surface_program["u_texture"].value = 0

    # --- public -----------------------------------------------------------------------------------------------

    def render(self, mesh: AvatarMesh | None, scene: Scene, camera: Camera, look: Appearance) -> Frame:
        """Draw `mesh` (None: the empty scene) in `scene` through `camera`, coloured by `look`."""
        import moderngl

        self._check(mesh, scene, camera, look)
        clip = clip_matrix(camera)
        eye = np.asarray(camera.centre, dtype=np.float64)
        light = scene.light
        shared = {
            "u_clip": _gl_matrix(clip),
            "u_eye": np.asarray(eye, np.float32).tobytes(),
            "u_light_dir": np.asarray(light.unit_direction(), np.float32).tobytes(),
            "u_light": np.float32(light.intensity).tobytes(),
            "u_ambient": np.float32(light.ambient).tobytes(),
            "u_gain": np.float32(exposure_gain(look.skin, light, camera)).tobytes(),
        }
        for prog in (self.surface_program, self.body_program):
            for name, data in shared.items():
                member = prog.get(name, None)  # a program that does not use a uniform has none by that name
                if member is not None:
                    member.write(data)

        ctx = self.ctx
        self.fbo.use()
        ctx.viewport = (0, 0, self.width, self.height)
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE | moderngl.BLEND)
        self.fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)

        # Nearest first, so that the early depth test skips the wall pixels the body and props hide.
        if mesh is not None:
            self._draw_body(mesh, look)
        room_gl = self._room_gl(scene)
        prog = self.surface_program
        prog["u_unlit"].value = 0
        prog["u_textured"].value = 0
        if scene.props:
            self._draw_props(scene.props)
        prog["u_textured"].value = 1
        for surface, vao, tex in room_gl.surfaces:
            # Walls are seen from inside only: one seen from behind (a camera in or beyond it) is not drawn.
            if surface.one_sided and float(np.dot(surface.normal, eye - surface.origin)) <= 0.0:
                continue
            tex.use(0)
            vao.render(moderngl.TRIANGLES)
        if scene.backdrop == "photo":
            self._draw_photo(scene, camera)
        return self._read(camera)

    # --- drawing ----------------------------------------------------------------------------------------------

    def _draw_body(self, mesh: AvatarMesh, look: Appearance) -> None:
        import moderngl

        if self._body is None or not self._body.matches(mesh):
            if self._body is not None:
                self._body.release()
            self._body = _Body(self.ctx, self.body_program, mesh)
        self._body.upload(mesh)
        prog = self.body_program
        prog["u_has_uv"].value = int(mesh.uv is not None)
        prog["u_has_iris"].value = int(mesh.iris_uv is not None)
        if mesh.iris_uv is not None:
            prog["u_iris"].write(np.asarray(mesh.iris_uv, np.float32).tobytes())
        v = self._body.interleaved
        prog["u_axis"].value = (float(v[:, 0].mean()), float(v[:, 2].mean()))
        prog["u_region_colour"].write(look.region_colours().tobytes())
        garments: tuple[Garment, Garment] = (look.top, look.bottom)
        prog["u_pattern"].value = tuple(PATTERNS.index(g.pattern) for g in garments)
        prog["u_second"].write(np.asarray([g.second for g in garments], dtype=np.float32).tobytes())
        axes = []
        for g in garments:
            c, s = math.cos(math.radians(g.angle_deg)) / g.scale_m, math.sin(math.radians(g.angle_deg)) / g.scale_m
            axes.append((c, s, -s, c))
        prog["u_axes"].write(np.asarray(axes, dtype=np.float32).tobytes())
        if self._body.closed:
            # A closed body hides its own back faces: skip them before they are binned and rasterised. Image v runs
            # along GL's window y, a mirror of the usual view, so faces that wind counter-clockwise seen from outside
            # arrive clockwise.
            self.ctx.front_face = "cw" if self._body.normals.outward_ccw else "ccw"
            self.ctx.cull_face = "back"
            self.ctx.enable(moderngl.CULL_FACE)
        self._body.vao.render(moderngl.TRIANGLES)
        self.ctx.disable(moderngl.CULL_FACE)

    def _draw_photo(self, scene: Scene, camera: Camera) -> None:
        import moderngl

        assert scene.photo is not None  # Scene checks this for a photo backdrop
        tex = self._photos.get(scene.photo)
        if tex is None:
            tex = _texture(self.ctx, load_photo(scene.photo))
            self._photos[scene.photo] = tex
            if len(self._photos) > _PHOTO_CACHE:
                self._photos.popitem(last=False)[1].release()
        self._photos.move_to_end(scene.photo)
        self._photo_buf.write(_photo_quad(scene, camera, load_photo(scene.photo).shape).astype(np.float32).tobytes())
        prog = self.surface_program
        prog["u_unlit"].value = 1
        prog["u_textured"].value = 1
        tex.use(0)
        self._photo_vao.render(moderngl.TRIANGLES)

    def _room_gl(self, scene: Scene) -> _RoomGL:
        key = _room_key(scene)
        found = self._rooms.get(key)
        if found is None:
            found = _RoomGL(self.ctx, self.surface_program, scene)
            self._rooms[key] = found
            if len(self._rooms) > self.scene_cache:
                self._rooms.popitem(last=False)[1].release()
        self._rooms.move_to_end(key)
        return found

    def _draw_props(self, props: tuple[Box, ...]) -> None:
        """The props' boxes, rewritten into one buffer when they change (a few hundred vertices: cheap)."""
        import moderngl

        if props != self._props_key:
            data = np.concatenate([_box_vertices(b.centre, b.size, b.yaw_deg, b.colour) for b in props])
            if len(props) > _PROP_BOXES:
                self._props_buf.orphan(data.astype(np.float32).nbytes)
            self._props_buf.write(data.astype(np.float32).tobytes())
            self._props_key = props
        self._props_vao.render(moderngl.TRIANGLES, vertices=36 * len(props))

    def _read(self, camera: Camera) -> Frame:
        h, w = self.height, self.width
        rgba = np.empty((h, w, 4), dtype=np.uint8)
        depth = np.empty((h, w), dtype=np.float32)
        self.fbo.read_into(rgba, components=4, attachment=0)
        self.fbo.read_into(depth, components=1, attachment=1, dtype="f4")
        depth[depth <= 0.0] = np.inf  # cleared to 0: nothing drawn there
        rgb = cv2.cvtColor(rgba, cv2.COLOR_RGBA2RGB)  # SIMD copies, a third of the cost of numpy's strided ones
        silhouette = cv2.extractChannel(rgba, 3)
        return Frame(rgb=rgb, silhouette=silhouette, depth=depth, camera=camera)

    # --- checks -----------------------------------------------------------------------------------------------

    def _check(self, mesh: AvatarMesh | None, scene: Scene, camera: Camera, look: Appearance) -> None:
        if mesh is not None and not isinstance(mesh, AvatarMesh):
            raise ValueError(f"render: mesh must be an AvatarMesh or None, got {type(mesh).__name__}")
        if not isinstance(scene, Scene):
            raise ValueError(f"render: scene must be a Scene (training.synth.avatar.scene), got {type(scene).__name__}")
        if not isinstance(camera, Camera):
            raise ValueError(f"render: camera must be a training.synth.camera.Camera, got {type(camera).__name__}")
        if not isinstance(look, Appearance):
            raise ValueError(f"render: look must be an Appearance, got {type(look).__name__}")
        if (camera.width, camera.height) != (self.width, self.height):
            raise ValueError(
                f"render: camera is {camera.width}x{camera.height} but this renderer draws {self.width}x{self.height}"
            )
        if camera.k1 or camera.k2:
            raise ValueError("render: the avatar renderer draws distortion-free cameras; k1 and k2 must be 0")
        if not (camera.fx > 0 and camera.fy > 0):
            raise ValueError(f"render: camera focal lengths must be positive, got fx={camera.fx}, fy={camera.fy}")
        if mesh is not None:
            if mesh.n_vertices == 0 or len(mesh.faces) == 0:
                raise ValueError("render: mesh has no vertices or no faces")
            if not np.isfinite(mesh.vertices).all():
                raise ValueError("render: mesh vertices contain NaN or inf")
            if int(mesh.regions.max()) >= len(Region):
                raise ValueError(
                    f"render: mesh regions must be Region values 0..{len(Region) - 1}, got {mesh.regions.max()}"
                )


def _photo_quad(scene: Scene, camera: Camera, photo_shape: tuple[int, ...]) -> np.ndarray:
    """The photo as a rectangle `photo_distance_m` in front of the camera, perpendicular to its axis and a little
    larger than the view; texture coordinates crop the photo to the view's aspect ratio (no stretching)."""
    d = scene.photo_distance_m
    w, h = camera.width, camera.height
    margin = 2.0
    us = np.array([-0.5 - margin, w - 0.5 + margin])
    vs = np.array([-0.5 - margin, h - 0.5 + margin])
    corners_cam = np.array(
        [[(u - camera.cx) / camera.fx * d, (v - camera.cy) / camera.fy * d, d] for v in vs for u in us]
    )
    rot = np.asarray(camera.rotation)
    world = corners_cam @ rot + np.asarray(camera.centre)  # camera -> world: R^T x + C, row-wise
    normal = -rot[2]
    # Crop: the largest window of the view's aspect inside the scene's crop rectangle, centred in it.
    ph, pw = photo_shape[0], photo_shape[1]
    x0, y0, x1, y1 = scene.photo_crop
    crop_w, crop_h = (x1 - x0) * pw, (y1 - y0) * ph
    view_aspect = (us[1] - us[0]) / (vs[1] - vs[0])
    if crop_w / crop_h > view_aspect:
        tw, th = crop_h * view_aspect / pw, (y1 - y0)
    else:
        tw, th = (x1 - x0), crop_w / view_aspect / ph
    tx0, ty0 = (x0 + x1 - tw) / 2, (y0 + y1 - th) / 2
    left, right = (tx0 + tw, tx0) if scene.photo_flip else (tx0, tx0 + tw)
    # corners: (u0, v0), (u1, v0), (u0, v1), (u1, v1) -> origin at the view's top left, u to the right, v down
    return _quad(world[0], world[1] - world[0], world[2] - world[0], normal, (left, ty0, right, ty0 + th))
