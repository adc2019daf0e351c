"""What each kind of agent looks like: a list of flat 3D parts (polygons and thick lines) in world metres.

Parts are listed back to front within an object, so the renderer only paints them in order. Vehicles are
axis-aligned boxes of which only the faces turned to the camera are listed (so the faces never overlap);
far objects get a coarse version to keep rendering cheap where detail would be sub-pixel anyway.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .scene import BICYCLE, BUS, CAR, CLUTTER, MOTORCYCLE, PERSON, TRUCK, Agent, View

GLASS = (75, 60, 50)
TYRE = (28, 28, 28)
SKIN = [(140, 170, 215), (95, 125, 170), (60, 85, 120), (170, 195, 230)]
HEADLIGHT, TAILLIGHT = (200, 235, 250), (30, 30, 210)


def _unit_circle(plane: str, n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    zero = np.zeros(n)
    return np.stack([zero, np.sin(t), np.cos(t)] if plane == "x" else [np.cos(t), np.sin(t), zero], 1)


UNIT_CIRCLE = {(plane, n): _unit_circle(plane, n) for plane in "xz" for n in (6, 8, 10, 12)}


class Part(NamedTuple):
    pts: np.ndarray  # (n, 3) world points: a convex polygon, or a polyline when width > 0
    color: tuple
    width: float = 0.0  # line width in metres; 0 = filled polygon
    light: bool = False  # a lamp: glows at dusk and night


def shade(color, k: float) -> tuple:
    return tuple(min(255, int(c * k)) for c in color)


def quad_x(x, y0, y1, z0, z1):
    return np.array([[x, y0, z0], [x, y1, z0], [x, y1, z1], [x, y0, z1]], float)


def quad_y(y, x0, x1, z0, z1):
    return np.array([[x0, y, z0], [x1, y, z0], [x1, y, z1], [x0, y, z1]], float)


def quad_z(z, x0, x1, y0, y1):
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], float)


def disc(center, r, plane: str, n: int = 10):
    """Circle of radius r in the plane x=const ('x', wheels) or z=const ('z', heads, crowns)."""
    return np.asarray(center, float) + r * UNIT_CIRCLE[plane, n]


def side_x(view: View, x0: float, x1: float) -> float | None:
    """The lateral face of a box the camera sees, or None when the camera is above the box's width."""
    if x1 < view.cam_x:
        return x1
    if x0 > view.cam_x:
        return x0
    return None


def cuboid(view, x0, x1, y0, y1, z0, z1, near, side=None, top=None) -> list[Part]:
    """The faces of a box that face the camera: they never overlap, so their order is free."""
    parts = []
    sx = side_x(view, x0, x1)
    if sx is not None:
        parts.append(Part(quad_x(sx, y0, y1, z0, z1), side or shade(near, 0.78)))
    if y1 < view.cam_h:
        parts.append(Part(quad_y(y1, x0, x1, z0, z1), top or shade(near, 1.12)))
    parts.append(Part(quad_z(z0, x0, x1, y0, y1), near))
    return parts


def wheels(view, a: Agent, r: float, z_pos: tuple) -> tuple[list[Part], list[Part]]:
    """Tyres under the near end (drawn before the body) and wheels on the visible side (drawn after)."""
    x0, x1 = a.x - a.w / 2, a.x + a.w / 2
    under = [Part(quad_z(a.z + 0.4, x, x + 0.28, 0, r * 1.2), TYRE) for x in (x0 + 0.05, x1 - 0.33)]
    sx = side_x(view, x0, x1)
    if sx is None:
        return under, []
    return under, [Part(disc((sx, r, a.z + dz), r, "x"), TYRE) for dz in z_pos]


def lamps(a: Agent, y0: float, y1: float, inset: float = 0.1, size: float = 0.3) -> list[Part]:
    """Headlights (front toward the camera) or taillights on the near face."""
    x0, x1, z = a.x - a.w / 2, a.x + a.w / 2, a.z - 0.01
    color = HEADLIGHT if a.dir < 0 else TAILLIGHT
    return [Part(quad_z(z, x0 + inset, x0 + inset + size, y0, y1), color, light=True),
            Part(quad_z(z, x1 - inset - size, x1 - inset, y0, y1), color, light=True)]


def car(view, a: Agent, detail: bool) -> list[Part]:
    x0, x1, z0, z1 = a.x - a.w / 2, a.x + a.w / 2, a.z, a.z + a.length
    front = a.dir < 0
    belt = 0.35 + 0.45 * (a.h - 0.35)
    under, side = wheels(view, a, 0.32, (0.8, a.length - 0.8)) if detail else ([], [])
    hood, trunk = 0.3 * a.length, 0.2 * a.length
    c0, c1 = (z0 + hood, z1 - trunk) if front else (z0 + trunk, z1 - hood)
    parts = under + cuboid(view, x0, x1, 0.3, belt, z0, z1, a.color) + side
    parts += cuboid(view, x0 + 0.12, x1 - 0.12, belt, a.h, c0, c1, GLASS, GLASS, shade(a.color, 1.05))
    if detail:
        parts += lamps(a, belt - 0.22, belt - 0.08)
        parts.append(Part(quad_z(z0 - 0.01, a.x - 0.25, a.x + 0.25, 0.38, 0.5), (210, 210, 210)))
    return parts


def bus(view, a: Agent, detail: bool) -> list[Part]:
    x0, x1, z0, z1 = a.x - a.w / 2, a.x + a.w / 2, a.z, a.z + a.length
    under, side = wheels(view, a, 0.5, (2.2, a.length - 2.8)) if detail else ([], [])
    parts = under + cuboid(view, x0, x1, 0.35, a.h, z0, z1, a.color) + side
    sx = side_x(view, x0, x1)
    if sx is not None:
        parts.append(Part(quad_x(sx, 1.3, a.h - 0.45, z0 + 1.4, z1 - 0.4), GLASS))
    top_glass = a.h - 0.25 if a.dir < 0 else a.h - 0.6
    parts.append(Part(quad_z(z0 - 0.01, x0 + 0.12, x1 - 0.12, 1.25, top_glass), GLASS))
    if detail:
        parts += lamps(a, 0.55, 0.8)
    return parts


def truck(view, a: Agent, detail: bool) -> list[Part]:
    x0, x1, z0, z1 = a.x - a.w / 2, a.x + a.w / 2, a.z, a.z + a.length
    cab_l, cab_h = 2.2, min(2.9, a.h - 0.3)
    under, side = wheels(view, a, 0.5, (1.2, a.length - 1.5)) if detail else ([], [])
    cab = lambda c0, c1: cuboid(view, x0 + 0.05, x1 - 0.05, 0.4, cab_h, c0, c1, a.color)  # noqa: E731
    cargo = lambda c0, c1: cuboid(view, x0, x1, 0.6, a.h, c0, c1, a.color2)  # noqa: E731
    if a.dir < 0:  # front toward the camera: cargo box behind the cab
        parts = under + cargo(z0 + cab_l + 0.2, z1) + cab(z0, z0 + cab_l) + side
        parts.append(Part(quad_z(z0 - 0.01, x0 + 0.2, x1 - 0.2, 1.5, cab_h - 0.15), GLASS))
    else:
        parts = under + cab(z1 - cab_l, z1) + cargo(z0, z1 - cab_l - 0.2) + side
        if detail:
            parts.append(Part(np.array([[a.x, 0.7, z0 - 0.01], [a.x, a.h - 0.1, z0 - 0.01]]), shade(a.color2, 0.6), 0.06))
    if detail:
        parts += lamps(a, 0.55, 0.8)
    return parts


def two_wheeler(view, a: Agent, detail: bool) -> list[Part]:
    """Motorcycle (thick wheels, engine body) or bicycle (thin rings and a frame)."""
    r = 0.32 if a.cls == MOTORCYCLE else 0.34
    z_near_w, z_far_w = a.z + r, a.z + a.length - r
    near_wheel, far_wheel = disc((a.x, r, z_near_w), r, "x", 12), disc((a.x, r, z_far_w), r, "x", 12)
    front_z = z_near_w if a.dir < 0 else z_far_w
    bar = np.array([[a.x - 0.32, 1.0, front_z], [a.x + 0.32, 1.0, front_z]])
    if a.cls == MOTORCYCLE:
        parts = [Part(far_wheel, TYRE), Part(quad_x(a.x, 0.35, 0.85, a.z + 0.35, a.z + a.length - 0.35), a.color)]
        parts += cuboid(view, a.x - 0.17, a.x + 0.17, 0.4, 0.8, a.z + 0.4, a.z + a.length - 0.4, a.color)
        parts += [Part(near_wheel, TYRE), Part(bar, (40, 40, 40), 0.06)]
        if detail:
            lamp = disc((a.x, 0.85, a.z - 0.02), 0.08, "z", 6)
            parts.append(Part(lamp, HEADLIGHT if a.dir < 0 else TAILLIGHT, light=True))
        return parts
    frame = np.array([[a.x, r, z_far_w], [a.x, 0.9, a.z + a.length * 0.4], [a.x, 0.35, a.z + a.length * 0.5],
                      [a.x, r, z_near_w], [a.x, 0.95, front_z]])
    closed_far, closed_near = np.vstack([far_wheel, far_wheel[:1]]), np.vstack([near_wheel, near_wheel[:1]])
    return [Part(closed_far, TYRE, 0.05), Part(frame, a.color, 0.04), Part(closed_near, TYRE, 0.05),
            Part(bar, (40, 40, 40), 0.04)]


def limbs(a: Agent, hip: float, shoulder: float, y0: float, k: float) -> tuple[list[Part], list[Part]]:
    """Legs and arms as thick lines: walkers swing them in step, riders reach forward to the handlebar."""
    hx, hz = a.heading
    swing = 0.28 * k * np.sin(a.phase) if a.kind == "walk" else 0.0
    legs, arms = [], []
    for sign in (1, -1):
        top = [a.x + sign * 0.09 * k, hip, a.z]
        foot = [top[0] + sign * swing * hx, y0, a.z + sign * swing * hz]
        legs.append(Part(np.array([top, foot]), a.color2, 0.15 * k))
        root = [a.x + sign * (a.w / 2 - 0.03), shoulder - 0.02, a.z - 0.01]
        if a.kind == "ride":
            hand = [root[0] + sign * 0.05 + 0.45 * hx, shoulder - 0.17 * a.h, a.z + 0.45 * hz]
        else:  # each arm swings against the leg on its side
            hand = [root[0] + sign * 0.05 - sign * swing * hx, shoulder - 0.33 * a.h, a.z - sign * swing * hz]
        arms.append(Part(np.array([root, hand]), a.color, 0.09 * k))
    return legs, arms


def person(view, a: Agent, detail: bool) -> list[Part]:
    """Legs, torso, arms, head and hair; a rider sits on the saddle with legs hanging to the pedals."""
    k, half, skin = a.h / 1.75, a.w / 2, SKIN[a.id % len(SKIN)]
    hip, shoulder, y0 = a.y0 + 0.5 * a.h, a.y0 + 0.82 * a.h, a.y0
    if a.kind == "ride":
        hip, shoulder, y0 = a.y0 + 0.05, a.y0 + 0.05 + 0.32 * a.h, a.y0 - 0.45 * k
    head = (a.x, shoulder + 0.1 * a.h, a.z - 0.02)
    if not detail:
        return [Part(quad_z(a.z, a.x - half * 0.6, a.x + half * 0.6, y0, hip), a.color2),
                Part(quad_z(a.z, a.x - half, a.x + half, hip, shoulder), a.color),
                Part(disc(head, 0.07 * a.h, "z", 6), skin)]
    legs, arms = limbs(a, hip, shoulder, y0, k)
    torso = np.array([[a.x - half * 0.75, hip, a.z], [a.x + half * 0.75, hip, a.z],
                      [a.x + half, shoulder, a.z], [a.x - half, shoulder, a.z]])
    hair = Part(disc((a.x, head[1] + 0.03 * a.h, a.z - 0.03), 0.05 * a.h, "z", 8), (20, 25, 35))
    return legs + [Part(torso, a.color)] + arms + [Part(disc(head, 0.065 * a.h, "z", 10), skin), hair]


def clutter(view, a: Agent, detail: bool) -> list[Part]:
    """A tree (trunk and crown) or a lamp post (pole, arm toward the road, lamp)."""
    if a.kind == "tree":
        trunk_h = a.h * 0.4
        crown_r = a.h * 0.3
        return (cuboid(view, a.x - 0.15, a.x + 0.15, 0, trunk_h, a.z, a.z + 0.3, (40, 60, 90))
                + [Part(disc((a.x, trunk_h + crown_r * 0.8, a.z), crown_r, "z", 12), a.color),
                   Part(disc((a.x + crown_r * 0.2, trunk_h + crown_r, a.z - 0.01), crown_r * 0.6, "z", 10),
                        shade(a.color, 1.25))])
    arm_x = a.x - a.dir * 1.6  # reach over the road
    return (cuboid(view, a.x - 0.09, a.x + 0.09, 0, a.h, a.z, a.z + 0.18, a.color)
            + [Part(np.array([[a.x, a.h, a.z], [arm_x, a.h + 0.2, a.z]]), a.color, 0.1),
               Part(quad_z(a.z - 0.01, arm_x - 0.3, arm_x + 0.3, a.h + 0.05, a.h + 0.2), (190, 230, 245), light=True)])


DRAW = {CAR: car, BUS: bus, TRUCK: truck, MOTORCYCLE: two_wheeler, BICYCLE: two_wheeler, PERSON: person,
        CLUTTER: clutter}


def parts_for(view: View, a: Agent) -> list[Part]:
    """The parts of one agent; fine detail only when it will be more than a few pixels tall."""
    detail = view.f * a.h / max(a.z, 0.1) > 10
    return DRAW[a.cls](view, a, detail)
