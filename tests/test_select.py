"""Where the losses look: GI instance selection and ground-truth selection, against hand-made cases."""

import torch

from yolo_gism.select import anchor_weight_from_instances, boxes_to_mask, gi_instances, gt_instances


def _logit(p: float) -> float:
    return float(torch.logit(torch.tensor(p)))


def test_gi_score_is_the_largest_probability_gap_and_takes_the_more_confident_box():
    # one image, three anchors, two classes
    s = torch.tensor([[[_logit(0.1), _logit(0.1)], [_logit(0.9), _logit(0.2)], [_logit(0.5), _logit(0.5)]]])
    t = torch.tensor([[[_logit(0.8), _logit(0.1)], [_logit(0.3), _logit(0.2)], [_logit(0.5), _logit(0.6)]]])
    s_boxes = torch.tensor([[[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10]]], dtype=torch.float32)
    t_boxes = s_boxes + torch.tensor([1.0, 1.0, 1.0, 1.0])
    (kept,) = gi_instances(s, t, s_boxes, t_boxes, topk=3, iou=0.5)
    # GI scores: anchor 0 |0.8-0.1| = 0.7 (teacher more confident: teacher box); anchor 1 |0.3-0.9| = 0.6
    # (student more confident: student box); anchor 2 max(|0.5-0.5|, |0.6-0.5|) = 0.1 (teacher box)
    torch.testing.assert_close(kept[:, 4], torch.tensor([0.7, 0.6, 0.1]), atol=1e-5, rtol=0)
    torch.testing.assert_close(kept[:, :4], torch.stack([t_boxes[0, 0], s_boxes[0, 1], t_boxes[0, 2]]))


def test_gi_nms_is_per_image_and_keeps_the_top_k():
    s = torch.full((2, 4, 1), _logit(0.1))
    t = torch.tensor([_logit(p) for p in (0.9, 0.8, 0.7, 0.6)]).view(1, 4, 1).repeat(2, 1, 1)
    boxes = torch.tensor([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [80, 80, 90, 90]], dtype=torch.float32)
    boxes = boxes.expand(2, 4, 4)
    kept = gi_instances(s, t, boxes, boxes, topk=2, iou=0.5)
    # anchor 1 overlaps anchor 0 (IoU 0.82) and is suppressed; of the rest the top 2 are anchors 0 and 2,
    # in both images alike: identical boxes in another image never suppress each other
    for image in kept:
        torch.testing.assert_close(image[:, :4], boxes[0, [0, 2]])


def test_boxes_to_mask_marks_cells_whose_centres_are_inside_a_box():
    # 4x4 grid over a 32x32 image: cell centres at 4, 12, 20, 28 px
    box = torch.tensor([[5.0, 0.0, 21.0, 13.0, 1.0]])  # covers centre x 12, 20 and centre y 4, 12
    mask = boxes_to_mask([box, torch.zeros(0, 5)], 4, 4, 32, 32)
    expected = torch.zeros(2, 4, 4)
    expected[0, 0:2, 1:3] = 1
    torch.testing.assert_close(mask, expected)


def test_gt_selection_uses_each_images_own_labelled_boxes():
    batch = {"img": torch.zeros(2, 3, 32, 64), "batch_idx": torch.tensor([0.0, 1.0, 1.0]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.25, 0.5], [0.125, 0.25, 0.25, 0.5], [0.9, 0.9, 0.1, 0.1]])}
    first, second = gt_instances(batch)
    # normalised xywh -> xyxy pixels of a 64 wide, 32 high image
    torch.testing.assert_close(first, torch.tensor([[24.0, 8.0, 40.0, 24.0, 1.0]]))
    torch.testing.assert_close(second[:, :4], torch.tensor([[0.0, 0.0, 16.0, 16.0], [54.4, 27.2, 60.8, 30.4]]))
    weight = anchor_weight_from_instances([first, second], [(4, 8)], 32, 64)  # one level, stride 8
    assert weight.shape == (2, 32)
    # cell centres at x 4, 12, ..., 60 and y 4, 12, 20, 28. Image 0: x 28, 36 and y 12, 20 lie inside its box
    # -> 4 cells; image 1: its first box holds x 4, 12 and y 4, 12 (4 cells), its second box x 60, y 28 (1 cell)
    assert weight.sum(1).tolist() == [4.0, 5.0]
