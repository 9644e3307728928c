"""The avatar renderer against geometry whose image is known: real GL (Mesa's llvmpipe on EGL), procedural meshes."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("moderngl")

from training.synth.avatar.appearance import MONK_SKIN_TONES, Appearance, Garment, sample_appearance
from training.synth.avatar.camera import CameraPose, aim, role_camera
from training.synth.avatar.imaging import Imaging, apply_imaging, sample_imaging
from training.synth.avatar.mesh import AvatarMesh, Region, SeatedPlacement
from training.synth.avatar.render import AvatarRenderer, Frame, vertex_normals
from training.synth.avatar.scene import Box, Light, Room, Scene, desk_and_chair, make_scene

W, H = 320, 240


@pytest.fixture(scope="module")
def renderer() -> AvatarRenderer:
    try:
        return AvatarRenderer(W, H)
    except RuntimeError as exc:  # no EGL on this machine: scripts/system-deps.sh installs it
        pytest.skip(str(exc))


def tube_person(*, height: float = 1.7, radius: float = 0.17, x: float = 0.0, z: float = 0.0) -> AvatarMesh:
    """A closed, person-sized tube (capped) standing on the floor, with regions by height."""
    n_around, n_up = 48, 60
    th = np.linspace(0, 2 * np.pi, n_around, endpoint=False)
    ys = np.linspace(0.0, height, n_up)
    r = radius * (0.7 + 0.3 * np.sin(np.pi * ys / height))[:, None]
    ring = np.stack([x + r * np.sin(th), np.repeat(ys[:, None], n_around, axis=1), z + r * np.cos(th)], -1)
    ring = ring.reshape(-1, 3)
    verts = np.concatenate([ring, [[x, 0.0, z], [x, height, z]]]).astype(np.float32)
    bottom, top = len(ring), len(ring) + 1
    faces = []
    for i in range(n_up - 1):
        for j in range(n_around):
            a, b = i * n_around + j, i * n_around + (j + 1) % n_around
            faces += [(a, b, b + n_around), (a, b + n_around, a + n_around)]
    for j in range(n_around):
        faces += [
            (bottom, (j + 1) % n_around, j),
            (top, (n_up - 1) * n_around + j, (n_up - 1) * n_around + (j + 1) % n_around),
        ]
    y = verts[:, 1]
    regions = np.select(
        [y > 1.55, y > 1.45, y > 0.85, y > 0.08], [Region.HAIR, Region.SKIN, Region.TOP, Region.BOTTOM], Region.SHOES
    ).astype(np.uint8)
    return AvatarMesh(verts, np.asarray(faces, np.int32), regions)


def board(corners: np.ndarray, region: Region = Region.TOP) -> AvatarMesh:
    """A flat quadrilateral 'person' (two triangles) with the given four corners, in order round its edge."""
    return AvatarMesh(
        corners.astype(np.float32), np.array([[0, 1, 2], [0, 2, 3]], np.int32), np.full(4, region, np.uint8)
    )


def plain_look() -> Appearance:
    g = Garment(colour=(0.2, 0.4, 0.8))
    return Appearance(skin=(0.8, 0.6, 0.5), hair=(0.1, 0.1, 0.1), eyes=(0.2, 0.2, 0.2), lips=(0.6, 0.3, 0.3),
                      shoes=(0.1, 0.1, 0.1), top=g, bottom=g)  # fmt: skip


def empty_room(**kw: object) -> Scene:
    room = Room(-4.0, 4.0, -4.0, 6.0, floor="linoleum", **kw)  # type: ignore[arg-type]
    return Scene("office", room, Light(), seed=1)


def front_camera(distance: float = 3.0, height: float = 1.0, **kw: float) -> CameraPose:
    return aim((0.0, height, distance), (0.0, 0.9, 0.0), hfov_deg=kw.pop("hfov_deg", 60.0), **kw)


def render_seeded(renderer: AvatarRenderer, seed: int, backdrop: str) -> tuple[Frame, np.ndarray]:
    rng = np.random.default_rng(seed)
    scene = make_scene(backdrop, rng)
    camera = role_camera("booth-end", rng, (0.0, 1.0, 0.0)).camera(W, H)
    frame = renderer.render(tube_person(), scene, camera, sample_appearance(rng))
    return frame, apply_imaging(frame.rgb, sample_imaging(rng), rng)


# --- reproducibility -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("backdrop", ["office", "corridor", "clinic", "photo"])
def test_same_seed_gives_byte_identical_images(renderer: AvatarRenderer, backdrop: str) -> None:
    a, a_degraded = render_seeded(renderer, 7, backdrop)
    other = AvatarRenderer(W, H)  # a second renderer: no state carried between them
    render_seeded(other, 8, backdrop)  # and another scene in between, so caches are exercised
    b, b_degraded = render_seeded(other, 7, backdrop)
    assert a.rgb.tobytes() == b.rgb.tobytes()
    assert a.silhouette.tobytes() == b.silhouette.tobytes()
    assert a.depth.tobytes() == b.depth.tobytes()
    assert a_degraded.tobytes() == b_degraded.tobytes()
    c, _ = render_seeded(renderer, 8, backdrop)
    assert c.rgb.tobytes() != a.rgb.tobytes()


# --- projection agrees with the rasteriser ---------------------------------------------------------------------


def _inside_quad(px: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For pixel centres px (N, 2): inside the convex quad, and the distance in pixels to its nearest edge."""
    inside = np.ones(len(px), bool)
    nearest = np.full(len(px), np.inf)
    d1, d2 = quad[1] - quad[0], quad[2] - quad[1]
    sign = np.sign(d1[0] * d2[1] - d1[1] * d2[0])
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        edge = b - a
        side = sign * (edge[0] * (px[:, 1] - a[1]) - edge[1] * (px[:, 0] - a[0])) / np.linalg.norm(edge)
        inside &= side > 0
        nearest = np.minimum(nearest, np.abs(side))
    return inside, nearest


@pytest.mark.parametrize("pose", [dict(yaw=0.0, tilt=5.0, roll=0.0), dict(yaw=20.0, tilt=-12.0, roll=7.0)])
def test_silhouette_of_a_board_is_exactly_the_pixels_whose_centres_its_projection_covers(
    renderer: AvatarRenderer, pose: dict[str, float]
) -> None:
    camera = CameraPose((0.3, 1.1, 2.5), yaw_deg=pose["yaw"], tilt_deg=pose["tilt"], roll_deg=pose["roll"],
                        hfov_deg=55.0).camera(W, H)  # fmt: skip
    # A tilted board in front of the camera: its corners project to arbitrary sub-pixel positions.
    corners = np.array([[-0.31, 0.62, 0.13], [0.42, 0.71, -0.05], [0.37, 1.43, -0.11], [-0.28, 1.36, 0.07]])
    frame = renderer.render(board(corners), empty_room(), camera, plain_look())
    quad = frame.project(corners)[:, :2].astype(np.float64)
    yy, xx = np.mgrid[0:H, 0:W]
    centres = np.column_stack([xx.ravel(), yy.ravel()]).astype(np.float64)
    inside, edge_px = _inside_quad(centres, quad)
    drawn = frame.silhouette.ravel() == 255
    decided = edge_px > 1e-3  # a centre on an edge itself may go either way (GL's tie rule)
    assert inside.sum() > 2000
    assert np.array_equal(drawn[decided], inside[decided])


def test_projected_vertex_lands_on_its_rendered_pixel_with_its_depth(renderer: AvatarRenderer) -> None:
    mesh = tube_person()
    camera = front_camera(distance=2.2, height=1.3).camera(W, H)
    frame = renderer.render(mesh, empty_room(), camera, plain_look())
    # Vertices facing the camera squarely: middle of the front, away from the silhouette's edge.
    radial = mesh.vertices[:, [0, 2]] / np.linalg.norm(mesh.vertices[:, [0, 2]], axis=1, keepdims=True).clip(1e-6)
    to_camera = camera.centre[[0, 2]] - mesh.vertices[:, [0, 2]]
    to_camera /= np.linalg.norm(to_camera, axis=1, keepdims=True)
    facing = (np.sum(radial * to_camera, axis=1) > 0.9) & (mesh.vertices[:, 1] > 0.3) & (mesh.vertices[:, 1] < 1.6)
    points = mesh.vertices[facing]
    assert len(points) >= 20
    projected = frame.project(points, tolerance_m=0.005)
    _, z = camera.project(points)
    col, row = np.rint(projected[:, 0]).astype(int), np.rint(projected[:, 1]).astype(int)
    assert np.all(frame.silhouette[row, col] == 255)
    # The rendered depth at the vertex's pixel is its own camera depth, up to the surface's slope over half a pixel.
    assert np.allclose(frame.depth[row, col], z, atol=0.004)
    assert projected[:, 2].all()


# --- depth --------------------------------------------------------------------------------------------------------


def test_depth_of_the_photo_backdrop_equals_its_distance(renderer: AvatarRenderer) -> None:
    rng = np.random.default_rng(3)
    scene = make_scene("photo", rng, photo="matplotlib:present")
    camera = CameraPose((0.0, 1.5, 4.0), tilt_deg=-20.0, hfov_deg=60.0).camera(W, H)  # looking up: photo fills the view
    frame = renderer.render(None, scene, camera, plain_look())
    assert np.all(frame.silhouette == 0)
    top = frame.depth[: H // 3]
    assert np.allclose(top, scene.photo_distance_m, rtol=1e-5)


def test_depth_of_the_floor_equals_the_ray_distance_to_the_plane(renderer: AvatarRenderer) -> None:
    pose = CameraPose((0.4, 1.6, 3.0), yaw_deg=8.0, tilt_deg=30.0, roll_deg=3.0, hfov_deg=70.0)
    camera = pose.camera(W, H)
    frame = renderer.render(None, empty_room(ceiling=None), camera, plain_look())
    rows, cols = np.meshgrid(np.arange(H // 2, H, 17), np.arange(5, W, 23), indexing="ij")
    rays_cam = np.stack([(cols - camera.cx) / camera.fx, (rows - camera.cy) / camera.fy, np.ones_like(cols, float)], -1)
    rays_world = rays_cam @ camera.rotation  # camera -> world direction, with z_cam = 1 per unit of t
    t = -camera.centre[1] / rays_world[..., 1]  # the floor is y = 0; t is the camera-frame depth
    hits = camera.centre + t[..., None] * rays_world
    on_floor = (t > 0) & (np.abs(hits[..., 0]) < 3.9) & (hits[..., 2] > -3.9) & (hits[..., 2] < 5.9)
    assert on_floor.sum() > 50
    assert np.allclose(frame.depth[rows, cols][on_floor], t[on_floor], rtol=1e-4)


@pytest.mark.parametrize("backdrop", ["office", "corridor", "clinic"])
def test_a_room_grown_to_contain_its_camera_leaves_no_pixel_empty(renderer: AvatarRenderer, backdrop: str) -> None:
    rng = np.random.default_rng(11)
    pose = role_camera("booth-end", rng, (0.0, 1.0, 0.0), distance_m=(6.0, 6.0))  # beyond any sampled room's wall
    scene = make_scene(backdrop, rng, contain=[pose.position])
    room = scene.room
    assert room.x0 < pose.position[0] < room.x1 and room.z0 < pose.position[2] < room.z1
    frame = renderer.render(tube_person(), scene, pose.camera(W, H), plain_look())
    assert np.isfinite(frame.depth).all()


# --- props occlude and are not the person ----------------------------------------------------------------------


def seated_scene() -> tuple[Scene, SeatedPlacement]:
    seated = SeatedPlacement(seat_height_m=0.47, seat_front_z_m=0.1, desk_height_m=0.74, desk_near_z_m=0.35)
    props = desk_and_chair(seated, np.random.default_rng(0))
    return Scene("office", empty_room().room, Light(), props, seed=1), seated


def test_silhouette_excludes_the_desk_and_chair_and_they_hide_the_body(renderer: AvatarRenderer) -> None:
    scene, seated = seated_scene()
    camera = aim((0.0, 1.2, 1.6), (0.0, 0.7, 0.0), hfov_deg=70.0).camera(W, H)
    empty = renderer.render(None, scene, camera, plain_look())
    bare = renderer.render(None, empty_room(), camera, plain_look())
    assert np.all(empty.silhouette == 0)
    assert np.count_nonzero(np.any(empty.rgb != bare.rgb, axis=2)) > 3000  # the props are drawn ...
    person = tube_person(z=-0.05)
    frame = renderer.render(person, scene, camera, plain_look())
    desk_front = np.array([[0.0, seated.desk_height_m - 0.015, seated.desk_near_z_m + 0.05]])
    ((x, y, _),) = frame.project(desk_front)
    assert frame.silhouette[round(y), round(x)] == 0  # ... and not part of the silhouette
    # Below the desk top the tube is hidden in this downward view; above it, it is seen.
    assert frame.silhouette.any()
    hidden = frame.project([[0.0, 0.5, 0.1]])  # tube front at knee height, behind the desk's modesty panel
    seen = frame.project([[0.0, 1.2, 0.14]])
    assert hidden[0, 2] == 0.0
    assert seen[0, 2] == 1.0


def test_point_behind_a_box_is_not_visible_and_beside_it_is(renderer: AvatarRenderer) -> None:
    wall = Box((0.0, 1.0, 0.8), (0.4, 0.4, 0.05), (0.5, 0.5, 0.5), name="screen")
    scene = Scene("office", empty_room().room, Light(), (wall,), seed=1)
    camera = front_camera(distance=3.0, height=1.0).camera(W, H)
    frame = renderer.render(tube_person(), scene, camera, plain_look())
    behind = [0.0, 1.0, 0.16]  # on the tube's front, straight behind the box
    beside = [0.0, 1.5, 0.15]  # above the box
    outside = [5.0, 1.0, 0.0]  # out of the field of view
    behind_camera = [0.0, 1.0, 3.5]
    vis = frame.project(np.array([behind, beside, outside, behind_camera]))[:, 2]
    assert vis.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_visibility_tolerance_keeps_joint_centres_inside_the_body_visible(renderer: AvatarRenderer) -> None:
    camera = front_camera(distance=3.0, height=1.0).camera(W, H)
    frame = renderer.render(tube_person(), empty_room(), camera, plain_look())
    inside = [0.0, 1.0, 0.0]  # the tube's axis, about 0.17 m behind its front surface
    far_side = [0.0, 1.0, -0.17]
    vis = frame.project(np.array([inside, far_side]), tolerance_m=0.2)[:, 2]
    assert vis.tolist() == [1.0, 0.0]
    assert frame.project(np.array([inside]))[0, 2] == 0.0  # the default 0.10 m tolerance is tighter than 0.17 m
    per_point = frame.project(np.array([inside, inside]), tolerance_m=[0.2, 0.05])[:, 2]
    assert per_point.tolist() == [1.0, 0.0]
    with pytest.raises(ValueError) as exc:
        frame.project(np.array([inside, inside]), tolerance_m=[0.2, 0.05, 0.1])
    _one_line(exc, "tolerance_m")


# --- parts ---------------------------------------------------------------------------------------------------------


def test_vertex_normals_point_out_of_a_closed_mesh_whichever_way_it_winds() -> None:
    mesh = tube_person()
    for faces in (mesh.faces, mesh.faces[:, ::-1]):
        n = vertex_normals(mesh.vertices, np.ascontiguousarray(faces))
        side = (mesh.vertices[:, 1] > 0.1) & (mesh.vertices[:, 1] < 1.6)
        radial = mesh.vertices[side][:, [0, 2]]
        assert np.all(np.sum(n[side][:, [0, 2]] * radial, axis=1) > 0)


def test_a_closed_body_renders_the_same_whichever_way_its_faces_wind(renderer: AvatarRenderer) -> None:
    mesh = tube_person()
    flipped = AvatarMesh(mesh.vertices, np.ascontiguousarray(mesh.faces[:, ::-1]), mesh.regions)
    camera = front_camera(distance=2.0, height=1.4).camera(W, H)
    a = renderer.render(mesh, empty_room(), camera, plain_look())
    b = renderer.render(flipped, empty_room(), camera, plain_look())
    assert np.array_equal(a.silhouette, b.silhouette)
    assert np.allclose(a.depth, b.depth, rtol=1e-5)  # the near side both times (back faces skipped, not the front)
    assert np.abs(a.rgb.astype(int) - b.rgb).max() <= 1


def test_stripes_alternate_between_the_two_garment_colours(renderer: AvatarRenderer) -> None:
    striped = Garment(colour=(0.9, 0.1, 0.1), pattern="stripes", second=(0.1, 0.1, 0.9), scale_m=0.1)
    look = Appearance(skin=(0.8, 0.6, 0.5), hair=(0.1, 0.1, 0.1), eyes=(0.2, 0.2, 0.2), lips=(0.6, 0.3, 0.3),
                      shoes=(0.1, 0.1, 0.1), top=striped, bottom=striped)  # fmt: skip
    camera = front_camera(distance=2.0, height=1.1).camera(W, H)
    frame = renderer.render(tube_person(), empty_room(), camera, look)
    column = frame.rgb[:, W // 2].astype(int)
    on_body = frame.silhouette[:, W // 2] == 255
    reddish = on_body & (column[:, 0] > column[:, 2] + 30)
    bluish = on_body & (column[:, 2] > column[:, 0] + 30)
    assert reddish.sum() > 10 and bluish.sum() > 10
    changes = np.count_nonzero(np.diff(reddish[on_body].astype(int)) != 0)
    assert changes >= 8  # 1.45 m of garment in 0.1 m periods: many red/blue alternations down the column


def _skin_tube(skin: tuple[float, float, float], renderer: AvatarRenderer) -> np.ndarray:
    """Luma of the pixels of a tube person whose whole surface is skin, lit by a strong key light."""
    tube = tube_person()
    bare = AvatarMesh(tube.vertices, tube.faces, np.full(tube.n_vertices, Region.SKIN, np.uint8))
    look = replace(plain_look(), skin=skin)
    scene = replace(empty_room(), light=Light(direction=(0.0, 0.3, 1.0), intensity=1.0, ambient=0.6))
    frame = renderer.render(bare, scene, front_camera(distance=2.0, height=1.1).camera(W, H), look)
    rgb = frame.rgb[frame.silhouette == 255].astype(np.float64)
    return rgb @ np.array([0.2126, 0.7152, 0.0722])


def test_exposure_keeps_light_skin_unclipped_and_deep_skin_visible(renderer: AvatarRenderer) -> None:
    """The camera meters on the face: under a bright light the lightest Monk tone is not washed out to white and
    the deepest is not drawn nearly black, and lighter skin still renders lighter."""
    lightest = _skin_tube(MONK_SKIN_TONES[0], renderer)
    deepest = _skin_tube(MONK_SKIN_TONES[-1], renderer)
    assert np.mean(lightest >= 254) < 0.05, "lightest skin clipped to white"
    assert np.median(deepest) > 60, f"deepest skin drawn nearly black: median {np.median(deepest):.0f}"
    assert np.median(lightest) > np.median(deepest) + 40


def test_eyes_show_a_white_an_iris_and_a_pupil(renderer: AvatarRenderer) -> None:
    """An eye cap (uv 0..1, centre 0.5) facing the camera: dark pupil in the middle, the eye colour round it and
    the white of the eye towards its edge."""
    corners = np.array([[-0.3, 0.6, 0.0], [0.3, 0.6, 0.0], [0.3, 1.2, 0.0], [-0.3, 1.2, 0.0]], np.float32)
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]], np.float32)
    iris = np.array([[0.5, 0.5, 0.5], [9.0, 9.0, 0.5]], np.float32)  # the second eye is elsewhere
    cap = AvatarMesh(corners, np.array([[0, 1, 2], [0, 2, 3]], np.int32), np.full(4, Region.EYES, np.uint8), uv=uv,
                     iris_uv=iris)  # fmt: skip
    look = replace(plain_look(), eyes=(0.1, 0.6, 0.2))
    camera = aim((0.0, 0.9, 1.5), (0.0, 0.9, 0.0), hfov_deg=40.0).camera(W, H)
    frame = renderer.render(cap, empty_room(), camera, look)

    def pixel(x_m: float, y_m: float) -> np.ndarray:
        u, v = camera.project(np.array([x_m, y_m, 0.0]))[0]
        return frame.rgb[round(v), round(u)].astype(int)

    pupil, iris_px, white = pixel(0.0, 0.9), pixel(0.07, 0.9), pixel(0.25, 0.9)
    assert pupil.max() < 40, pupil
    assert iris_px[1] > iris_px[0] + 40 and iris_px[1] > iris_px[2] + 40, iris_px  # the (green) eye colour
    assert white.min() > 120 and white.max() - white.min() < 40, white


def test_imaging_blurs_adds_noise_and_encodes() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = 200
    blurred = apply_imaging(img, Imaging(blur_sigma_px=2.0), rng)
    assert 0 < blurred[10, 31, 0] < 200 and blurred[10, 0, 0] == 0
    moved = apply_imaging(img, Imaging(motion_px=6.0, motion_angle_deg=0.0), rng)
    assert 0 < moved[10, 30, 0] < 200
    flat = np.full((200, 200, 3), 100, np.uint8)
    noisy = apply_imaging(flat, Imaging(read_noise=4.0), rng).astype(float)
    assert 3.5 < noisy.std() < 4.5
    jpeg = apply_imaging(img, Imaging(jpeg_quality=30), rng)
    assert not np.array_equal(jpeg, img) and np.abs(jpeg.astype(int) - img).mean() < 10


# --- bad input: one clear line ---------------------------------------------------------------------------------


def _one_line(exc: pytest.ExceptionInfo[ValueError], *words: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_bad_scene_camera_and_look_arguments_give_one_clear_line(renderer: AvatarRenderer) -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError) as e1:
        make_scene("mall", rng)
    _one_line(e1, "mall", "office", "corridor")
    with pytest.raises(ValueError) as e2:
        role_camera("drone", rng, (0, 1, 0))
    _one_line(e2, "drone", "desk-monitor", "booth-end")
    with pytest.raises(ValueError) as e3:
        role_camera("booth-end", rng, (0, 1, 0), distance=(1.0, 2.0))
    _one_line(e3, "distance", "distance_m")
    with pytest.raises(ValueError) as e4:
        CameraPose((0, 1, 2), hfov_deg=200)
    _one_line(e4, "hfov_deg", "200")
    with pytest.raises(ValueError) as e5:
        make_scene("photo", rng, photo="holiday.jpg")
    _one_line(e5, "holiday.jpg")
    with pytest.raises(ValueError) as e6:
        Garment(colour=(0.2, 0.2, 0.2), pattern="paisley")  # type: ignore[arg-type]
    _one_line(e6, "paisley", "stripes")
    with pytest.raises(ValueError) as e7:
        renderer.render(tube_person(), empty_room(), front_camera().camera(640, 480), plain_look())
    _one_line(e7, "640x480", f"{W}x{H}")
    with pytest.raises(ValueError) as e8:
        renderer.render(tube_person(), "office", front_camera().camera(W, H), plain_look())  # type: ignore[arg-type]
    _one_line(e8, "scene", "str")
    with pytest.raises(ValueError) as e9:
        Imaging(jpeg_quality=150)
    _one_line(e9, "jpeg_quality", "150")
    with pytest.raises(ValueError) as e10:
        Light(direction=(0.0, 0.0, 0.0))
    _one_line(e10, "Light.direction")


def test_role_cameras_look_at_their_target_from_the_role_position() -> None:
    rng = np.random.default_rng(5)
    for _ in range(20):
        pose = role_camera("booth-side", rng, (0.0, 1.0, -3.0))
        assert 0.9 <= pose.height_m <= 1.4
        assert 1.3 <= abs(pose.position[0]) <= 2.5  # on a side wall, either side
        camera = pose.camera(W, H)
        uv, _ = camera.project(np.array([[0.0, 1.0, -3.0]]))
        u, v = uv[0]
        assert abs(u - camera.cx) < 0.15 * W and abs(v - camera.cy) < 0.15 * H  # aimed at the target, give or take
    desk = role_camera("desk-monitor", rng, (0.0, 1.2, 0.0))
    assert desk.position[2] > 0.5 and math.isclose(abs(desk.yaw_deg), 0.0, abs_tol=15.0)
