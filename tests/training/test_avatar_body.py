"""Avatar bodies: posing from the generator's parameters comes back out of the mesh's truth points, the
asymmetries and the walk are what was asked, the same seed gives the same body, and the truth points sit on the
body."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("anny")

from contract.landmarks import Landmark as Lm
from training.synth.avatar.builder import BodyRequest, build_bodies, build_body, stature_m
from training.synth.avatar.camera import aim
from training.synth.avatar.mesh import AvatarMesh, BodyPoints, Region
from training.synth.avatar.phenotype import AGE_RANGES, Phenotype, sample_phenotype
from training.synth.avatar.pose import PoseParams, Scoliosis, sample_scoliosis, seated
from training.synth.avatar.truth import frame_truth, gait_truth
from training.synth.avatar.walk import FlexionTrial, WalkCycle
from training.synth.gait import GaitParams, sample_flexion
from training.synth.posture import Posture

ADULT = Phenotype("female", 34.0, height=0.45, weight=0.5, muscle=0.5)
TEEN = Phenotype("male", 13.0, height=0.5, weight=0.4, muscle=0.4)


def _front_camera(points: BodyPoints, distance: float = 1.2) -> Any:
    head = points.anatomical["head_center"].astype(float)
    return aim(head + np.array([0.0, 0.0, distance]), head, hfov_deg=60).camera(640, 480)


def _side_camera(points: BodyPoints, distance: float = 2.5) -> Any:
    target = points.anatomical["c7"].astype(float)
    return aim(target + np.array([distance, 0.0, 0.0]), target, hfov_deg=60).camera(640, 480)


def _truth(points: BodyPoints, camera: Any) -> dict[str, float]:
    """frame_truth without the metrics not measured in this view (a missing one fails the lookup)."""
    return {k: v for k, v in frame_truth(points, camera).items() if v is not None}


def _horizontal_angle(v: np.ndarray) -> float:
    """Elevation of v above the horizontal, degrees."""
    return math.degrees(math.atan2(float(v[1]), math.hypot(float(v[0]), float(v[2]))))


def test_known_neck_flexion_and_head_turn_come_back_from_the_truth_points(anny_model: Any) -> None:
    poses = [
        PoseParams(posture=Posture(neck_flexion=0.0)),
        PoseParams(posture=Posture(neck_flexion=25.0)),
        PoseParams(posture=Posture(head_yaw=35.0)),
        PoseParams(posture=Posture(neck_flexion=25.0, head_yaw=-30.0, head_roll=10.0)),
    ]
    (_, neutral), (_, flexed), (_, turned), (_, both) = build_bodies([BodyRequest(ADULT, p) for p in poses])

    # neck_flexion_deg as docs/metrics.md defines it (the device's function on the exact landmarks) rises by
    # the asked flexion over the neutral neck, in any view
    side = _truth(neutral, _side_camera(neutral))
    rise = _truth(flexed, _side_camera(flexed))["neck_flexion_deg"] - side["neck_flexion_deg"]
    assert rise == pytest.approx(25.0, abs=0.3)
    front = _truth(flexed, _front_camera(flexed))
    assert front["neck_flexion_deg"] - _truth(neutral, _front_camera(neutral))["neck_flexion_deg"] == (
        pytest.approx(25.0, abs=0.3)
    )
    # ... and flexion moves the head forward and down: CVA (side view) falls
    assert _truth(flexed, _side_camera(flexed))["cva_deg"] < side["cva_deg"] - 10

    # a 35° head turn: the head's orientation relative to the trunk and to a camera in front, and the device's
    # keypoint yaw (ear line against the shoulder line)
    t = _truth(turned, _front_camera(turned))
    assert t["yaw_deg_clinical"] == pytest.approx(35.0, abs=0.2)
    assert t["yaw_deg_camera"] == pytest.approx(35.0, abs=0.2)
    assert t["yaw_deg"] == pytest.approx(35.0, abs=1.5)
    assert t["pitch_deg_clinical"] == pytest.approx(0.0, abs=0.2)

    # combined: the head's pitch is the generator's (neck flexion tips the chin down by 0.7 of it)
    b = _truth(both, _front_camera(both))
    assert b["yaw_deg_clinical"] == pytest.approx(-30.0, abs=0.2)
    assert b["pitch_deg_clinical"] == pytest.approx(-0.7 * 25.0, abs=0.2)
    assert b["roll_deg_clinical"] == pytest.approx(10.0, abs=0.2)
    assert b["head_tilt_deg"] > 5.0  # the left ear drops in the image too


def test_head_shift_moves_the_head_by_the_asked_distance_and_keeps_its_orientation(anny_model: Any) -> None:
    shifted = PoseParams(posture=Posture(head_lateral_shift=0.03, head_sagittal_shift=0.04))
    (_, base), (_, moved) = build_bodies([BodyRequest(ADULT, PoseParams()), BodyRequest(ADULT, shifted)])
    t0, t1 = _truth(base, _front_camera(base)), _truth(moved, _front_camera(moved))
    assert t1["lateral_shift_cm_clinical"] - t0["lateral_shift_cm_clinical"] == pytest.approx(3.0, abs=0.05)
    assert t1["sagittal_shift_cm_clinical"] - t0["sagittal_shift_cm_clinical"] == pytest.approx(4.0, abs=0.05)
    # the device's shift (ear midpoint over the shoulder midpoint) sees nearly all of it
    assert t1["lateral_shift_cm"] - t0["lateral_shift_cm"] == pytest.approx(3.0, abs=0.3)
    assert t1["sagittal_shift_cm"] - t0["sagittal_shift_cm"] == pytest.approx(4.0, abs=0.3)
    for angle in ("yaw_deg_clinical", "pitch_deg_clinical", "roll_deg_clinical"):
        assert t1[angle] == pytest.approx(0.0, abs=0.1)


def test_scoliosis_parameters_give_the_asked_asymmetry_on_the_mesh(anny_model: Any) -> None:
    curve = Scoliosis(
        cobb_deg=30.0,
        trunk_rotation_deg=-9.0,
        shoulder_height_diff_m=-0.022,
        pelvic_obliquity_deg=2.5,
        trunk_shift_m=-0.02,
    )
    (_, flat), (_, bent) = build_bodies([BodyRequest(TEEN, PoseParams()), BodyRequest(TEEN, curve.apply(PoseParams()))])
    a = {k: v.astype(float) for k, v in bent.anatomical.items()}
    w = bent.blazepose.astype(float)

    # shoulder height difference: left minus right acromion, metres (the clavicles on top of the curve)
    flat_diff = float(flat.anatomical["acromion_l"][1] - flat.anatomical["acromion_r"][1])
    assert flat_diff == pytest.approx(0.0, abs=0.001)
    assert a["acromion_l"][1] - a["acromion_r"][1] == pytest.approx(-0.022, abs=0.001)
    # pelvic obliquity: the hip line the gait booth measures (BlazePose hips), + left side higher
    assert _horizontal_angle(w[Lm.LEFT_HIP] - w[Lm.RIGHT_HIP]) == pytest.approx(2.5, abs=0.1)
    truth = _truth(bent, _front_camera(bent, 2.5))
    assert truth["pelvic_obliquity_deg"] == pytest.approx(2.5, abs=0.2)  # the device's definition, level camera
    assert truth["pelvic_obliquity_deg_clinical"] > 1.0  # hip-joint centres tilt the same way
    # trunk shift: C7 over the mid-hip, along the hip line, + to the subject's left
    mid_hip = 0.5 * (w[Lm.LEFT_HIP] + w[Lm.RIGHT_HIP])
    assert a["c7"][0] - mid_hip[0] == pytest.approx(-0.02, abs=0.002)
    # trunk rotation: the shoulders turn against the hips (the rib hump's source)
    assert truth["trunk_rotation_deg_clinical"] == pytest.approx(-9.0, abs=1.0)
    assert _truth(flat, _front_camera(flat, 2.5))["trunk_rotation_deg_clinical"] == pytest.approx(0.0, abs=0.1)


def test_sampled_scoliosis_stays_in_the_published_ranges_and_follows_the_curve() -> None:
    rng = np.random.default_rng(0)
    samples = [sample_scoliosis(rng, float(c)) for c in rng.uniform(-50, 50, 400)]
    cobb = np.array([s.cobb_deg for s in samples])
    atr = np.array([s.trunk_rotation_deg for s in samples])
    assert np.abs(atr).max() <= 20.0
    assert np.abs([s.shoulder_height_diff_m for s in samples]).max() <= 0.035
    assert np.abs([s.trunk_shift_m for s in samples]).max() <= 0.04
    assert np.abs([s.pelvic_obliquity_deg for s in samples]).max() <= 3.0
    # a right thoracic curve (Cobb > 0) turns the thorax to the right: a right rib hump
    assert np.all(np.sign(atr[np.abs(cobb) > 5]) == -np.sign(cobb[np.abs(cobb) > 5]))
    # ATR grows with the curve: about 7° at a 20-25° Cobb angle (Bunnell 1984)
    moderate = np.abs(atr[(np.abs(cobb) > 20) & (np.abs(cobb) < 25)])
    assert 5.0 < float(np.median(moderate)) < 8.5
    assert np.corrcoef(np.abs(cobb), [abs(s.shoulder_height_diff_m) for s in samples])[0, 1] > 0.5


def _gait(cadence: float, step_time_asymmetry: float = 0.0) -> GaitParams:
    return GaitParams(
        cadence=cadence,
        stride_length=1.2,
        hip_amplitude=20.0,
        knee_swing_peak=55.0,
        arm_swing=18.0,
        pelvic_rotation=4.0,
        pelvic_obliquity=4.0,
        trunk_sway=2.0,
        step_time_asymmetry=step_time_asymmetry,
    )


def _strike_times(points: list[BodyPoints], times: np.ndarray, heading_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Heel strikes from the truth heels: the peaks of how far the left heel is ahead of the right one, and of
    the reverse (the device's foot signal, in 3D)."""
    a = math.radians(heading_deg)
    forward = np.array([math.sin(a), 0.0, math.cos(a)])
    s = np.array([(p.blazepose[Lm.LEFT_HEEL] - p.blazepose[Lm.RIGHT_HEEL]) @ forward for p in points])

    def peaks(x: np.ndarray) -> np.ndarray:
        i = [k for k in range(1, len(x) - 1) if x[k] > x[k - 1] and x[k] >= x[k + 1] and x[k] > 0.5 * x.max()]
        return times[i]

    return peaks(s), peaks(-s)


def test_walk_cycle_has_the_asked_cadence_and_step_timing(anny_model: Any) -> None:
    fps = 30.0
    for cadence, asym in ((100.0, 0.0), (126.0, 0.06)):
        walk = WalkCycle(gait=_gait(cadence, asym), start=(-1.5, 0.0), heading_deg=90.0, phase0=0.8)
        times = np.arange(0.0, 2.4 * walk.gait.cycle_s, 1 / fps)
        built = build_bodies([BodyRequest(TEEN, PoseParams(motion=walk), float(t)) for t in times])
        points = [p for _, p in built]
        left, right = _strike_times(points, times, 90.0)
        period = 120.0 / cadence
        assert len(left) >= 2
        assert np.diff(left) == pytest.approx(period, abs=1.01 / fps)  # one frame of quantisation
        # each heel strike of the walk cycle (phase 0) shows as the left heel furthest ahead, within 2 frames
        expected = walk.heel_strikes(times[0], times[-1])
        assert np.abs(left[:, None] - expected[None, :]).min(axis=1).max() <= 2.01 / fps
        # the right heel strikes (0.5 + step-time asymmetry) of a cycle after the left one
        after = [r - s for r in right for s in left if 0 < r - s < period]
        assert np.median(after) == pytest.approx((0.5 + asym) * period, abs=1.5 / fps)
        # the booth's own cycle finder on the exact landmarks (side camera, walk towards image right)
        mid = 0.5 * (walk.pose_at(PoseParams(), times[-1] / 2).position[0])
        camera = aim((mid, 1.0, 3.0), (mid, 0.85, 0.0), hfov_deg=80).camera(640, 480)
        gait = gait_truth(list(zip(times.tolist(), points, strict=True)), camera, direction=1)
        assert int(gait["gait_cycles"] or 0) >= 1
        assert gait["cadence_spm"] == pytest.approx(cadence, rel=0.05)
        # feet stay on the floor: the lowest point of every frame is at y = 0
        assert max(abs(float(m.vertices[:, 1].min())) for m, _ in built) < 1e-4


def test_same_seed_gives_identical_meshes(anny_model: Any) -> None:
    def make(seed: int) -> tuple[AvatarMesh, BodyPoints]:
        rng = np.random.default_rng(seed)
        phenotype = sample_phenotype(rng, "school")
        pose = sample_scoliosis(rng, float(rng.uniform(-40, 40))).apply(
            PoseParams(posture=Posture(neck_flexion=float(rng.uniform(0, 30)), head_yaw=float(rng.uniform(-30, 30))))
        )
        return build_body(phenotype, pose)

    (m1, p1), (m2, p2), (m3, _) = make(7), make(7), make(8)
    assert m1.vertices.tobytes() == m2.vertices.tobytes()
    assert p1.blazepose.tobytes() == p2.blazepose.tobytes()
    assert all(p1.anatomical[k].tobytes() == p2.anatomical[k].tobytes() for k in p1.anatomical)
    assert np.abs(m1.vertices - m3.vertices).max() > 0.01


def _winding_numbers(mesh: AvatarMesh, points: np.ndarray) -> np.ndarray:
    """Generalised winding number of each point (about 1 inside the closed body, 0 outside), from the solid
    angles of all triangles (Van Oosterom & Strackee)."""
    tri = mesh.vertices.astype(float)[mesh.faces]  # (F, 3, 3)
    out = []
    for p in points:
        a, b, c = (tri[:, k] - p for k in range(3))
        la, lb, lc = (np.linalg.norm(x, axis=1) for x in (a, b, c))
        det = np.einsum("ij,ij->i", a, np.cross(b, c))
        div = la * lb * lc + np.einsum("ij,ij->i", a, b) * lc + np.einsum("ij,ij->i", a, c) * lb
        div += np.einsum("ij,ij->i", b, c) * la
        out.append(abs(float(np.sum(2 * np.arctan2(det, div)))) / (4 * math.pi))
    return np.array(out)


def test_truth_points_lie_on_or_inside_the_body(anny_model: Any) -> None:
    poses = [
        PoseParams(),
        PoseParams(posture=Posture(neck_flexion=30.0, head_yaw=40.0, trunk_flexion=20.0)),
        seated(Posture(neck_flexion=15.0)),
    ]
    on_skin = [
        Lm.LEFT_EYE_INNER,
        Lm.LEFT_EYE_OUTER,
        Lm.RIGHT_EYE_INNER,
        Lm.RIGHT_EYE_OUTER,
        Lm.MOUTH_LEFT,
        Lm.MOUTH_RIGHT,
    ]
    blended = [Lm.NOSE, Lm.LEFT_EYE, Lm.RIGHT_EYE]  # anny's regressor blends skin vertices: a few mm inside
    in_ear = [Lm.LEFT_EAR, Lm.RIGHT_EAR]  # in the concha: in the ear's hollow, just outside the closed surface
    for mesh, points in build_bodies([BodyRequest(ADULT, p) for p in poses]):
        v = mesh.vertices.astype(float)

        def nearest(p: np.ndarray, v: np.ndarray = v) -> float:
            return float(np.linalg.norm(v - p, axis=1).min())

        lo, hi = v.min(axis=0) - 1e-6, v.max(axis=0) + 1e-6
        inside = _winding_numbers(mesh, points.blazepose.astype(float))
        for i, p in enumerate(points.blazepose.astype(float)):
            assert np.all(p >= lo) and np.all(p <= hi), f"landmark {Lm(i).name} outside the body's box"
            if i in on_skin:
                assert nearest(p) < 1e-5, f"landmark {Lm(i).name} is {nearest(p):.4f} m off the skin"
            elif i in in_ear:
                assert nearest(p) < 0.01, f"landmark {Lm(i).name} is {nearest(p):.3f} m from the ear"
            else:  # blended or joint points: inside the body, the blended ones just under the skin
                assert inside[i] > 0.5, f"landmark {Lm(i).name} is outside the body (winding {inside[i]:.2f})"
                if i in blended:
                    assert nearest(p) < 0.012, f"landmark {Lm(i).name} is {nearest(p):.3f} m under the skin"
        names = list(points.anatomical)
        inside = _winding_numbers(mesh, np.array([points.anatomical[n] for n in names], float))
        for name, p, wind in zip(names, points.anatomical.values(), inside, strict=True):
            if name.endswith(("_joint_l", "_joint_r")) or name == "head_center":
                assert wind > 0.5, f"{name} is outside the body (winding {wind:.2f})"
            else:
                assert nearest(p.astype(float)) < 1e-5, f"{name} is off the skin"
        # anatomical order: tragus above the acromions above the ASIS; C7 behind the sternal notch
        a = points.anatomical
        assert a["tragus_l"][1] > a["acromion_l"][1] > a["asis_l"][1] > a["hip_joint_l"][1] - 0.2


def test_phenotype_sampler_respects_age_and_sex_ranges(anny_model: Any) -> None:
    rng = np.random.default_rng(3)
    for population in ("school", "adult"):
        lo, hi = AGE_RANGES[population]
        people = [sample_phenotype(rng, population) for _ in range(300)]
        ages = np.array([p.age_years for p in people])
        assert lo <= ages.min() and ages.max() <= hi
        assert ages.max() - ages.min() > 0.8 * (hi - lo)
        females = sum(p.sex == "female" for p in people)
        assert 110 < females < 190
        assert all(0.05 <= p.weight <= 0.95 and 0.05 <= p.muscle <= 0.95 for p in people)
    assert {sample_phenotype(rng, "school", sex="male").sex for _ in range(20)} == {"male"}
    # statures from anny's WHO-calibrated distributions: school children shorter than adults, men taller than women
    kids = [stature_m(sample_phenotype(rng, "school")) for _ in range(12)]
    men = [stature_m(sample_phenotype(rng, "adult", sex="male")) for _ in range(12)]
    women = [stature_m(sample_phenotype(rng, "adult", sex="female")) for _ in range(12)]
    assert min(kids) > 1.25 and max(men) < 2.1 and min(women) > 1.4
    assert np.median(kids) < np.median(women) < np.median(men)
    with pytest.raises(ValueError, match="population"):
        sample_phenotype(rng, "toddler")  # type: ignore[arg-type]


def test_bad_parameters_give_one_clear_line() -> None:
    for make, where in (
        (lambda: Phenotype("female", 200.0), "age_years"),
        (lambda: Phenotype("other", 30.0), "sex"),  # type: ignore[arg-type]
        (lambda: Phenotype("male", 30.0, weight=1.5), "weight"),
        (lambda: PoseParams(posture=Posture(head_lateral_shift=0.5)), "head_lateral_shift"),
        (lambda: PoseParams(heading_deg=math.nan), "heading_deg"),
    ):
        with pytest.raises(ValueError, match=where) as caught:
            make()
        assert "\n" not in str(caught.value)


def test_seated_body_says_where_the_chair_and_desk_go(anny_model: Any) -> None:
    mesh, points = build_body(ADULT, seated(Posture(neck_flexion=20.0, trunk_flexion=10.0)))
    seat = points.seat
    assert seat is not None
    v = mesh.vertices.astype(float)
    w = points.blazepose.astype(float)
    assert float(v[:, 1].min()) == pytest.approx(0.0, abs=1e-4)  # feet on the floor
    assert 0.35 < seat.seat_height_m < 0.6  # a chair's height
    knees = w[[Lm.LEFT_KNEE, Lm.RIGHT_KNEE]]
    hips = w[[Lm.LEFT_HIP, Lm.RIGHT_HIP]]
    assert np.all(knees[:, 1] > seat.seat_height_m) and np.all(hips[:, 1] > seat.seat_height_m)
    assert np.all(knees[:, 2] > seat.seat_front_z_m)  # the seat ends behind the knees
    # the desk top is under the wrists and above the thighs; its near edge in front of the belly
    assert np.all(w[[Lm.LEFT_WRIST, Lm.RIGHT_WRIST], 1] > seat.desk_height_m)
    assert seat.desk_height_m > float(knees[:, 1].max())
    body = v[np.isin(mesh.regions, (Region.TOP, Region.BOTTOM)) & (np.abs(v[:, 0]) < 0.15) & (v[:, 1] > 0.7)]
    assert seat.desk_near_z_m > float(body[:, 2].max()) - 0.01
    # the buttocks rest on the seat: the lowest trunk point is at the seat's height
    trunk = v[np.isin(mesh.regions, (Region.TOP, Region.BOTTOM)) & (v[:, 2] < 0.15)]
    assert float(trunk[:, 1].min()) == pytest.approx(seat.seat_height_m, abs=1e-6)


def test_regions_cover_the_body_where_they_should(anny_model: Any) -> None:
    mesh, points = build_body(ADULT, PoseParams())
    v, r = mesh.vertices.astype(float), mesh.regions
    assert set(np.unique(r)) == set(Region)
    w = points.blazepose.astype(float)
    eyes_y = float(w[Lm.LEFT_EYE, 1])
    assert float(v[r == Region.HAIR, 1].mean()) > eyes_y  # hair on top of the head
    assert float(v[r == Region.SHOES, 1].max()) < float(w[Lm.LEFT_KNEE, 1])  # shoes below the knees
    assert float(np.median(v[r == Region.TOP, 1])) > float(np.median(v[r == Region.BOTTOM, 1]))
    lips = v[r == Region.LIPS]
    mouth = 0.5 * (w[Lm.MOUTH_LEFT] + w[Lm.MOUTH_RIGHT])
    assert float(np.linalg.norm(lips.mean(axis=0) - mouth)) < 0.03
    eye = v[r == Region.EYES]
    assert float(np.abs(eye[:, 1] - eyes_y).max()) < 0.03
    assert mesh.uv is not None and mesh.uv.shape == (len(v), 2) and mesh.uv.min() >= 0.0 and mesh.uv.max() <= 1.0


def test_forward_flexion_trial_bends_the_trunk_and_returns(anny_model: Any) -> None:
    trial = FlexionTrial.make(Posture(), replace(sample_flexion(np.random.default_rng(2), "mi"), tremor=0.0), seed=2)
    times = [0.0, trial.duration_s * 0.45, trial.duration_s]
    built = build_bodies([BodyRequest(ADULT, PoseParams(motion=trial), t) for t in times])
    flexion = [_truth(p, _side_camera(p))["trunk_flexion_deg"] for _, p in built]
    assert flexion[1] > flexion[0] + 40.0
    assert flexion[2] == pytest.approx(flexion[0], abs=2.0)


def test_truth_points_seen_from_the_side_project_into_the_silhouette_near_side_only(anny_model: Any) -> None:
    pytest.importorskip("moderngl")
    from training.synth.avatar.appearance import sample_appearance
    from training.synth.avatar.points import visibility_tolerance
    from training.synth.avatar.render import AvatarRenderer
    from training.synth.avatar.scene import Room, Scene

    mesh, points = build_body(ADULT, PoseParams())
    names, pts = points.all_points()
    camera = aim((2.2, 1.0, 0.0), (0.0, 0.95, 0.0), hfov_deg=60).camera(640, 480)  # on the subject's left
    try:
        renderer = AvatarRenderer(640, 480)
    except Exception as exc:  # no EGL on this host
        pytest.skip(f"no headless GL: {exc}")
    frame = renderer.render(
        mesh, Scene(backdrop="office", room=Room(-3, 3, -3, 3)), camera, sample_appearance(np.random.default_rng(0))
    )
    seen = frame.project(pts, tolerance_m=visibility_tolerance(mesh, points))
    visible = dict(zip(names, seen[:, 2] > 0, strict=True))
    for near, far in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"), ("left_knee", "right_knee"),
                      ("left_ear", "right_ear"), ("acromion_l", "acromion_r"), ("tragus_l", "tragus_r")):  # fmt: skip
        assert visible[near] and not visible[far], (near, far)
    mask = frame.silhouette > 0
    for (x, y, v), name in zip(seen, names, strict=True):
        if v > 0:
            xi, yi = round(float(x)), round(float(y))
            assert mask[max(yi - 1, 0) : yi + 2, max(xi - 1, 0) : xi + 2].any(), f"{name} outside the silhouette"
