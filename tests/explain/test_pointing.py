"""The pointing game through the real lite model: does the peak land on the object the text names?"""

from __future__ import annotations

from typing import Any

import pytest

from polymodal.explain import explain
from polymodal.explain.pointing import QUERIES, compose_scene, play

#: seeds 2000+: apart from those cam's settings were chosen on (0-29) and the benchmark's (1000+)
SEEDS = range(2000, 2020)
#: measured 19/20 (0.95; the miss: "an astronaut", which no ImageNet class names) on these scenes; a uniformly
#: random point hits ~0.08 (each box is ~8% of the canvas)
BOUND = 0.8


@pytest.mark.slow
def test_cam_points_at_the_named_object_in_composed_scenes(cam_lite: Any) -> None:
    # One query per scene (the objects asked for rotate), so 20 scenes stay within a test's time.
    scenes = [compose_scene(seed) for seed in SEEDS]
    asked = [s.__class__(s.image, (s.objects[i % len(s.objects)],), s.seed) for i, s in enumerate(scenes)]
    result = play(lambda image, text: explain(image, text, cam_lite, method="cam").peak, asked, method="cam")
    chance = sum((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) / (s.image.width * s.image.height)
                 for s in asked for o in s.objects) / len(asked)
    assert result.queries == 20
    assert chance < 0.15
    assert result.accuracy >= BOUND, f"hits {result.hits}/{result.queries}, misses {result.misses}"


def test_scenes_are_reproducible_and_boxes_stay_apart() -> None:
    a, b = compose_scene(7), compose_scene(7)
    assert a.objects == b.objects and a.image.tobytes() == b.image.tobytes()
    assert len(a.objects) == 3 and all(o.name in QUERIES for o in a.objects)
    for i, o in enumerate(a.objects):
        x0, y0, x1, y1 = o.box
        assert 0 <= x0 < x1 <= a.image.width and 0 <= y0 < y1 <= a.image.height
        for p in a.objects[i + 1:]:
            assert x1 <= p.box[0] or p.box[2] <= x0 or y1 <= p.box[1] or p.box[3] <= y0


def test_play_scores_hits_by_box() -> None:
    scene = compose_scene(3)
    first = scene.objects[0].box
    inside = ((first[0] + first[2]) // 2, (first[1] + first[3]) // 2)
    result = play(lambda image, text: inside, [scene])
    assert result.queries == 3 and result.hits == 1 and len(result.misses) == 2
