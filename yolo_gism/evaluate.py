"""COCO-style accuracy beside Ultralytics' mAP: AP on small objects and on crowded images.

Ground truth comes from the YOLO label files, predictions from Ultralytics' predictor at a low confidence
threshold, and the arithmetic from faster-coco-eval (COCO's definitions: small = area < 32^2 pixels;
crowded = the quarter of validation images with the most objects).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def yolo_split(data_yaml: str | Path, split: str = "val") -> tuple[list[Path], dict[int, str]]:
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(data_yaml))
    root = Path(data[split])
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    return images, data["names"]


def coco_ground_truth(images: list[Path], names: dict[int, str]) -> dict:
    """COCO annotation dict (pixel xywh boxes) built from YOLO label files."""
    from ultralytics.data.utils import img2label_paths

    out = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in names.items()]}
    for image_id, (image, label) in enumerate(zip(images, img2label_paths([str(p) for p in images]))):
        h, w = cv2.imread(str(image)).shape[:2]
        out["images"].append({"id": image_id, "width": w, "height": h, "file_name": image.name})
        rows = np.loadtxt(label, ndmin=2) if Path(label).is_file() and Path(label).stat().st_size else np.zeros((0, 5))
        for cls, cx, cy, bw, bh in rows:
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, bw * w, bh * h]
            out["annotations"].append({"id": len(out["annotations"]) + 1, "image_id": image_id, "bbox": box,
                                       "category_id": int(cls) + 1, "area": box[2] * box[3], "iscrowd": 0})
    return out


def coco_predictions(model, images: list[Path], imgsz: int, batch: int = 16) -> list[dict]:
    """Detections of an Ultralytics model at conf=0.001, as COCO result dicts."""
    results = []
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start:start + batch]]
        for offset, r in enumerate(model.predict(chunk, imgsz=imgsz, conf=0.001, iou=0.7, max_det=300, verbose=False)):
            for (x1, y1, x2, y2), score, cls in zip(r.boxes.xyxy.tolist(), r.boxes.conf.tolist(), r.boxes.cls.tolist()):
                results.append({"image_id": start + offset, "category_id": int(cls) + 1,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return results


def coco_ap(gt: dict, predictions: list[dict], image_ids: list[int] | None = None) -> dict[str, float]:
    from faster_coco_eval import COCO, COCOeval_faster

    coco_gt = COCO(gt)
    coco_dt = coco_gt.loadRes(predictions) if predictions else None
    if coco_dt is None:
        return {"AP": 0.0, "AP50": 0.0, "AP_small": 0.0}
    ev = COCOeval_faster(coco_gt, coco_dt, iouType="bbox", print_function=lambda *a, **k: None)
    if image_ids is not None:
        ev.params.imgIds = image_ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    s = ev.stats_as_dict
    return {"AP": float(s["AP_all"]), "AP50": float(s["AP_50"]), "AP_small": float(s["AP_small"])}


def crowded_image_ids(gt: dict, share: float = 0.25) -> list[int]:
    counts = {img["id"]: 0 for img in gt["images"]}
    for a in gt["annotations"]:
        counts[a["image_id"]] += 1
    ranked = sorted(counts, key=lambda i: (-counts[i], i))
    return ranked[: max(1, round(len(ranked) * share))]


def detailed_metrics(weights: str | Path, data_yaml: str | Path, imgsz: int) -> dict[str, float]:
    """mAP50-95 and mAP50 from Ultralytics' validator, plus COCO AP_small and AP on crowded images."""
    from ultralytics import YOLO

    model = YOLO(str(weights))
    val = model.val(data=str(data_yaml), imgsz=imgsz, batch=16, plots=False, verbose=False, device="cpu")
    images, names = yolo_split(data_yaml)
    gt = coco_ground_truth(images, names)
    predictions = coco_predictions(model, images, imgsz)
    overall = coco_ap(gt, predictions)
    crowded = coco_ap(gt, predictions, crowded_image_ids(gt))
    return {
        "map50_95": float(val.box.map),
        "map50": float(val.box.map50),
        "coco_ap": overall["AP"],
        "ap_small": overall["AP_small"],
        "ap_crowded": crowded["AP"],
    }
