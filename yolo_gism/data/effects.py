"""Light, weather and sensor effects applied to a painted scene. None of them moves a label.

Order follows the light path: ambient light (one colour LUT), fog by depth, lamp glow (dusk and night,
only from lamps whose centre is not hidden by a nearer object), rain streaks, motion blur, sensor
noise, JPEG artefacts. Each is one or two full-image OpenCV/numpy passes.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from .scene import Conditions

# time -> (per-channel B, G, R gain, gamma): night is dark and blue, dusk warm and dim
AMBIENT = {"day": ((1.0, 1.0, 1.0), 1.0), "dusk": ((0.6, 0.6, 0.7), 1.1), "night": ((0.4, 0.34, 0.32), 1.25)}
FOG = {"day": (205, 205, 200), "dusk": (120, 125, 140), "night": (45, 40, 38)}
GLOW = {"day": 0.0, "dusk": 0.6, "night": 1.0}


def ambient(img: np.ndarray, cond: Conditions) -> np.ndarray:
    """Exposure, tint and contrast in one per-channel lookup table (rain flattens the contrast)."""
    gains, gamma = AMBIENT[cond.time]
    x = np.arange(256, dtype=np.float32) / 255
    flat = 1.0 - 0.35 * cond.rain
    table = [np.clip(255 * (cond.gain * g * x ** gamma * flat + (1 - flat) * 0.35 * g), 0, 255) for g in gains]
    lut = np.stack(table, 1).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(img, lut)


def fog(img: np.ndarray, depth: np.ndarray, cond: Conditions) -> np.ndarray:
    """Blend toward the fog colour by 1 - exp(-depth / visibility)."""
    alpha = 1.0 - np.exp(-depth / cond.fog)
    color = np.array(FOG[cond.time], np.float32) * cond.gain
    out = img.astype(np.float32)
    out += alpha[..., None] * (color - out)
    return out.astype(np.uint8)


def glow(img: np.ndarray, ids: np.ndarray, lights: list, cond: Conditions) -> np.ndarray:
    """Bright lamp cores plus a blurred halo, drawn at half resolution for speed."""
    strength = GLOW[cond.time]
    s = img.shape[0]
    halo = np.zeros((s // 2, s // 2, 3), np.uint8)
    out = img.copy()
    for u, v, r, color, index in lights:
        iu, iv = int(u), int(v)
        if not (0 <= iu < s and 0 <= iv < s) or ids[iv, iu] != index:
            continue
        cv2.circle(out, (iu, iv), max(1, int(r * 0.6)), color, -1)
        cv2.circle(halo, (iu // 2, iv // 2), max(1, int(r * 1.5)), color, -1)
    halo = cv2.GaussianBlur(halo, (0, 0), max(1.0, s / 160))
    halo = cv2.resize(halo, (s, s), interpolation=cv2.INTER_LINEAR)
    return cv2.addWeighted(out, 1.0, halo, strength * 1.5, 0)


def rain(img: np.ndarray, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Semi-transparent slanted streaks."""
    s = img.shape[0]
    n = int(cond.rain * s * 1.2)
    start = rng.uniform(0, s, (n, 2))
    length = rng.uniform(0.02, 0.07, n) * s
    angle = np.deg2rad(rng.normal(cond.blur_angle * 0.3 + 10, 4, n))
    end = start + np.stack([np.sin(angle), np.cos(angle)], 1) * length[:, None]
    lines = np.round(np.stack([start, end], 1)).astype(np.int32)
    overlay = img.copy()
    cv2.polylines(overlay, list(lines), False, (200, 200, 205), 1, cv2.LINE_AA)
    return cv2.addWeighted(overlay, 0.55, img, 0.45, 0)


def motion_blur(img: np.ndarray, length: int, angle: float) -> np.ndarray:
    """Linear blur along a direction, like a slow shutter on moving traffic."""
    kernel = np.zeros((length, length), np.float32)
    c, a = (length - 1) / 2, np.deg2rad(angle)
    dx, dy = np.cos(a) * c, np.sin(a) * c
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    return cv2.filter2D(img, -1, kernel / kernel.sum())


@lru_cache(maxsize=4)
def noise_bank(size: int) -> np.ndarray:
    """A fixed field of Gaussian noise, 1/16 grey level units (the same in every process): drawing fresh
    noise per image costs more than the rest of the image, so each image takes a random window of it."""
    bank = np.random.default_rng(20240611).standard_normal((size, size, 4), dtype=np.float32)
    noise = bank[..., :1] + 0.3 * bank[..., 1:]  # luminance noise plus weaker colour noise
    return np.round(noise * 16).astype(np.int16)


def sensor_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add a random window of the noise bank scaled to ``sigma`` grey levels (saturating)."""
    s = img.shape[0]
    bank = noise_bank(s + 256)
    oy, ox = (int(v) for v in rng.integers(0, 257, 2))
    return cv2.addWeighted(img, 1.0, bank[oy:oy + s, ox:ox + s], sigma / 16, 0, dtype=cv2.CV_8U)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else img


def apply_effects(img, depth, ids, lights, cond: Conditions, rng: np.random.Generator) -> np.ndarray:
    """All effects of ``cond`` in light-path order."""
    img = ambient(img, cond)
    if cond.fog:
        img = fog(img, depth, cond)
    if GLOW[cond.time] and lights:
        img = glow(img, ids, lights, cond)
    if cond.rain:
        img = rain(img, cond, rng)
    if cond.blur:
        img = motion_blur(img, cond.blur, cond.blur_angle)
    img = sensor_noise(img, cond.noise, rng)
    if cond.jpeg:
        img = jpeg(img, cond.jpeg)
    return img
