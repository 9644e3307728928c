"""Avatar rendering speed: frames per second of `AvatarRenderer.render` at 640x480 on real anny bodies.

Bodies are built first (not timed): a handful of poses of one subject, so every timed frame uploads new vertex
positions as a clip does. Each scene kind is timed with its role camera, after one untimed frame that draws its
textures. Prints a markdown table: wall-clock frames/s, CPU ms per frame (all threads of this process: Mesa's
llvmpipe rasterises on its own threads) and, separately, the cost of the camera degradations (blur, noise, JPEG).

    python benchmarks/avatar_render.py [--frames 200] [--width 640 --height 480]

Set LP_NUM_THREADS before running to change llvmpipe's thread count (default: one per CPU).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from training.synth.avatar.appearance import sample_appearance
from training.synth.avatar.builder import BodyRequest, build_bodies
from training.synth.avatar.camera import role_camera
from training.synth.avatar.imaging import apply_imaging, sample_imaging
from training.synth.avatar.mesh import AvatarMesh, SeatedPlacement
from training.synth.avatar.phenotype import Phenotype
from training.synth.avatar.pose import PoseParams
from training.synth.avatar.render import AvatarRenderer, gl_context
from training.synth.avatar.scene import make_scene
from training.synth.posture import Posture

CASES = (  # (label, backdrop, camera role, camera target above the subject's floor position)
    ("office, desk monitor", "office", "desk-monitor", 1.2),
    ("corridor, booth end", "corridor", "booth-end", 1.0),
    ("corridor, booth side", "corridor", "booth-side", 1.0),
    ("clinic, head station", "clinic", "head-station", 1.55),
    ("photo backdrop, booth end", "photo", "booth-end", 1.0),
)


def bodies(n: int) -> list[AvatarMesh]:
    """n poses of one adult: head turns and trunk leans, each a different set of vertex positions."""
    phenotype = Phenotype(sex="female", age_years=34.0)
    requests = [
        BodyRequest(
            phenotype, PoseParams(posture=Posture(head_yaw=-30 + 60 * i / max(n - 1, 1), trunk_flexion=3 * (i % 3)))
        )
        for i in range(n)
    ]
    return [mesh for mesh, _ in build_bodies(requests)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--poses", type=int, default=8)
    args = parser.parse_args()

    t0 = time.perf_counter()
    meshes = bodies(args.poses)
    build_s = time.perf_counter() - t0
    renderer = AvatarRenderer(args.width, args.height)
    info = gl_context().info
    print(f"<!-- {platform.machine()}, {os.cpu_count()} CPUs, {info['GL_RENDERER']}, "
          f"LP_NUM_THREADS={os.environ.get('LP_NUM_THREADS', 'default')}, load average "
          f"{os.getloadavg()[0]:.2f} at start; {len(meshes)} bodies of {meshes[0].n_vertices} vertices, "
          f"{len(meshes[0].faces)} triangles, built in {build_s:.1f} s (not timed) -->")  # fmt: skip
    print("| scene, camera | frames/s | CPU ms/frame | + degradations ms/frame |")
    print("|---|---|---|---|")
    rng = np.random.default_rng(0)
    seated = SeatedPlacement(seat_height_m=0.47, seat_front_z_m=0.1, desk_height_m=0.74, desk_near_z_m=0.35)
    for label, backdrop, role, target_y in CASES:
        pose = role_camera(role, rng, (0.0, target_y, 0.0))
        scene = make_scene(backdrop, rng, seated=seated if role == "desk-monitor" else None, contain=[pose.position])
        camera = pose.camera(args.width, args.height)
        look = sample_appearance(rng)
        frame = renderer.render(meshes[0], scene, camera, look)  # draws and uploads the scene's textures
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(args.frames):
            frame = renderer.render(meshes[i % len(meshes)], scene, camera, look)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        imaging = sample_imaging(rng)
        t = time.perf_counter()
        for _ in range(min(args.frames, 50)):
            apply_imaging(frame.rgb, imaging, rng)
        degrade_ms = (time.perf_counter() - t) / min(args.frames, 50) * 1000
        print(f"| {label} | {args.frames / wall:.1f} | {cpu / args.frames * 1000:.1f} | {degrade_ms:.1f} |")


if __name__ == "__main__":
    main()
