"""Motion detection: boxes follow movers, light changes recalibrate, masks mute."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.vision.masks import check_polygon, rasterize
from agent.vision.motion import PRESETS, MotionDetector, MotionResult, MotionSettings, settings_for
from agent.vision.synthetic import Scene, SyntheticSource


def run(
    scene: str | Scene, settings_: MotionSettings | None = None, **kw: float
) -> tuple[MotionDetector, list[tuple[float, MotionResult]]]:
    src = SyntheticSource(scene, **kw)  # type: ignore[arg-type]
    src.open()
    det = MotionDetector(settings_)
    out = []
    while (frame := src.read()) is not None:
        out.append((frame.ts, det.process(frame.luma, frame.ts, frame.chroma)))
    return det, out


def centre_x(box: tuple[float, float, float, float]) -> float:
    return (box[0] + box[2]) / 2


def test_quiet_scene_has_no_motion() -> None:
    det, out = run("quiet", seconds=10)
    assert not any(r.motion for _, r in out)
    assert det.recalibrations == 0
    assert [r.state for _, r in out[:10]] == ["warmup"] * 10  # the first second learns the scene
    assert all(r.state == "watching" and r.changed < 0.01 for _, r in out[10:])


def test_walker_box_follows_the_person() -> None:
    det, out = run("walkthrough")
    moving = [(ts, r) for ts, r in out if r.motion]
    # The person is in view 3–11 s; motion starts and stops with them.
    assert 3.0 <= moving[0][0] <= 4.0 and 10.0 <= moving[-1][0] <= 11.5
    assert not any(r.motion for ts, r in out if ts < 3.0 or ts > 11.5)
    scene = SyntheticSource("walkthrough").scene.actors[0]
    for ts, r in moving:
        if 4.0 <= ts <= 10.0:
            assert len(r.boxes) == 1
            x1, y1, x2, y2 = r.boxes[0]
            assert x1 - 0.05 <= scene.centre_x(ts) <= x2 + 0.05
            assert y2 > 0.85 and y1 < 0.6  # feet near the bottom, head higher up
            assert 0.02 < r.fraction < 0.4
    assert det.recalibrations == 0


def test_light_switch_recalibrates_instead_of_moving() -> None:
    det, out = run("light_switch")
    assert not any(r.motion for _, r in out)
    assert det.recalibrations == 1
    switch = [(ts, r) for ts, r in out if r.recalibrated]
    assert len(switch) == 1 and switch[0][0] == pytest.approx(8.0)
    assert switch[0][1].recalibrated in ("light", "ir")
    after = [r.state for ts, r in out if 8.0 < ts < 9.4]
    assert set(after) == {"cooldown"}


def test_ir_switch_is_caught_by_colour_alone() -> None:
    # Raise the global threshold out of reach: only the colour→grey signal is left.
    det, out = run("light_switch", MotionSettings(global_fraction=1.0))
    assert det.reasons["ir"] == 1
    assert not any(r.motion for _, r in out)


def test_dusk_drift_is_not_motion_and_the_late_person_is() -> None:
    det, out = run("dusk")
    assert det.recalibrations == 1
    moving = [ts for ts, r in out if r.motion]
    assert moving and min(moving) >= 24.0 and max(moving) <= 32.5


def test_mask_suppresses_motion_inside_it() -> None:
    bush = [(0.6, 0.1), (1.0, 0.1), (1.0, 0.8), (0.6, 0.8)]
    _, plain = run("vegetation", seconds=10)
    _, masked = run("vegetation", MotionSettings(masks=(bush,)), seconds=10)
    assert sum(r.motion for _, r in plain) > 30
    assert not any(r.motion for _, r in masked)
    # A mask elsewhere does not hide the bush.
    elsewhere = [(0.0, 0.0), (0.3, 0.0), (0.3, 0.3)]
    _, other = run("vegetation", MotionSettings(masks=(elsewhere,)), seconds=10)
    assert sum(r.motion for _, r in other) > 30


def test_mask_on_walker_path_hides_only_that_part() -> None:
    left_half = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]
    _, out = run("walkthrough", MotionSettings(masks=(left_half,)))
    boxes = [b for _, r in out for b in r.boxes]
    assert boxes and all(b[0] >= 0.45 for b in boxes)


def test_sensitivity_presets_order() -> None:
    low, med, high = (settings_for(s) for s in ("low", "medium", "high"))
    assert low.threshold > med.threshold > high.threshold
    assert low.min_area > med.min_area > high.min_area
    assert settings_for("high", threshold=40).threshold == 40
    with pytest.raises(ValueError, match="sensitivity"):
        settings_for("extreme")
    with pytest.raises(ValueError, match="unknown motion setting"):
        settings_for("low", thresh=3)
    with pytest.raises(ValueError, match=r"motion.threshold=0"):
        MotionSettings(threshold=0)
    assert set(PRESETS) == {"low", "medium", "high"}


def test_low_sensitivity_ignores_the_small_cat_high_sees_it() -> None:
    from agent.vision.synthetic import Actor

    far_cat = Scene("far_cat", 8.0, actors=(Actor("cat", 1.5, 7.5, 0.1, 0.9, 0.7, 0.07),))
    _, low = run(far_cat, settings_for("low"))
    _, high = run(far_cat, settings_for("high"))
    assert sum(r.motion for _, r in high) > 20
    assert sum(r.motion for _, r in low) < sum(r.motion for _, r in high) / 2


def test_rejects_bad_input_and_handles_odd_sizes() -> None:
    det = MotionDetector()
    with pytest.raises(ValueError, match="uint8"):
        det.process(np.zeros((90, 160), np.float32), 0.0)
    rng = np.random.default_rng(0)
    odd = MotionDetector()
    for i in range(30):  # 333x197: no word-sized stride, partial cells dropped
        luma = rng.integers(100, 104, (197, 333), dtype=np.uint8)
        if i > 20:
            luma[40:120, 100:180] = 250
        result = odd.process(luma, i / 10)
    assert result.motion and len(result.boxes) == 1
    x1, y1, x2, y2 = result.boxes[0]
    assert x1 <= 100 / 333 + 0.05 and x2 >= 180 / 333 - 0.05
    assert y1 <= 40 / 197 + 0.05 and y2 >= 120 / 197 - 0.05


def test_regions_split_and_merge() -> None:
    det = MotionDetector(MotionSettings(warmup_s=0.0, min_area=0.0))
    base = np.full((180, 320), 100, np.uint8)
    det.process(base, 0.0)
    det.process(base, 0.1)
    two = base.copy()
    two[20:60, 20:60] = 220  # top left
    two[120:170, 250:300] = 220  # bottom right
    result = det.process(two, 0.2)
    assert len(result.boxes) == 2
    (a, b) = sorted(result.boxes)
    assert a[0] < 0.1 and a[1] < 0.15 and b[0] > 0.7 and b[3] > 0.9
    near = base.copy()
    near[40:80, 100:130] = 220
    near[40:80, 140:170] = 220  # a gap smaller than the dilation: one region
    det2 = MotionDetector(MotionSettings(warmup_s=0.0, min_area=0.0))
    det2.process(base, 0.0)
    assert len(det2.process(near, 0.1).boxes) == 1


@given(
    st.floats(0.05, 0.45),
    st.floats(0.05, 0.45),
    st.floats(0.1, 0.5),
    st.floats(0.1, 0.5),
)
@settings(max_examples=40, deadline=None, derandomize=True)
def test_rectangle_mask_rasterises_to_its_area(x: float, y: float, w: float, h: float) -> None:
    poly = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    grid = rasterize([poly], 200, 100)
    assert abs(grid.sum() - w * h * 200 * 100) <= (w * 200 + h * 100) * 2 + 4
    # A triangle is half of its bounding box.
    tri = rasterize([[(x, y), (x + w, y), (x, y + h)]], 200, 100)
    assert abs(tri.sum() - w * h * 200 * 100 / 2) <= (w * 200 + h * 100) * 2 + 4


def test_polygon_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"mask\[1\]: x=1.5 must be a number in 0..1"):
        check_polygon([(0, 0), (1.5, 0), (1, 1)])
    with pytest.raises(ValueError, match="at least 3 points"):
        check_polygon([(0, 0), (1, 1)])
    with pytest.raises(ValueError, match="list of"):
        check_polygon("0,0 1,1")  # type: ignore[arg-type]
