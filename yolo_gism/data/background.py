"""The static backdrop of a view: sky, buildings, sidewalks, road, lane markings, crosswalk, and a depth map.

All ground polygons are built in world metres, projected in one call each and filled with one
``cv2.fillPoly`` call per colour, so the backdrop costs a handful of full-image passes.
"""

from __future__ import annotations

import cv2
import numpy as np

from .scene import Conditions, View

FAR = 5000.0  # metres: "at the horizon" for ground polygons
SHIFT = 4  # fixed-point bits for sub-pixel polygon vertices
SKY = {"day": ((235, 190, 140), (245, 230, 215)), "dusk": ((120, 70, 60), (120, 160, 245)),
       "night": ((40, 20, 15), (70, 50, 45))}


def to_px(view: View, pts: np.ndarray) -> np.ndarray:
    """World points (..., 3) -> fixed-point int32 image points (..., 2) for cv2 with shift=SHIFT."""
    uv = view.project(pts.reshape(-1, 3))
    return np.round(uv * (1 << SHIFT)).astype(np.int32).reshape(*pts.shape[:-1], 2)


def ground_quads(x0, x1, z0, z1) -> np.ndarray:
    """(n, 4, 3) quads on the road plane from arrays of lateral and depth extents."""
    x0, x1, z0, z1 = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, float)) for v in (x0, x1, z0, z1)))
    zeros = np.zeros_like(x0)
    corners = [(x0, z0), (x1, z0), (x1, z1), (x0, z1)]
    return np.stack([np.stack([x, zeros, z], -1) for x, z in corners], 1)


def fill(img, view, quads, color):
    cv2.fillPoly(img, list(to_px(view, quads)), color, cv2.LINE_8, SHIFT)


def sky_and_ground(view: View, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Sky gradient above the horizon, plain verge below it."""
    s, hor = view.size, int(np.clip(round(view.horizon), 1, view.size - 1))
    img = np.empty((s, s, 3), np.uint8)
    top, low = (np.array(c, np.float32) for c in SKY[cond.time])
    t = np.linspace(0, 1, hor, dtype=np.float32)[:, None]
    column = (top * (1 - t) + low * t).astype(np.uint8)[:, None, :]
    img[:hor] = cv2.resize(column, (s, hor), interpolation=cv2.INTER_NEAREST)
    verge = np.array([(70, 110, 95), (80, 120, 140), (110, 115, 120)][rng.integers(3)]) + rng.integers(-15, 16, 3)
    cv2.rectangle(img, (0, hor), (s - 1, s - 1), tuple(int(c) for c in np.clip(verge, 0, 255)), -1)
    return img


def ground_depth(view: View) -> np.ndarray:
    """Per-pixel distance of the road plane (inf above the horizon): the backdrop's depth for fog."""
    rows = np.arange(view.size, dtype=np.float32) + 0.5 - view.horizon
    col = np.where(rows > 0, view.f * view.cam_h / np.maximum(rows, 1e-3), np.inf).astype(np.float32)
    return np.repeat(col[:, None], view.size, axis=1)


def buildings(img, view: View, rng: np.random.Generator) -> None:
    """Facade blocks on both sides of the street beyond the sidewalks, with window grids (one fill for all)."""
    faces, colors, panes = [], [], []
    for side in (-1, 1):
        if rng.random() < 0.25:
            continue
        x = side * (view.road_w / 2 + view.sidewalk_w + rng.uniform(0.5, 4))
        if abs(x - view.cam_x) < 5:  # a wall right beside the camera would fill half the image
            continue
        z = view.z_near * 0.5
        while z < 400:
            length, height = rng.uniform(10, 40), rng.uniform(6, 35)
            colors.append(tuple(int(c) for c in rng.integers(70, 200, 3)))
            faces.append([[x, 0, z], [x, height, z], [x, height, z + length], [x, 0, z + length]])
            if view.f * 1.5 / (z + length) > 1.5:  # panes still at least a pixel or so
                panes.append(window_quads(x, z, length, height))
            z += length + rng.uniform(0, 6)
    if not faces:
        return
    for quad, color in zip(to_px(view, np.array(faces, float)), colors):
        cv2.fillConvexPoly(img, quad, color, cv2.LINE_8, SHIFT)
    if panes:
        shade = tuple(int(c) for c in rng.integers(35, 80, 3))
        cv2.fillPoly(img, list(to_px(view, np.concatenate(panes))), shade, cv2.LINE_8, SHIFT)


PANE = np.array([[0, 0, 0], [0, 1.6, 0], [0, 1.6, 1.5], [0, 0, 1.5]])  # corner offsets (x, y, z) of a window


def window_quads(x, z, length, height) -> np.ndarray:
    """(n, 4, 3) window panes in a grid on the facade plane X = x."""
    zs = np.arange(z + 1.0, z + length - 1.5, 3.0)
    ys = np.arange(3.0, height - 1.5, 3.2)
    corner = np.zeros((len(ys), len(zs), 3))
    corner[..., 0], corner[..., 1], corner[..., 2] = x, ys[:, None], zs[None, :]
    return corner.reshape(-1, 1, 3) + PANE


def road(img, view: View, rng: np.random.Generator) -> None:
    """Sidewalks, asphalt, curbs, lane lines (dashed between same-direction lanes) and a crosswalk."""
    half, sw, z0 = view.road_w / 2, view.sidewalk_w, view.z_near * 0.5
    fill(img, view, ground_quads([-half - sw, half], [-half, half + sw], z0, FAR), tuple(int(c) for c in rng.integers(130, 175, 3)))
    asphalt = int(rng.integers(60, 105))
    fill(img, view, ground_quads(-half, half, z0, FAR), (asphalt, asphalt, asphalt + int(rng.integers(0, 8))))
    white, yellow, w = (215, 215, 215), (40, 190, 225), 0.15
    fill(img, view, ground_quads([-half + 0.2, half - 0.2 - w], [-half + 0.2 + w, half - 0.2], z0, FAR), white)
    period, dash = rng.uniform(9, 13), 3.0
    starts = np.arange(z0 - rng.uniform(0, period), view.z_max * 2, period)
    for lane in range(1, view.lanes):
        x = -half + lane * view.lane_w
        if view.lane_dirs[lane - 1] != view.lane_dirs[lane]:  # double solid centre line
            fill(img, view, ground_quads([x - 0.25, x + 0.1], [x - 0.1, x + 0.25], z0, FAR), yellow)
        else:
            fill(img, view, ground_quads(x - w / 2, x + w / 2, starts, starts + dash), white)
    if view.crosswalk_z is not None:
        xs = np.arange(-half + 0.4, half - 0.5, 1.0)
        fill(img, view, ground_quads(xs, xs + 0.5, view.crosswalk_z - 1.5, view.crosswalk_z + 1.5), white)


def draw_background(view: View, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """BGR backdrop before lighting and weather."""
    img = sky_and_ground(view, cond, rng)
    buildings(img, view, rng)
    road(img, view, rng)
    return img
