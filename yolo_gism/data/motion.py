"""Agents moving in time, for clips: vehicles drive along their lanes at their own speeds (slowing behind a
slower one), enter and leave the view; people walk the sidewalks and cross at the crosswalk.

Positions change only by speed x dt, so every agent moves continuously; agents keep their ids (tracks).
"""

from __future__ import annotations

import itertools

import numpy as np

from .scene import CLUTTER, PERSON, Agent, View, lane_gaps, make_person, make_vehicle, sample_agents, sidewalk_x

FOLLOW_GAP = 8.0  # metres: closer than this a vehicle slows toward its leader's speed
STEP_LEN = 0.75  # metres walked per half stride


class Traffic:
    """The agents of one clip and their motion over time."""

    def __init__(self, rng: np.random.Generator, view: View, crowded: bool | None = None):
        self.rng, self.view = rng, view
        crowded = bool(rng.random() < 0.25) if crowded is None else crowded
        self.ids = itertools.count()
        self.gaps = lane_gaps(rng, view, crowded)
        self.walk_rate = 0.6 if crowded else 0.12  # new pedestrians per second, per sidewalk end
        self.agents = sample_agents(rng, view, crowded, self.ids, self.gaps)

    def step(self, dt: float) -> None:
        """Advance everything by dt seconds, then remove who left and let new agents enter."""
        by_id = {a.id: a for a in self.agents}
        for lane in range(self.view.lanes):
            self.drive_lane(lane, dt)
        for a in self.agents:
            if a.cls == PERSON and a.rider_of < 0:
                a.x += a.heading[0] * a.speed * dt
                a.z += a.heading[1] * a.speed * dt
                a.phase += np.pi * a.speed * dt / STEP_LEN
            elif a.rider_of >= 0 and a.rider_of in by_id:
                bike = by_id[a.rider_of]
                a.x, a.z = bike.x, bike.z + bike.length / 2
        self.agents = [a for a in self.agents if self.inside(a, by_id)]
        self.spawn(dt)

    def drive_lane(self, lane: int, dt: float) -> None:
        """Move one lane's vehicles, leader first; a follower closer than FOLLOW_GAP slows down."""
        d = self.view.lane_dirs[lane]
        cars = sorted((a for a in self.agents if a.lane == lane and a.cls not in (PERSON, CLUTTER)),
                      key=lambda a: -a.z * d)
        leader_speed, leader_back = None, None
        for car in cars:
            speed = car.speed
            if leader_speed is not None:
                gap = (leader_back - (car.z + car.length)) if d > 0 else (car.z - leader_back)
                if gap < FOLLOW_GAP:  # 0 at 1 m, the leader's speed at FOLLOW_GAP
                    speed = min(speed, leader_speed * max(0.0, gap - 1.0) / (FOLLOW_GAP - 1.0))
            car.z += d * speed * dt
            leader_speed, leader_back = speed, (car.z if d > 0 else car.z + car.length)

    def inside(self, a: Agent, by_id: dict) -> bool:
        """Still in the simulated stretch of road (a rider lives as long as its bike)."""
        v = self.view
        if a.cls == CLUTTER:
            return True
        if a.rider_of >= 0:
            return a.rider_of in by_id and self.inside(by_id[a.rider_of], by_id)
        if a.cls == PERSON:
            return v.z_near * 0.5 < a.z < v.z_max * 0.9 and abs(a.x) < v.road_w / 2 + v.sidewalk_w
        return -a.length - 1.0 < a.z < v.z_max * 1.1  # enters/leaves beneath the camera, unseen

    def spawn(self, dt: float) -> None:
        """New vehicles at the entry end of a lane when it is free; new pedestrians at sidewalk ends and the crosswalk."""
        v, rng = self.view, self.rng
        for lane, d in enumerate(v.lane_dirs):
            entry = -14.0 if d > 0 else v.z_max * 1.05
            ahead = [a.z - entry if d > 0 else entry - a.z - a.length for a in self.agents
                     if a.lane == lane and a.cls not in (PERSON, CLUTTER)]
            flow = 12.0 / (self.gaps[lane] + 5.0)  # vehicles per second at ~12 m/s
            if (not ahead or min(ahead) > 14.0) and rng.random() < flow * dt:
                self.agents += make_vehicle(rng, v, lane, entry, self.ids)
        for z_end, heading in ((v.z_near * 0.55, 1.0), (v.z_max * 0.85, -1.0)):
            if rng.random() < self.walk_rate * dt:
                self.agents.append(make_person(rng, sidewalk_x(rng, v), z_end, self.ids, heading=(0.0, heading)))
        if v.crosswalk_z is not None and rng.random() < self.walk_rate * 0.5 * dt:
            side = float(rng.choice([-1, 1]))
            z = v.crosswalk_z + rng.uniform(-1.2, 1.2)
            x = side * (v.road_w / 2 + v.sidewalk_w - 0.3)
            self.agents.append(make_person(rng, x, z, self.ids, heading=(-side, 0.0)))

