"""Where an avatar stands: a room of textured walls (office, corridor, clinic) or a real photo far behind it,
props that hide part of the body (desk, chair, couch), and one directional light plus ambient light.

A `Scene` is a small frozen value (hashable, so the renderer can keep its textures on the GPU between frames);
`textures()` draws its surfaces with numpy and OpenCV from the scene's own seed, so a scene is fully
reproducible. Photos come from packages already on the machine: scikit-image's sample data, matplotlib's sample
data and, when Debian's `opencv-doc` is installed (scripts/system-deps.sh), OpenCV's example images. Photos that
show people (scikit-image's astronaut and camera, matplotlib's Grace Hopper, OpenCV's messi5, basketball and
left/right calibration shots) are left out: a second person would contradict the avatar's silhouette and truth.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar, get_args

import cv2
import numpy as np

from training.synth.avatar.mesh import SeatedPlacement

RGB = tuple[float, float, float]
Vec3 = tuple[float, float, float]
Backdrop = Literal["office", "corridor", "clinic", "photo"]
BACKDROPS: tuple[Backdrop, ...] = get_args(Backdrop)
Material = Literal[
    "office-wall", "corridor-wall", "locker-wall", "clinic-wall", "carpet", "tiles", "linoleum", "wood-floor",
    "ceiling",
]  # fmt: skip
MATERIALS: tuple[Material, ...] = get_args(Material)
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")


# --- photos ---------------------------------------------------------------------------------------------------


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return np.asarray(getattr(skimage.data, name)())

    return load


def _matplotlib(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        from matplotlib import cbook

        return _read(Path(str(cbook.get_sample_data(name, asfileobj=False))))

    return load


def _opencv(name: str) -> Callable[[], np.ndarray]:
    return lambda: _read(OPENCV_DATA / name)


def _read(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"photo {path}: missing or unreadable")
    return np.ascontiguousarray(img[..., ::-1])


PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    **{f"skimage:{n}": _skimage(n) for n in ("coffee", "chelsea", "rocket", "brick", "gravel", "grass")},
    "matplotlib:present": _matplotlib("Minduka_Present_Blue_Pack.png"),
    **{
        f"opencv:{Path(n).stem}": _opencv(n)
        for n in (
            "home.jpg",
            "building.jpg",
            "aloeL.jpg",
            "aloeR.jpg",
            "leuvenA.jpg",
            "leuvenB.jpg",
            "rubberwhale1.png",
            "rubberwhale2.png",
            "graf1.png",
            "graf3.png",
            "stuff.jpg",
            "box_in_scene.png",
            "starry_night.jpg",
            "squirrel_cls.jpg",
            "fruits.jpg",
            "blox.jpg",
            "butterfly.jpg",
        )
    },
}
POSTERS = ("opencv:starry_night", "matplotlib:present", "opencv:butterfly", "opencv:graf1", "skimage:rocket")


# Too small to fill a 640x480 view without showing its pixels: hung on walls as posters only.
POSTER_ONLY = frozenset({"matplotlib:present"})


def available_photos(*, backdrops_only: bool = False) -> tuple[str, ...]:
    """Photo names whose files are on this machine: scikit-image's need the package, OpenCV's the opencv-doc
    Debian package. `backdrops_only` leaves out the small ones kept for posters."""
    have = {
        "skimage": importlib.util.find_spec("skimage") is not None,
        "matplotlib": importlib.util.find_spec("matplotlib") is not None,
        "opencv": OPENCV_DATA.is_dir(),
    }
    return tuple(n for n in PHOTOS if have[n.split(":")[0]] and not (backdrops_only and n in POSTER_ONLY))


@functools.lru_cache(maxsize=32)
def load_photo(name: str) -> np.ndarray:
    """The photo `name` as uint8 RGB (H, W, 3); grey photos are repeated into three channels."""
    if name not in PHOTOS:
        raise ValueError(f"photo: unknown name {name!r}; expected one of {', '.join(PHOTOS)}")
    if name.startswith("opencv:") and not OPENCV_DATA.is_dir():
        raise ValueError(f"photo {name}: needs Debian's opencv-doc package (scripts/system-deps.sh installs it)")
    img = PHOTOS[name]()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3]
    if img.dtype != np.uint8:
        img = (np.clip(img, 0.0, 1.0) * 255).astype(np.uint8) if img.dtype.kind == "f" else img.astype(np.uint8)
    img.setflags(write=False)
    return img


# --- scene values ---------------------------------------------------------------------------------------------


def _floats(values: Sequence[float]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class Light:
    """One directional light (Lambert) plus ambient. `direction` points from the scene towards the light."""

    direction: Vec3 = (0.3, 1.0, 0.6)
    intensity: float = 0.7
    ambient: float = 0.35

    def __post_init__(self) -> None:
        object.__setattr__(self, "direction", _floats(self.direction))  # tuples keep the scene hashable
        if len(self.direction) != 3 or not math.isfinite(sum(self.direction)) or math.hypot(*self.direction) < 1e-6:
            raise ValueError(f"Light.direction: expected a non-zero finite 3-vector, got {self.direction!r}")
        if not (0.0 <= self.intensity <= 3.0):
            raise ValueError(f"Light.intensity: expected 0..3, got {self.intensity}")
        if not (0.0 <= self.ambient <= 2.0):
            raise ValueError(f"Light.ambient: expected 0..2, got {self.ambient}")

    def unit_direction(self) -> np.ndarray:
        d = np.asarray(self.direction, dtype=np.float64)
        return d / np.linalg.norm(d)


@dataclass(frozen=True)
class Box:
    """A solid, axis-aligned box prop (then turned by `yaw_deg` about its centre): desk tops, legs, seats."""

    centre: Vec3
    size: Vec3
    colour: RGB
    yaw_deg: float = 0.0
    name: str = "box"

    def __post_init__(self) -> None:
        for name in ("centre", "size", "colour"):
            object.__setattr__(self, name, _floats(getattr(self, name)))  # tuples keep the scene hashable
        if len(self.size) != 3 or min(self.size) <= 0 or not math.isfinite(sum(self.size)):
            raise ValueError(f"Box {self.name}: size must be three positive metres, got {self.size!r}")
        if len(self.centre) != 3 or not math.isfinite(sum(self.centre)):
            raise ValueError(f"Box {self.name}: centre must be three finite metres, got {self.centre!r}")
        if len(self.colour) != 3 or not all(0.0 <= c <= 1.0 for c in self.colour):
            raise ValueError(f"Box {self.name}: colour must be three sRGB values in 0..1, got {self.colour!r}")


@dataclass(frozen=True)
class Room:
    """A box-shaped room: floor at y = 0 over [x0, x1] x [z0, z1], walls `height_m` tall. Each wall (back = -z,
    front = +z, left = -x, right = +x) and the ceiling has a material or None for no surface. Walls are seen
    from inside only: a camera mounted in (or just behind) a wall sees through it."""

    x0: float
    x1: float
    z0: float
    z1: float
    height_m: float = 2.8
    floor: Material = "carpet"
    ceiling: Material | None = "ceiling"
    walls: tuple[Material | None, Material | None, Material | None, Material | None] = (
        "office-wall", "office-wall", "office-wall", "office-wall",
    )  # fmt: skip
    wall_colour: RGB = (0.85, 0.84, 0.80)
    floor_colour: RGB = (0.45, 0.45, 0.48)

    def __post_init__(self) -> None:
        if not (self.x1 - self.x0 > 0.5 and self.z1 - self.z0 > 0.5 and self.height_m > 1.0):
            raise ValueError(
                f"Room: expected x1 > x0, z1 > z0 by at least 0.5 m and height > 1 m, got x {self.x0}..{self.x1}, "
                f"z {self.z0}..{self.z1}, height {self.height_m}"
            )
        for m in (self.floor, self.ceiling, *self.walls):
            if m is not None and m not in MATERIALS:
                raise ValueError(f"Room: unknown material {m!r}; expected one of {', '.join(MATERIALS)}")


@dataclass(frozen=True)
class Surface:
    """One textured rectangle: corner `origin`, edge vectors `u_edge` and `v_edge` (texture u along the first,
    v along the second), inward `normal`, and the texture drawn for it."""

    origin: np.ndarray
    u_edge: np.ndarray
    v_edge: np.ndarray
    normal: np.ndarray
    texture: np.ndarray  # (H, W, 3) uint8; row 0 is v = 0
    one_sided: bool = True


@dataclass(frozen=True)
class Scene:
    """Backdrop, props and light. With backdrop "photo", `photo` names a photo (see `available_photos`) hung
    `photo_distance_m` in front of the camera, facing it and filling the view, over a floor of `room`.
    `photo_crop` = (x0, y0, x1, y1) as fractions of the photo, `photo_flip` mirrors it."""

    backdrop: Backdrop
    room: Room
    light: Light = field(default_factory=Light)
    props: tuple[Box, ...] = ()
    photo: str | None = None
    photo_distance_m: float = 8.0
    photo_crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    photo_flip: bool = False
    seed: int = 0  # draws the wall, floor and poster textures

    def __post_init__(self) -> None:
        object.__setattr__(self, "photo_crop", _floats(self.photo_crop))
        object.__setattr__(self, "props", tuple(self.props))
        if self.backdrop not in BACKDROPS:
            raise ValueError(f"Scene.backdrop: expected one of {', '.join(BACKDROPS)}, got {self.backdrop!r}")
        if self.backdrop == "photo":
            if self.photo not in PHOTOS:
                raise ValueError(f"Scene.photo: expected one of {', '.join(PHOTOS)}, got {self.photo!r}")
            if not (0.5 <= self.photo_distance_m <= 90.0):
                raise ValueError(f"Scene.photo_distance_m: expected 0.5..90 metres, got {self.photo_distance_m}")
            x0, y0, x1, y1 = self.photo_crop
            if not (0.0 <= x0 < x1 <= 1.0 and 0.0 <= y0 < y1 <= 1.0):
                raise ValueError(
                    f"Scene.photo_crop: expected 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {self.photo_crop}"
                )
        elif self.photo is not None:
            raise ValueError(f"Scene.photo: only a 'photo' backdrop takes a photo, this one is {self.backdrop!r}")

    def surfaces(self) -> list[Surface]:
        """The room's floor, walls and ceiling as textured rectangles (the photo is placed per camera)."""
        return _room_surfaces(self.room, np.random.default_rng(self.seed))


def _room_surfaces(room: Room, rng: np.random.Generator) -> list[Surface]:
    x0, x1, z0, z1, h = room.x0, room.x1, room.z0, room.z1, room.height_m
    out: list[Surface] = []

    def add(material: Material | None, origin: Vec3, u: Vec3, v: Vec3, normal: Vec3, *, one_sided: bool) -> None:
        if material is None:
            return
        ue, ve = np.asarray(u, np.float64), np.asarray(v, np.float64)
        tex = draw_material(material, rng, float(np.linalg.norm(ue)), float(np.linalg.norm(ve)), room)
        out.append(Surface(np.asarray(origin, np.float64), ue, ve, np.asarray(normal, np.float64), tex, one_sided))

    # Wall textures are drawn with v going down from the top edge, so posters and skirting land the right way up.
    back, front, left, right = room.walls
    add(room.floor, (x0, 0.0, z0), (x1 - x0, 0, 0), (0, 0, z1 - z0), (0, 1, 0), one_sided=False)
    add(room.ceiling, (x0, h, z0), (x1 - x0, 0, 0), (0, 0, z1 - z0), (0, -1, 0), one_sided=True)
    add(back, (x0, h, z0), (x1 - x0, 0, 0), (0, -h, 0), (0, 0, 1), one_sided=True)
    add(front, (x1, h, z1), (x0 - x1, 0, 0), (0, -h, 0), (0, 0, -1), one_sided=True)
    add(left, (x0, h, z1), (0, 0, z0 - z1), (0, -h, 0), (1, 0, 0), one_sided=True)
    add(right, (x1, h, z0), (0, 0, z1 - z0), (0, -h, 0), (-1, 0, 0), one_sided=True)
    return out


# --- procedural materials -------------------------------------------------------------------------------------

PX_PER_M = 128.0
MAX_TEXTURE = 1024


def _canvas(width_m: float, height_m: float) -> tuple[int, int, float]:
    ppm = min(PX_PER_M, MAX_TEXTURE / max(width_m, height_m))
    return max(8, round(width_m * ppm)), max(8, round(height_m * ppm)), ppm


def _noise(rng: np.random.Generator, h: int, w: int, scale_px: float, amp: float) -> np.ndarray:
    """Unit-variance noise times `amp`; smooth over about `scale_px` pixels when that is above 2 (drawn small and
    enlarged, which is far cheaper than blurring a full-size field)."""
    if scale_px < 2:  # grain: a 128-pixel tile repeated (under a metre), not a full-size draw
        tile = rng.standard_normal((min(h, 128), min(w, 128)), dtype=np.float32) * np.float32(amp)
        return np.tile(tile, (math.ceil(h / tile.shape[0]), math.ceil(w / tile.shape[1])))[:h, :w]
    small = rng.standard_normal((math.ceil(h / scale_px) + 2, math.ceil(w / scale_px) + 2), dtype=np.float32)
    n = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return n * np.float32(amp / max(float(n.std()), 1e-6))


def _fill(h: int, w: int, colour: RGB) -> np.ndarray:
    img = np.empty((h, w, 3), np.float32)
    img[:] = np.asarray(colour, np.float32)
    return img


def _jitter(colour: RGB, rng: np.random.Generator, sd: float = 0.05) -> RGB:
    c = np.clip(np.asarray(colour) * (1 + rng.normal(0, sd)) + rng.normal(0, sd / 3, 3), 0, 1)
    return (float(c[0]), float(c[1]), float(c[2]))


T = TypeVar("T")


def _choice(rng: np.random.Generator, options: Sequence[T]) -> T:
    return options[int(rng.integers(len(options)))]


def _paint(rng: np.random.Generator, h: int, w: int, colour: RGB, ppm: float) -> np.ndarray:
    img = _fill(h, w, colour)
    img *= (1.0 + _noise(rng, h, w, 0.3 * ppm, 0.015) + _noise(rng, h, w, 0.0, 0.01))[..., None]
    return img


def _skirting(img: np.ndarray, ppm: float, colour: RGB) -> None:
    band = max(2, round(0.08 * ppm))
    img[-band:] = np.asarray(colour, np.float32)


def _paste(img: np.ndarray, picture: np.ndarray, rect: tuple[int, int, int, int], frame: int) -> None:
    """Hang `picture` in a dark frame `frame` pixels wide over rect = (x, y, w, h); skipped if it does not fit."""
    x, y, w, h = rect
    h_img, w_img = img.shape[:2]
    if w < 4 or h < 4 or x < 0 or y < 0 or x + w > w_img or y + h > h_img:
        return
    img[y : y + h, x : x + w] = 0.12
    inner = cv2.resize(picture, (w - 2 * frame, h - 2 * frame), interpolation=cv2.INTER_AREA)
    img[y + frame : y + h - frame, x + frame : x + w - frame] = inner.astype(np.float32) / 255.0


def _office_wall(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    img = _paint(rng, h, w, _jitter(room.wall_colour, rng), ppm)
    _skirting(img, ppm, _jitter((0.35, 0.33, 0.30), rng))
    width_m = w / ppm
    for _ in range(int(rng.integers(0, 3)) if width_m > 1.5 else 0):
        kind = rng.random()
        pw, ph = (
            (rng.uniform(1.0, 1.8), rng.uniform(0.7, 1.1))
            if kind < 0.4
            else (rng.uniform(0.4, 0.8), rng.uniform(0.5, 0.9))
        )
        x = round(rng.uniform(0.1, max(0.11, width_m - pw - 0.1)) * ppm)
        y = round(rng.uniform(0.6, 1.0) * ppm)
        if kind < 0.4:  # whiteboard
            board = np.full((32, 32, 3), 240, np.uint8)
            _paste(img, board, (x, y, round(pw * ppm), round(ph * ppm)), max(2, round(0.02 * ppm)))
        else:
            picture = load_photo(_choice(rng, [p for p in POSTERS if p in available_photos()]))
            _paste(img, picture, (x, y, round(pw * ppm), round(ph * ppm)), max(1, round(0.015 * ppm)))
    return img


def _corridor_wall(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    img = _paint(rng, h, w, _jitter(room.wall_colour, rng), ppm)
    dado = round((room.height_m - rng.uniform(1.0, 1.3)) * ppm)
    img[dado:] *= np.asarray(_jitter((0.8, 0.85, 0.9), rng), np.float32)
    img[dado : dado + max(2, round(0.04 * ppm))] = np.asarray(_jitter((0.3, 0.3, 0.32), rng), np.float32)
    _skirting(img, ppm, _jitter((0.25, 0.25, 0.27), rng))
    # Doors: darker rectangles reaching the floor.
    width_m = w / ppm
    x = rng.uniform(0.5, 3.0)
    door_colour = _jitter((0.55, 0.40, 0.28), rng, 0.15)
    top = round((room.height_m - 2.05) * ppm)
    while x + 1.0 < width_m:
        door = img[top:, round(x * ppm) : round((x + 0.95) * ppm)]
        door[:] = np.asarray(door_colour, np.float32)
        door *= 1.0 + _noise(rng, door.shape[0], door.shape[1], 0, 0.02)[..., None]
        x += rng.uniform(3.0, 7.0)
    return img


LOCKER_PAINTS: tuple[RGB, ...] = ((0.2, 0.35, 0.6), (0.6, 0.15, 0.15), (0.5, 0.5, 0.52), (0.2, 0.45, 0.3))


def _locker_wall(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    img = _paint(rng, h, w, _jitter(room.wall_colour, rng), ppm)
    colour = np.asarray(_jitter(_choice(rng, LOCKER_PAINTS), rng), np.float32)
    locker_w = rng.uniform(0.3, 0.4)
    top = round((room.height_m - 1.85) * ppm)
    bottom = h - round(0.1 * ppm)
    img[top:bottom] = colour
    for i in range(int(w / ppm / locker_w) + 1):
        x = round(i * locker_w * ppm)
        img[top:bottom, x : x + max(1, round(0.008 * ppm))] = colour * 0.45
        for vent in range(4):
            vy = top + round((0.12 + 0.03 * vent) * ppm)
            img[vy : vy + max(1, round(0.01 * ppm)), x + round(0.08 * ppm) : x + round((locker_w - 0.08) * ppm)] = (
                colour * 0.5
            )
        hy = top + round(0.8 * ppm)
        img[hy : hy + round(0.12 * ppm), x + round((locker_w - 0.06) * ppm) : x + round((locker_w - 0.04) * ppm)] = 0.75
    img[top : top + max(1, round(0.01 * ppm))] = colour * 0.4
    return img


def _clinic_wall(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    img = _paint(rng, h, w, _jitter(room.wall_colour, rng, 0.03), ppm)
    rail = round((room.height_m - 0.95) * ppm)
    img[rail : rail + max(2, round(0.06 * ppm))] = np.asarray(_jitter((0.55, 0.6, 0.62), rng), np.float32)
    _skirting(img, ppm, _jitter((0.4, 0.5, 0.5), rng))
    return img


def _tiles(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    tile_px = rng.uniform(0.3, 0.6) * ppm
    base = np.asarray(_jitter(room.floor_colour, rng), np.float32)
    rows, cols = (np.arange(h) / tile_px).astype(np.intp), (np.arange(w) / tile_px).astype(np.intp)
    shade = 1.0 + rng.normal(0, 0.04, (rows[-1] + 1, cols[-1] + 1)).astype(np.float32)
    img = base * shade[rows[:, None], cols[None, :]][..., None]
    img[(np.arange(h) % tile_px) < 1.5] *= 0.6
    img[:, (np.arange(w) % tile_px) < 1.5] *= 0.6
    return img


def _speckle(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room, *, amp: float) -> np.ndarray:
    img = _fill(h, w, _jitter(room.floor_colour, rng))
    img *= 1.0 + _noise(rng, h, w, 0.0, amp)[..., None] + _noise(rng, h, w, 0.2 * ppm, amp / 2)[..., None]
    return img


def _wood_floor(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    plank_px = rng.uniform(0.12, 0.2) * ppm
    base = _jitter((0.55, 0.38, 0.22), rng, 0.12)
    img = _fill(h, w, base)
    grain = cv2.resize(
        rng.standard_normal((max(2, h // 24), w), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    img *= (1.0 + 0.05 * grain / max(float(grain.std()), 1e-6))[..., None]
    img[:, (np.arange(w) % plank_px) < 1.2] *= 0.55
    return img


def _ceiling(rng: np.random.Generator, w: int, h: int, ppm: float, room: Room) -> np.ndarray:
    img = _speckle(rng, w, h, ppm, Room(0, 1, 0, 1, floor_colour=(0.93, 0.93, 0.91)), amp=0.02)
    img[(np.arange(h) % (0.6 * ppm)) < 1.2] *= 0.8
    img[:, (np.arange(w) % (0.6 * ppm)) < 1.2] *= 0.8
    return img


_MATERIAL_DRAW: dict[Material, Callable[[np.random.Generator, int, int, float, Room], np.ndarray]] = {
    "office-wall": _office_wall,
    "corridor-wall": _corridor_wall,
    "locker-wall": _locker_wall,
    "clinic-wall": _clinic_wall,
    "carpet": lambda rng, w, h, ppm, room: _speckle(rng, w, h, ppm, room, amp=0.08),
    "tiles": _tiles,
    "linoleum": lambda rng, w, h, ppm, room: _speckle(rng, w, h, ppm, room, amp=0.03),
    "wood-floor": _wood_floor,
    "ceiling": _ceiling,
}


def draw_material(
    material: Material, rng: np.random.Generator, width_m: float, height_m: float, room: Room
) -> np.ndarray:
    """A uint8 RGB texture covering a `width_m` x `height_m` surface of `material`."""
    w, h, ppm = _canvas(width_m, height_m)
    img = _MATERIAL_DRAW[material](rng, w, h, ppm, room)
    return cv2.convertScaleAbs(img, alpha=255.0)  # rounds and saturates to uint8 (values are never negative)


# --- props ----------------------------------------------------------------------------------------------------


DESK_COLOURS: tuple[RGB, ...] = ((0.75, 0.6, 0.42), (0.92, 0.92, 0.9), (0.35, 0.35, 0.37), (0.55, 0.4, 0.28))
CHAIR_COLOURS: tuple[RGB, ...] = ((0.1, 0.1, 0.11), (0.25, 0.28, 0.35), (0.3, 0.3, 0.3), (0.15, 0.2, 0.4))


def desk_and_chair(seated: SeatedPlacement, rng: np.random.Generator) -> tuple[Box, ...]:
    """A desk (top, legs, modesty panel) and an office chair (seat, back, column, base) where `seated` says."""
    cx = seated.centre_x_m
    desk_colour = _jitter(
        [(0.75, 0.6, 0.42), (0.92, 0.92, 0.9), (0.35, 0.35, 0.37), (0.55, 0.4, 0.28)][int(rng.integers(4))], rng
    )
    chair_colour = _jitter(
        [(0.1, 0.1, 0.11), (0.25, 0.28, 0.35), (0.3, 0.3, 0.3), (0.15, 0.2, 0.4)][int(rng.integers(4))], rng
    )
    top_t = 0.03
    dz0, dz1 = seated.desk_near_z_m, seated.desk_near_z_m + seated.desk_depth_m
    dh, dw = seated.desk_height_m, seated.desk_width_m
    leg = 0.05
    boxes = [
        Box((cx, dh - top_t / 2, (dz0 + dz1) / 2), (dw, top_t, seated.desk_depth_m), desk_colour, name="desk-top"),
        Box(
            (cx, (dh - top_t) / 2 + 0.25, dz1 - 0.05),
            (dw - 2 * leg, dh - top_t - 0.5, 0.02),
            desk_colour,
            name="desk-panel",
        ),
    ]
    for sx in (-1, 1):
        for z in (dz0 + leg, dz1 - leg):
            boxes.append(
                Box(
                    (cx + sx * (dw / 2 - leg), (dh - top_t) / 2, z),
                    (leg, dh - top_t, leg),
                    desk_colour,
                    name="desk-leg",
                )
            )
    sh, sz, sd, sw = seated.seat_height_m, seated.seat_front_z_m, seated.seat_depth_m, seated.seat_width_m
    seat_t = 0.07
    back_z = sz - sd - 0.03
    boxes += [
        Box((cx, sh - seat_t / 2, sz - sd / 2), (sw, seat_t, sd), chair_colour, name="chair-seat"),
        Box((cx, sh + 0.12 + 0.25, back_z), (sw * 0.95, 0.5, 0.05), chair_colour, name="chair-back"),
        Box((cx, sh + 0.06, back_z - 0.01), (0.05, 0.2, 0.03), chair_colour, name="chair-spine"),
        Box(
            (cx, (sh - seat_t) / 2 + 0.05, sz - sd / 2),
            (0.05, sh - seat_t - 0.1, 0.05),
            (0.2, 0.2, 0.2),
            name="chair-column",
        ),
        Box((cx, 0.05, sz - sd / 2), (0.6, 0.04, 0.06), (0.15, 0.15, 0.15), name="chair-base"),
        Box((cx, 0.05, sz - sd / 2), (0.06, 0.04, 0.6), (0.15, 0.15, 0.15), name="chair-base"),
    ]
    return tuple(boxes)


def _couch(room: Room, rng: np.random.Generator) -> tuple[Box, ...]:
    z = room.z0 + 0.45
    x = float(rng.uniform(room.x0 + 1.2, max(room.x0 + 1.21, room.x1 - 1.2)))
    colour = _jitter((0.3, 0.45, 0.55), rng)
    return (
        Box((x, 0.58, z), (1.9, 0.12, 0.65), colour, name="couch-top"),
        Box((x, 0.26, z), (1.7, 0.52, 0.5), (0.75, 0.75, 0.75), name="couch-base"),
        Box((x, 0.68, z), (1.9, 0.06, 0.67), (0.93, 0.93, 0.9), name="couch-paper"),
    )


def _cabinet(room: Room, rng: np.random.Generator) -> Box:
    side = room.x0 + 0.25 if rng.random() < 0.5 else room.x1 - 0.25
    z = float(rng.uniform(room.z0 + 0.6, room.z0 + 1.6))
    return Box((side, 0.9, z), (0.45, 1.8, 0.9), _jitter((0.6, 0.6, 0.62), rng), name="cabinet")


# --- factory --------------------------------------------------------------------------------------------------


def sample_light(rng: np.random.Generator) -> Light:
    """Overhead-to-frontal light from a random side, of random strength."""
    azimuth = rng.uniform(-math.pi, math.pi)
    elevation = rng.uniform(math.radians(25), math.radians(75))
    direction = (math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth))
    return Light(direction=direction, intensity=float(rng.uniform(0.3, 0.6)), ambient=float(rng.uniform(0.45, 0.7)))


WALL_PAINTS: tuple[RGB, ...] = ((0.88, 0.86, 0.8), (0.8, 0.84, 0.86), (0.9, 0.88, 0.84), (0.78, 0.8, 0.74))
CLINIC_PAINTS: tuple[RGB, ...] = ((0.82, 0.9, 0.88), (0.86, 0.9, 0.95), (0.93, 0.93, 0.9))
FLOORS: tuple[Material, ...] = ("carpet", "tiles", "linoleum", "wood-floor")


def _office_room(rng: np.random.Generator) -> Room:
    return Room(
        x0=-float(rng.uniform(2.0, 3.5)),
        x1=float(rng.uniform(2.0, 3.5)),
        z0=-float(rng.uniform(1.2, 2.5)),
        z1=float(rng.uniform(2.0, 4.0)),
        height_m=float(rng.uniform(2.5, 3.2)),
        floor=_choice(rng, ("carpet", "wood-floor", "linoleum")),
        walls=("office-wall", "office-wall", "office-wall", "office-wall"),
        wall_colour=_jitter(_choice(rng, WALL_PAINTS), rng),
        floor_colour=_jitter((0.4, 0.42, 0.45), rng, 0.2),
    )


def _corridor_room(rng: np.random.Generator, walk_length_m: float) -> Room:
    half = float(rng.uniform(1.5, 2.5))
    side: Material = "locker-wall" if rng.random() < 0.6 else "corridor-wall"
    return Room(
        x0=-half,
        x1=half,
        z0=-walk_length_m - 2.0,
        z1=float(rng.uniform(1.0, 2.0)),
        height_m=float(rng.uniform(2.6, 3.4)),
        floor=_choice(rng, ("tiles", "linoleum")),
        walls=("corridor-wall", "corridor-wall", side, side),
        wall_colour=_jitter(_choice(rng, WALL_PAINTS), rng),
        floor_colour=_jitter((0.55, 0.55, 0.52), rng, 0.2),
    )


def _clinic_room(rng: np.random.Generator) -> Room:
    return Room(
        x0=-float(rng.uniform(1.8, 2.8)),
        x1=float(rng.uniform(1.8, 2.8)),
        z0=-float(rng.uniform(1.2, 2.2)),
        z1=float(rng.uniform(1.8, 3.0)),
        height_m=float(rng.uniform(2.5, 3.0)),
        floor="linoleum",
        walls=("clinic-wall", "clinic-wall", "clinic-wall", "clinic-wall"),
        wall_colour=_jitter(_choice(rng, CLINIC_PAINTS), rng, 0.02),
        floor_colour=_jitter((0.6, 0.62, 0.6), rng, 0.15),
    )


def _photo_floor(rng: np.random.Generator) -> Room:
    """A wide floor and nothing else: the photo stands in for the walls."""
    return Room(
        x0=-15.0,
        x1=15.0,
        z0=-15.0,
        z1=15.0,
        height_m=3.0,
        floor=_choice(rng, FLOORS),
        ceiling=None,
        walls=(None, None, None, None),
        floor_colour=_jitter((0.5, 0.48, 0.45), rng, 0.2),
    )


def _enclose(room: Room, points: Sequence[Sequence[float]], margin_m: float = 0.05) -> Room:
    """`room` grown so that every point lies inside it, at least `margin_m` from the walls and below the ceiling."""
    if not len(points):
        return room
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(p)):
        raise ValueError(f"scene: contain must be finite (x, y, z) points, got {points!r}")
    return dataclasses.replace(
        room,
        x0=min(room.x0, float(p[:, 0].min()) - margin_m),
        x1=max(room.x1, float(p[:, 0].max()) + margin_m),
        z0=min(room.z0, float(p[:, 2].min()) - margin_m),
        z1=max(room.z1, float(p[:, 2].max()) + margin_m),
        height_m=max(room.height_m, float(p[:, 1].max()) + 0.3),
    )


def make_scene(
    backdrop: str,
    rng: np.random.Generator,
    *,
    seated: SeatedPlacement | None = None,
    room: Room | None = None,
    photo: str | None = None,
    walk_length_m: float = 8.0,
    contain: Sequence[Sequence[float]] = (),
) -> Scene:
    """A random scene of `backdrop` (office, corridor, clinic or photo) around a subject near the origin.

    `seated` adds a desk and chair there. A corridor runs along z over `walk_length_m` plus margins, for booth
    walks towards a camera at its +z end. `contain` lists world points (camera positions) the sampled room must
    enclose; it grows to hold them. `room` replaces the sampled room; `photo` picks the photo."""
    if backdrop not in BACKDROPS:
        raise ValueError(f"scene: unknown backdrop {backdrop!r}; expected one of {', '.join(BACKDROPS)}")
    if photo is not None and backdrop != "photo":
        raise ValueError(f"scene {backdrop}: only the 'photo' backdrop takes a photo")
    if not (1.0 <= walk_length_m <= 50.0):
        raise ValueError(f"scene: walk_length_m must be 1..50 metres, got {walk_length_m}")
    seed = int(rng.integers(2**31))
    props: list[Box] = list(desk_and_chair(seated, rng)) if seated is not None else []
    light = sample_light(rng)
    if backdrop == "photo":
        chosen = photo if photo is not None else _choice(rng, available_photos(backdrops_only=True))
        fw, fh = float(rng.uniform(0.6, 1.0)), float(rng.uniform(0.6, 1.0))
        x0, y0 = float(rng.uniform(0, 1 - fw)), float(rng.uniform(0, 1 - fh))
        return Scene(
            "photo",
            room or _photo_floor(rng),
            light,
            tuple(props),
            photo=chosen,
            photo_distance_m=float(rng.uniform(4.0, 12.0)),
            photo_crop=(x0, y0, x0 + fw, y0 + fh),
            photo_flip=bool(rng.random() < 0.5),
            seed=seed,
        )
    if room is None:
        sampled = {"office": _office_room, "clinic": _clinic_room}.get(backdrop)
        room = _enclose(sampled(rng) if sampled else _corridor_room(rng, walk_length_m), contain)
    if backdrop == "office":
        if seated is None and rng.random() < 0.5:
            props.append(_cabinet(room, rng))
        return Scene("office", room, light, tuple(props), seed=seed)
    if backdrop == "corridor":
        return Scene("corridor", room, light, tuple(props), seed=seed)
    props += [*_couch(room, rng), _cabinet(room, rng)]
    return Scene("clinic", room, light, tuple(props), seed=seed)
