"""The built-in synthetic traffic data: determinism, exact labels, Ultralytics loading, clips, bad input, CLI."""

from __future__ import annotations

import json
import os

os.environ.setdefault("YOLO_OFFLINE", "1")

import cv2
import numpy as np
import pytest

from yolo_gism.data import CLASS_NAMES, MIN_BOX_PX, MIN_VISIBLE, make_clip, make_dataset, measure_generation_speed
from yolo_gism.data.cli import data_cli
from yolo_gism.data.clip import simulate
from yolo_gism.data.labels import yolo_lines
from yolo_gism.data.render import render_sample, render_scene
from yolo_gism.data.scene import BUS, CAR, PERSON, Agent, Conditions, Scene, View


def files_of(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def mask_box(mask: np.ndarray):
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path):
    a = make_dataset(tmp_path / "a", train=4, val=2, imgsz=96, seed=7)
    b = make_dataset(tmp_path / "b", train=4, val=2, imgsz=96, seed=7)
    c = make_dataset(tmp_path / "c", train=4, val=2, imgsz=96, seed=8)
    fa, fb, fc = files_of(a.parent), files_of(b.parent), files_of(c.parent)
    assert sorted(fa) == sorted(fb) == sorted(fc)
    assert len([k for k in fa if k.endswith(".jpg")]) == 6
    for name in fa:
        if name != "data.yaml":  # data.yaml holds the absolute folder
            assert fa[name] == fb[name], name
    assert a.read_text().replace(str(a.parent.resolve()), "") == b.read_text().replace(str(b.parent.resolve()), "")
    assert all(fa[k] != fc[k] for k in fa if k.endswith(".jpg"))


def test_image_depends_only_on_seed_split_and_index(tmp_path):
    """Rendering image 3 alone gives the same pixels as the dataset's image 3."""
    root = make_dataset(tmp_path / "d", train=4, val=1, imgsz=64, seed=2).parent
    alone = render_sample(2, 3, 64, "train")
    written = cv2.imread(str(root / "images/train/000003.jpg"))
    ok, buf = cv2.imencode(".jpg", alone.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert np.array_equal(cv2.imdecode(buf, cv2.IMREAD_COLOR), written)
    assert (root / "labels/train/000003.txt").read_text() == yolo_lines(alone.labels(), 64, 64)
    assert not np.array_equal(render_sample(2, 0, 64, "val").image, render_sample(2, 0, 64, "train").image)


# ---------------------------------------------------------------- labels against masks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boxes_are_bounding_boxes_of_visible_masks(seed):
    seen = {"occluded_labelled": 0, "hidden": 0, "labelled": 0}
    for index in range(6):
        r = render_sample(seed, index, 256)
        assert r.image.shape == (256, 256, 3) and r.ids.shape == (256, 256)
        for k, obj in enumerate(r.objects):
            mask = r.visible_mask(k)
            area = int(mask.sum())
            assert area == obj.visible_area <= obj.frame_area <= obj.own_area
            if obj.box is not None:
                assert obj.cls >= 0 and obj.box == mask_box(mask)
                assert area >= MIN_VISIBLE * obj.frame_area
                assert min(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]) >= MIN_BOX_PX
                seen["labelled"] += 1
                seen["occluded_labelled"] += area < obj.own_area
            else:
                small = area == 0 or min(np.subtract(mask_box(mask)[2:], mask_box(mask)[:2])) < MIN_BOX_PX
                assert obj.cls < 0 or small or area < MIN_VISIBLE * obj.frame_area
                seen["hidden"] += obj.cls >= 0
    assert all(seen.values()), seen  # the rule was exercised both ways


def hand_scene(agents):
    view = View(size=128, f=128.0, horizon=40.0, vpx=64.0, cam_h=6.0, cam_x=0.0, lanes=2, lane_w=3.5,
                sidewalk_w=3.0, z_max=100.0, lane_dirs=(-1, 1), crosswalk_z=None)
    cond = Conditions(time="day", rain=0.0, fog=0.0, noise=0.0, blur=0, blur_angle=0.0, jpeg=0, gain=1.0)
    return Scene(view, cond, agents)


def test_object_hidden_behind_a_bus_gets_no_box():
    bus = Agent(id=0, cls=BUS, x=1.75, z=20.0, w=2.5, h=3.2, length=12.0, color=(40, 190, 230))
    car = Agent(id=1, cls=CAR, x=1.75, z=35.0, w=1.8, h=1.5, length=4.5, color=(40, 40, 180))
    walker = Agent(id=2, cls=PERSON, x=-1.0, z=15.0, w=0.45, h=1.75, length=0.3, color=(0, 0, 200), kind="walk")
    r = render_scene(hand_scene([bus, car, walker]), np.random.default_rng(0))
    by_track = {o.track: (k, o) for k, o in enumerate(r.objects)}
    k_car, o_car = by_track[1]
    assert o_car.own_area > 20 and o_car.visible_area < MIN_VISIBLE * o_car.own_area and o_car.box is None
    for track in (0, 2):
        k, o = by_track[track]
        assert o.box == mask_box(r.visible_mask(k)) and o.visible_area == o.own_area
    assert sorted(c for c, _ in r.labels()) == [BUS, PERSON]


def test_partly_out_of_frame_is_labelled_like_coco_truncation():
    """A car cut by the image edge is judged on its in-frame part: unoccluded, it keeps its (clipped) box."""
    for x in (-7.75, -8.75):  # about 55 % and 20 % inside the frame
        car = Agent(id=0, cls=CAR, x=x, z=14.0, w=1.8, h=1.5, length=4.5, color=(200, 200, 200))
        r = render_scene(hand_scene([car]), np.random.default_rng(0))
        o = r.objects[0]
        assert o.box is not None and o.box == mask_box(r.visible_mask(0)), (x, o.visible_area, o.frame_area)
        assert o.own_box[0] < 0 and o.visible_area == o.frame_area < o.own_area


# ---------------------------------------------------------------- Ultralytics loads it


def test_ultralytics_dataset_builder_reads_it(tmp_path):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    yaml_path = make_dataset(tmp_path / "u", train=6, val=3, imgsz=64, seed=0)
    data = check_det_dataset(str(yaml_path))
    assert data["names"] == CLASS_NAMES and data["nc"] == 6
    cfg = get_cfg(overrides={"imgsz": 64})
    for split, n in (("train", 6), ("val", 3)):
        ds = build_yolo_dataset(cfg, data[split], batch=2, data=data, mode="val")
        assert len(ds) == n
        root = yaml_path.parent / "labels" / split
        lines = sum(len(f.read_text().splitlines()) for f in root.glob("*.txt"))
        assert sum(len(lb["cls"]) for lb in ds.labels) == lines > 0
        assert ds[0]["img"].shape[-2:] == (64, 64)


def test_val_zero_reuses_train(tmp_path):
    from ultralytics.data.utils import check_det_dataset

    yaml_path = make_dataset(tmp_path / "v0", train=2, val=0, imgsz=32)
    data = check_det_dataset(str(yaml_path))
    assert data["val"] == data["train"]


# ---------------------------------------------------------------- clips


def test_clip_frame_count_and_label_alignment(tmp_path):
    out = make_clip(tmp_path / "clip.mp4", frames=12, fps=10, imgsz=64, seed=4)
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 12
    meta = json.loads((tmp_path / "clip.json").read_text())
    assert meta["frames"] == 12 and meta["fps"] == 10 and meta["names"] == {str(k): v for k, v in CLASS_NAMES.items()}
    labels = sorted((tmp_path / "clip_labels").glob("*.txt"))
    assert [p.name for p in labels] == [f"{i:06d}.txt" for i in range(12)]
    for path, (rendered, _) in zip(labels, simulate(12, 10, 64, 4)):
        assert path.read_text() == yolo_lines(rendered.labels(), 64, 64)


def test_clip_objects_move_continuously():
    fps = 30
    prev, moved, lifetimes, where = {}, 0, {}, {}
    for rendered, scene in simulate(25, fps, 128, 1):
        for a in scene.agents:  # world positions: no agent moves further than its own speed allows
            if a.id in where and a.rider_of < 0:
                assert np.hypot(a.x - where[a.id][0], a.z - where[a.id][1]) <= a.speed / fps + 1e-9
        where = {a.id: (a.x, a.z) for a in scene.agents}
        now = {}
        for o in rendered.objects:
            if o.cls < 0:
                continue
            x0, y0, x1, y1 = o.own_box
            now[o.track] = (o.cls, (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0))
            lifetimes[o.track] = lifetimes.get(o.track, 0) + 1
        for track, (cls, cx, cy, size) in now.items():
            if track in prev:
                pcls, pcx, pcy, psize = prev[track]
                step = np.hypot(cx - pcx, cy - pcy)
                assert cls == pcls and step <= 0.5 * max(size, psize) + 2, (track, step, size)
                moved += step > 0
        prev = now
    assert moved > 10
    assert np.mean(list(lifetimes.values())) > 5  # tracks persist over frames


def test_clip_refuses_existing_and_bad_values(tmp_path):
    out = make_clip(tmp_path / "c.mp4", frames=2, fps=5, imgsz=32, seed=0)
    before = out.read_bytes()
    with pytest.raises(FileExistsError, match="c.mp4"):
        make_clip(out, frames=3, fps=5, imgsz=32)
    assert out.read_bytes() == before
    make_clip(out, frames=3, fps=5, imgsz=32, exist_ok=True)
    assert len(list((tmp_path / "c_labels").glob("*.txt"))) == 3
    for kwargs, name in (({"frames": 0}, "frames"), ({"frames": 2.5}, "frames"), ({"fps": 0}, "fps"),
                         ({"fps": "fast"}, "fps"), ({"imgsz": 50}, "imgsz"), ({"seed": -3}, "seed"),
                         ({"out": tmp_path / "c.avi"}, "out")):
        args = {"out": tmp_path / "new.mp4", "frames": 2, "fps": 5, "imgsz": 32, **kwargs}
        with pytest.raises(ValueError, match=name):
            make_clip(**args)
    assert not (tmp_path / "new.mp4").exists()


# ---------------------------------------------------------------- bad input to make_dataset


@pytest.mark.parametrize("kwargs, name", [
    ({"train": -1}, "train"), ({"train": 0}, "train"), ({"train": 1.5}, "train"), ({"train": "3"}, "train"),
    ({"train": True}, "train"), ({"val": -1}, "val"), ({"val": 2.0}, "val"),
    ({"imgsz": 16}, "imgsz"), ({"imgsz": 48}, "imgsz"), ({"imgsz": 320.0}, "imgsz"), ({"imgsz": 8192}, "imgsz"),
    ({"seed": -1}, "seed"), ({"seed": 0.5}, "seed"), ({"seed": None}, "seed"), ({"exist_ok": "yes"}, "exist_ok"),
])
def test_make_dataset_rejects_bad_values(tmp_path, kwargs, name):
    args = {"train": 2, "val": 1, "imgsz": 32, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        make_dataset(tmp_path / "bad", **args)
    assert not (tmp_path / "bad").exists()


def test_make_dataset_refuses_nonempty_folder(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="taken"):
        make_dataset(out, train=2, val=1, imgsz=32)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    make_dataset(tmp_path / "empty_ok", train=1, val=1, imgsz=32)  # an existing empty folder is fine
    make_dataset(out, train=3, val=1, imgsz=32, exist_ok=True)
    make_dataset(out, train=2, val=1, imgsz=32, exist_ok=True)  # smaller rerun leaves no stale images
    assert sorted(p.name for p in (out / "images/train").iterdir()) == ["000000.jpg", "000001.jpg"]
    assert (out / "keep.txt").read_text() == "mine"


# ---------------------------------------------------------------- command line and speed helper


def test_cli(tmp_path, capsys):
    from yolo_gism.cli import main

    with pytest.raises(ValueError, match="valid: out, train, val, imgsz, seed, exist_ok"):
        data_cli([], {"out": str(tmp_path / "x"), "bogus": 1})
    with pytest.raises(ValueError, match="valid: out, frames, fps, imgsz, seed, exist_ok"):
        data_cli(["video"], {"out": str(tmp_path / "v.mp4"), "train": 3})
    with pytest.raises(ValueError, match="unknown word"):
        data_cli(["movie"], {})
    args = ["data", f"out={tmp_path / 'cli'}", "train=2", "val=1", "imgsz=32", "seed=3", "exist_ok=0"]
    assert main(args) == 0
    assert (tmp_path / "cli" / "data.yaml").is_file()
    assert main(args) == 1 and "not empty" in capsys.readouterr().err
    assert main(args[:-1] + ["exist_ok=1"]) == 0
    assert main(["data", "video", f"out={tmp_path / 'v.mp4'}", "frames=3", "fps=5", "imgsz=32", "seed=1"]) == 0
    assert len(list((tmp_path / "v_labels").iterdir())) == 3


def test_measure_generation_speed_returns_a_rate():
    rate = measure_generation_speed(n=3, imgsz=64, seed=0)
    assert isinstance(rate, float) and rate > 0
    with pytest.raises(ValueError, match="imgsz"):
        measure_generation_speed(n=1, imgsz=33)
