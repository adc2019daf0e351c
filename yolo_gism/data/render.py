"""Paint a scene far-to-near and keep, for every object, which pixels it owns and which stay visible.

Each object is drawn into its own small patch (colour and mask) and pasted onto the image through that
mask, so the id buffer (which object each pixel shows) is exact by construction: the object's box is
read from the id buffer after every nearer object has been pasted (see ``labels.py`` for the rule).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .background import SHIFT, draw_background, ground_depth
from .effects import apply_effects
from .labels import keep_box, visible_box
from .scene import Agent, Scene, View, painter_order, sample_scene
from .shapes import Part, parts_for

NEAR_Z = 0.3  # metres: geometry closer to the camera plane than this is cut away
MAX_PATCH = 4  # an object patch is cut to this many image sizes, so a huge near object stays cheap


@dataclass
class RenderedObject:
    """One painted agent: its own (unoccluded, unclipped) extent and what is left visible of it."""

    cls: int  # class index, -1 (scene.CLUTTER) for unlabelled occluders
    track: int  # the agent's id: stable across the frames of a clip
    own_area: int  # pixels of its own mask, including any outside the image
    frame_area: int  # pixels of its own mask inside the image (what occlusion is measured against)
    own_box: tuple  # (x0, y0, x1, y1) of its own mask, may extend past the image
    window: tuple  # own_box clipped to the image
    visible_area: int = 0
    box: tuple | None = None  # labelled box (x0, y0, x1, y1), x1/y1 exclusive; None when not labelled


@dataclass
class Rendered:
    """A finished image with its objects; ``ids[y, x]`` is the index of the object a pixel shows, -1 for none."""

    image: np.ndarray
    ids: np.ndarray
    objects: list[RenderedObject] = field(default_factory=list)

    def visible_mask(self, index: int) -> np.ndarray:
        return self.ids == index

    def labels(self) -> list[tuple[int, tuple]]:
        """(class, box) of every labelled object, in painting order."""
        return [(o.cls, o.box) for o in self.objects if o.box is not None]


def clip_near(parts: list[Part]) -> list[Part]:
    """Cut polygons at the plane Z = NEAR_Z (a vehicle passing beneath the camera); drop lines crossing it."""
    out = []
    for p in parts:
        z = p.pts[:, 2]
        if z.min() >= NEAR_Z:
            out.append(p)
        elif not p.width and z.max() > NEAR_Z:
            nxt = np.roll(p.pts, -1, axis=0)
            keep = []
            for a, b in zip(p.pts, nxt):  # Sutherland-Hodgman against one plane
                if a[2] >= NEAR_Z:
                    keep.append(a)
                if (a[2] >= NEAR_Z) != (b[2] >= NEAR_Z):
                    keep.append(a + (b - a) * (NEAR_Z - a[2]) / (b[2] - a[2]))
            out.append(p._replace(pts=np.array(keep)))
    return out


def project_parts(view: View, parts: list[Part]) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray]:
    """All part vertices projected in one call: image points, part start offsets, line widths (px), extent."""
    pts = np.concatenate([p.pts for p in parts])
    uv = view.project(pts)
    counts = np.fromiter((len(p.pts) for p in parts), int, len(parts))
    starts = np.concatenate([[0], np.cumsum(counts)])
    mean_z = np.add.reduceat(pts[:, 2], starts[:-1]) / counts
    widths = [max(1, int(round(p.width * view.f / max(z, 0.1)))) if p.width else 0 for p, z in zip(parts, mean_z)]
    pad = max(widths) // 2 + 1
    lo, hi = np.floor(uv.min(0)) - pad, np.ceil(uv.max(0)) + pad + 1
    return uv, starts, widths, np.concatenate([lo, hi])


def draw_patch(parts: list[Part], uv, starts, widths, origin, shape) -> tuple[np.ndarray, np.ndarray]:
    """Colour patch and 0/255 mask of one object, parts painted in their listed order."""
    patch = np.zeros((*shape, 3), np.uint8)
    mask = np.zeros(shape, np.uint8)
    px = np.round((uv - origin) * (1 << SHIFT)).astype(np.int32)
    for i, (part, width) in enumerate(zip(parts, widths)):
        seg = px[starts[i]:starts[i + 1]]
        if width:
            cv2.polylines(patch, [seg], False, part.color, width, cv2.LINE_8, SHIFT)
            cv2.polylines(mask, [seg], False, 255, width, cv2.LINE_8, SHIFT)
        else:
            cv2.fillConvexPoly(patch, seg, part.color, cv2.LINE_8, SHIFT)
            cv2.fillConvexPoly(mask, seg, 255, cv2.LINE_8, SHIFT)
    return patch, mask


def paste(img, ids, index: int, patch, mask, box) -> tuple[tuple, int]:
    """Paste a patch through its mask where it overlaps the image; return the clipped window and its mask area."""
    s = img.shape[0]
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
    if cx1 <= cx0 or cy1 <= cy0:
        return (0, 0, 0, 0), 0
    m = mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] > 0
    np.copyto(img[cy0:cy1, cx0:cx1], patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], where=m[..., None])
    ids[cy0:cy1, cx0:cx1][m] = index
    return (cx0, cy0, cx1, cy1), int(np.count_nonzero(m))


def light_spots(parts, uv, starts, index: int) -> list[tuple]:
    """(u, v, radius px, colour, object index) of the lamps of one object, for the night glow."""
    spots = []
    for i, part in enumerate(parts):
        if part.light:
            seg = uv[starts[i]:starts[i + 1]]
            (u0, v0), (u1, v1) = seg.min(0), seg.max(0)
            spots.append(((u0 + u1) / 2, (v0 + v1) / 2, max(1.0, (u1 - u0 + v1 - v0) / 4), part.color, index))
    return spots


def draw_agent(img, ids, view: View, agent: Agent, index: int, lights: list) -> RenderedObject | None:
    """Paint one agent; None when it is entirely behind the camera's near plane or outside the image."""
    parts = parts_for(view, agent)
    if agent.z < NEAR_Z:
        parts = clip_near(parts)
        if not parts:
            return None
    uv, starts, widths, ext = project_parts(view, parts)
    s = view.size
    ext = np.clip(ext, -MAX_PATCH * s, (MAX_PATCH + 1) * s).astype(int)
    x0, y0, x1, y1 = (int(v) for v in ext)
    if x1 <= 0 or y1 <= 0 or x0 >= s or y0 >= s:
        return None
    patch, mask = draw_patch(parts, uv, starts, widths, np.array([x0, y0], float), (y1 - y0, x1 - x0))
    window, frame_area = paste(img, ids, index, patch, mask, (x0, y0, x1, y1))
    lights += light_spots(parts, uv, starts, index)
    return RenderedObject(cls=agent.cls, track=agent.id, own_area=int(cv2.countNonZero(mask)),
                          frame_area=frame_area, own_box=(x0, y0, x1, y1), window=window)


def label_objects(ids: np.ndarray, objects: list[RenderedObject]) -> None:
    """Fill in visible area and box of every object from the final id buffer."""
    for index, obj in enumerate(objects):
        obj.visible_area, box = visible_box(ids, index, obj.window)
        obj.box = box if keep_box(obj.cls, obj.frame_area, obj.visible_area, box) else None


def render_scene(scene: Scene, rng: np.random.Generator, background: np.ndarray | None = None) -> Rendered:
    """Backdrop, agents far-to-near, labels from the id buffer, then light, weather and sensor effects.

    ``background``: a backdrop from ``draw_background`` to reuse (a clip keeps one for all its frames).
    """
    view = scene.view
    img = draw_background(view, scene.cond, rng) if background is None else background.copy()
    ids = np.full(img.shape[:2], -1, np.int32)
    objects, lights = [], []
    zs = []
    for agent in painter_order(scene.agents):
        obj = draw_agent(img, ids, view, agent, len(objects), lights)
        if obj is not None:
            objects.append(obj)
            zs.append(agent.z)
    label_objects(ids, objects)
    depth = None
    if scene.cond.fog:  # objects sit at the depth of their near end
        depth = np.where(ids >= 0, np.asarray(zs + [0.0], np.float32)[ids], ground_depth(view))
    image = apply_effects(img, depth, ids, lights, scene.cond, rng)
    return Rendered(image=image, ids=ids, objects=objects)


SPLITS = {"train": 0, "val": 1}


def image_rng(seed: int, index: int, split: str = "train") -> np.random.Generator:
    """The generator of one image: derived from (seed, split, index) alone, so images are independent."""
    return np.random.default_rng([seed, SPLITS[split], index])


def render_sample(seed: int, index: int, imgsz: int, split: str = "train") -> Rendered:
    """Image ``index`` of a split, exactly as ``make_dataset`` writes it (before JPEG saving)."""
    rng = image_rng(seed, index, split)
    return render_scene(sample_scene(rng, imgsz), rng)


__all__ = ["Rendered", "RenderedObject", "render_sample", "render_scene"]
