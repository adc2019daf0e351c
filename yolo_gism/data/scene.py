"""World model of a traffic-camera scene: camera and road geometry, light and weather, and the agents on it.

Units are metres in the world and pixels in the image. The camera looks along +Z down a straight road;
X is lateral (road centre at X=0) and Y is up. Image rows grow downward. The projection keeps vertical
lines vertical (a shifted principal point instead of a pitched camera), which is what a mast-mounted
traffic camera roughly sees and keeps every box face an easy polygon.

Everything random comes from the one ``numpy.random.Generator`` a caller passes in, so a scene depends
only on that generator (the dataset derives one per image from ``(seed, split, index)``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

CLASS_NAMES = {0: "car", 1: "bus", 2: "truck", 3: "motorcycle", 4: "bicycle", 5: "person"}
CAR, BUS, TRUCK, MOTORCYCLE, BICYCLE, PERSON = range(6)
CLUTTER = -1  # drawn and occluding, never labelled (trees, lamp posts)

VEHICLE_P = {CAR: 0.62, TRUCK: 0.12, BUS: 0.08, MOTORCYCLE: 0.10, BICYCLE: 0.08}
VEHICLE_CLASSES, VEHICLE_CDF = list(VEHICLE_P), np.cumsum(list(VEHICLE_P.values()))
# class -> (width, height, length) ranges in metres
SIZES = {
    CAR: ((1.65, 1.95), (1.35, 1.7), (3.8, 4.9)),
    BUS: ((2.45, 2.6), (2.9, 3.3), (10.5, 12.5)),
    TRUCK: ((2.3, 2.55), (3.0, 3.8), (6.5, 9.5)),
    MOTORCYCLE: ((0.65, 0.8), (1.1, 1.25), (1.9, 2.2)),
    BICYCLE: ((0.5, 0.6), (1.0, 1.1), (1.65, 1.8)),
    PERSON: ((0.42, 0.5), (1.5, 1.92), (0.3, 0.3)),
}
SPEED = {CAR: (8, 16), BUS: (6, 11), TRUCK: (6, 12), MOTORCYCLE: (9, 18), BICYCLE: (3, 6), PERSON: (0.9, 1.7)}
CAR_COLORS = [(235, 235, 235), (30, 30, 30), (170, 170, 175), (110, 110, 115), (40, 40, 180), (150, 70, 30),
              (40, 90, 40), (40, 190, 220), (20, 50, 110), (90, 30, 110)]
BUS_COLORS = [(40, 190, 230), (40, 40, 190), (230, 230, 230), (160, 90, 30), (60, 140, 60)]


@dataclass(frozen=True)
class View:
    """Camera and road: what stays fixed for one image (or one whole clip)."""

    size: int  # image side in pixels
    f: float  # focal length in pixels
    horizon: float  # image row of the horizon
    vpx: float  # image column of the vanishing point
    cam_h: float  # camera height above the road, m
    cam_x: float  # camera lateral position, m
    lanes: int
    lane_w: float
    sidewalk_w: float
    z_max: float  # farthest distance where agents are placed, m
    lane_dirs: tuple  # per lane, left to right: +1 drives away from the camera, -1 toward it
    crosswalk_z: float | None

    @property
    def road_w(self) -> float:
        return self.lanes * self.lane_w

    @property
    def z_near(self) -> float:
        """Distance at which the road meets the bottom image edge."""
        return self.f * self.cam_h / (self.size - self.horizon)

    def lane_x(self, lane: int) -> float:
        return -self.road_w / 2 + (lane + 0.5) * self.lane_w

    def project(self, pts: np.ndarray) -> np.ndarray:
        """(n, 3) world points -> (n, 2) image points (u, v)."""
        scale = self.f / np.maximum(pts[:, 2], 0.05)
        uv = np.empty((len(pts), 2))
        uv[:, 0] = self.vpx + (pts[:, 0] - self.cam_x) * scale
        uv[:, 1] = self.horizon + (self.cam_h - pts[:, 1]) * scale
        return uv


@dataclass(frozen=True)
class Conditions:
    """Light, weather and sensor: fixed per image (or per clip)."""

    time: str  # "day", "dusk" or "night"
    rain: float  # 0 = dry, up to 1 = heavy
    fog: float  # visibility distance in m, 0 = clear
    noise: float  # sensor noise sigma, grey levels
    blur: int  # motion blur length in px, 0 = none
    blur_angle: float  # degrees
    jpeg: int  # JPEG re-encode quality, 0 = none
    gain: float  # exposure


@dataclass
class Agent:
    """One thing in the world. Vehicles: (x, z) = centre of the end nearest the camera; people: centre."""

    id: int
    cls: int
    x: float
    z: float
    w: float
    h: float
    length: float
    color: tuple
    color2: tuple = (0, 0, 0)
    dir: int = 1  # vehicles: +1 away from camera (rear visible), -1 toward it (front visible)
    heading: tuple = (0.0, 1.0)  # people: unit (dx, dz) of walking
    speed: float = 0.0
    phase: float = 0.0  # walking cycle, radians
    kind: str = ""  # people: "walk" or "ride"; clutter: "tree" or "lamp"
    y0: float = 0.0  # height of the feet (riders sit higher)
    rider_of: int = -1  # id of the bike a rider sits on
    lane: int = -1



def painter_order(agents: list[Agent]) -> list[Agent]:
    """Far to near by the end nearest the camera; a rider right after (in front of) its bike."""
    near_z = {a.id: a.z for a in agents}
    key = lambda a: near_z.get(a.rider_of, a.z) - 0.001 if a.rider_of >= 0 else a.z  # noqa: E731
    return sorted(agents, key=key, reverse=True)


def sample_view(rng: np.random.Generator, size: int) -> View:
    """A random fixed viewpoint: horizon, vanishing point, camera height and road layout all vary."""
    lanes = int(rng.integers(2, 7))
    lane_w, sidewalk_w = rng.uniform(3.0, 3.8), rng.uniform(1.8, 4.5)
    road_half = lanes * lane_w / 2
    dirs = [-1 if i < lanes / 2 else 1 for i in range(lanes)]
    if lanes % 2:
        dirs[lanes // 2] = int(rng.choice([-1, 1]))
    if rng.random() < 0.2:  # one-way road
        dirs = [int(rng.choice([-1, 1]))] * lanes
    elif rng.random() < 0.3:  # left-hand traffic
        dirs = [-d for d in dirs]
    return View(
        size=size, f=rng.uniform(0.8, 1.5) * size, horizon=rng.uniform(0.1, 0.42) * size,
        vpx=rng.uniform(0.3, 0.7) * size, cam_h=rng.uniform(4.5, 12.0),
        cam_x=rng.uniform(-road_half - sidewalk_w, road_half + sidewalk_w), lanes=lanes, lane_w=lane_w,
        sidewalk_w=sidewalk_w, z_max=rng.uniform(90, 170), lane_dirs=tuple(dirs),
        crosswalk_z=rng.uniform(15, 45) if rng.random() < 0.5 else None,
    )


def sample_conditions(rng: np.random.Generator) -> Conditions:
    """Day, dusk or night; sometimes rain or fog; always some sensor noise."""
    time = str(rng.choice(["day", "dusk", "night"], p=[0.55, 0.2, 0.25]))
    rain = rng.uniform(0.3, 1.0) if rng.random() < 0.2 else 0.0
    fog = rng.uniform(35, 160) if rng.random() < 0.15 else 0.0
    noise = rng.uniform(4, 14) if time == "night" else rng.uniform(1, 6)
    blur = int(rng.integers(3, 8)) if rng.random() < 0.25 else 0
    jpeg = int(rng.integers(25, 80)) if rng.random() < 0.5 else 0
    return Conditions(time=time, rain=rain, fog=fog, noise=noise, blur=blur, blur_angle=rng.uniform(-30, 30),
                      jpeg=jpeg, gain=rng.uniform(0.8, 1.2))


def make_vehicle(rng: np.random.Generator, view: View, lane: int, z: float, ids: Iterator[int]) -> list[Agent]:
    """A vehicle in a lane with its near end at z, plus a rider for a two-wheeler."""
    cls = VEHICLE_CLASSES[min(int(np.searchsorted(VEHICLE_CDF, rng.random())), len(VEHICLE_CLASSES) - 1)]
    (w0, w1), (h0, h1), (l0, l1) = SIZES[cls]
    x = view.lane_x(lane) + rng.uniform(-0.3, 0.3)
    if cls == BICYCLE:  # bicycles keep to the outer edge of their lane
        x = view.lane_x(lane) + (1 if view.lane_x(lane) > 0 else -1) * view.lane_w * 0.3
    palette = BUS_COLORS if cls == BUS else CAR_COLORS
    jitter = rng.integers(-20, 21, 3)
    color = tuple(min(255, max(0, c + int(j))) for c, j in zip(palette[int(rng.integers(len(palette)))], jitter))
    color2 = tuple(int(c) for c in rng.integers(60, 240, 3)) if cls == TRUCK else (20, 20, 20)
    if cls == TRUCK and rng.random() < 0.5:
        color2 = (225, 225, 225)
    car = Agent(id=next(ids), cls=cls, x=x, z=z, w=rng.uniform(w0, w1), h=rng.uniform(h0, h1),
                length=rng.uniform(l0, l1), color=color, color2=color2, dir=view.lane_dirs[lane],
                speed=rng.uniform(*SPEED[cls]), lane=lane)
    out = [car]
    if cls in (MOTORCYCLE, BICYCLE) and rng.random() < 0.8:
        rider = make_person(rng, x, z + car.length / 2, ids, heading=(0.0, float(car.dir)))
        rider.kind, rider.y0, rider.rider_of = "ride", (0.75 if cls == MOTORCYCLE else 0.85), car.id
        out.append(rider)
    return out


def make_person(rng: np.random.Generator, x: float, z: float, ids: Iterator[int], heading=(0.0, 1.0)) -> Agent:
    """A pedestrian with random build, clothes and walking phase."""
    (w0, w1), (h0, h1), _ = SIZES[PERSON]
    shirt = tuple(int(c) for c in rng.integers(20, 235, 3))
    pants = tuple(int(c) for c in rng.integers(15, 120, 3))
    return Agent(id=next(ids), cls=PERSON, x=x, z=z, w=rng.uniform(w0, w1), h=rng.uniform(h0, h1), length=0.3,
                 color=shirt, color2=pants, heading=heading, speed=rng.uniform(*SPEED[PERSON]),
                 phase=rng.uniform(0, 2 * np.pi), kind="walk")


def sample_lane(rng: np.random.Generator, view: View, lane: int, mean_gap: float, ids) -> list[Agent]:
    """Vehicles queued along one lane from just below the image to z_max, with random gaps."""
    agents, z = [], view.z_near * 0.7 + rng.uniform(0, mean_gap)
    while z < view.z_max:
        group = make_vehicle(rng, view, lane, z, ids)
        agents += group
        z += group[0].length + 1.5 + rng.exponential(mean_gap)
    return agents


def sidewalk_x(rng: np.random.Generator, view: View) -> float:
    side = rng.choice([-1, 1])
    return float(side * (view.road_w / 2 + rng.uniform(0.3, view.sidewalk_w - 0.3)))


def sample_people(rng: np.random.Generator, view: View, crowded: bool, ids) -> list[Agent]:
    """Pedestrians walking along the sidewalks, and some crossing at the crosswalk."""
    people = []
    for _ in range(int(rng.poisson(22 if crowded else 4))):
        z = rng.uniform(view.z_near * 0.7, view.z_max * 0.8)
        people.append(make_person(rng, sidewalk_x(rng, view), z, ids, heading=(0.0, float(rng.choice([-1, 1])))))
    if view.crosswalk_z is not None:
        for _ in range(int(rng.poisson(8 if crowded else 1.5))):
            x = rng.uniform(-view.road_w / 2, view.road_w / 2)
            z = view.crosswalk_z + rng.uniform(-1.2, 1.2)
            people.append(make_person(rng, x, z, ids, heading=(float(rng.choice([-1, 1])), 0.0)))
    return people


def sample_clutter(rng: np.random.Generator, view: View, ids) -> list[Agent]:
    """Trees and lamp posts along the outer sidewalk edges: unlabelled occluders."""
    out = []
    for side in (-1, 1):
        x = side * (view.road_w / 2 + view.sidewalk_w - 0.4)
        kind = "tree" if rng.random() < 0.5 else "lamp"
        z = view.z_near * 0.8 + rng.uniform(0, 20)
        while z < view.z_max * 1.2:
            h = rng.uniform(5, 8) if kind == "tree" else rng.uniform(6, 9)
            out.append(Agent(id=next(ids), cls=CLUTTER, x=x, z=z, w=0.25, h=h, length=0.25, kind=kind,
                             color=(40, int(rng.integers(90, 140)), 50) if kind == "tree" else (90, 90, 95),
                             dir=side))
            z += rng.uniform(18, 40)
    return out


def lane_gaps(rng: np.random.Generator, view: View, crowded: bool) -> list[float]:
    """Mean free gap between vehicles, per lane: a few metres in a queue, tens of metres in free flow."""
    return [rng.uniform(1.0, 6.0) if crowded else rng.uniform(15, 70) for _ in range(view.lanes)]


def sample_agents(rng: np.random.Generator, view: View, crowded: bool | None = None, ids=None,
                  gaps: list[float] | None = None) -> list[Agent]:
    """Everything on the road at one instant; about a quarter of scenes are crowded (queues, crowds)."""
    crowded = bool(rng.random() < 0.25) if crowded is None else crowded
    ids = itertools.count() if ids is None else ids
    gaps = lane_gaps(rng, view, crowded) if gaps is None else gaps
    agents = []
    for lane in range(view.lanes):
        agents += sample_lane(rng, view, lane, gaps[lane], ids)
    agents += sample_people(rng, view, crowded, ids)
    agents += sample_clutter(rng, view, ids)
    return agents


@dataclass
class Scene:
    """A fixed view and conditions with the agents in it: the input of the renderer."""

    view: View
    cond: Conditions
    agents: list = field(default_factory=list)


def sample_scene(rng: np.random.Generator, size: int) -> Scene:
    view = sample_view(rng, size)
    cond = sample_conditions(rng)
    return Scene(view, cond, sample_agents(rng, view))
