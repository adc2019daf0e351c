"""bench/teacher_agreement.py: the teacher's foreground and GISM's response terms read against it."""

import math

import torch


def _outputs(scores, reg_max=4):
    scores = torch.tensor(scores, dtype=torch.float32)  # (B, C, A) logits
    return {"scores": scores, "boxes": torch.zeros(scores.shape[0], 4 * reg_max, scores.shape[2])}


def test_the_foreground_is_where_the_teachers_top_class_probability_reaches_the_threshold(agreement_bench):
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    teacher = _outputs([[[logit(0.9), logit(0.1), logit(0.2)], [logit(0.1), logit(0.3), logit(0.24)]]])
    assert agreement_bench.foreground(teacher, 0.25).tolist() == [[1.0, 1.0, 0.0]]


def test_a_student_off_the_teacher_only_in_the_background_agrees_on_the_foreground(agreement_bench):
    teacher = _outputs([[[4.0, -4.0], [-4.0, -4.0]]])  # anchor 0 foreground, anchor 1 background
    student = _outputs([[[4.0, 0.0], [-4.0, -4.0]]])  # differs only at anchor 1, class 0
    rows = agreement_bench.agreement(teacher, {"s": student, "same": teacher}, 2.0, 4, 0.25)

    p_t, p_s = torch.sigmoid(torch.tensor(-4.0 / 2)), torch.tensor(0.5)  # softened at T = 2
    kl = p_t * torch.log(p_t / p_s) + (1 - p_t) * torch.log((1 - p_t) / (1 - p_s))
    expected = 2.0**2 * kl.item() / 2  # T^2, summed over classes, mean over the two anchors
    assert math.isclose(rows["s"]["kdcls"], expected, rel_tol=1e-5)
    assert rows["s"]["kdcls_fg"] < 1e-6 and rows["s"]["kdbox"] < 1e-6
    assert all(v < 1e-6 for v in rows["same"].values())
    assert rows["foreground_share"] == 0.5
