"""Each GISM loss term against its formula written out independently, on small tensors."""

import math

import torch

from yolo_gism.losses import BinDistributionKD, ClassScoreKD, DecodedBoxKD, FeatureAlignLoss, LevelWeights, binary_kl


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_binary_kl_matches_the_textbook_formula():
    s, t, T = torch.tensor([0.3, -2.0, 4.0]), torch.tensor([1.5, -0.5, 3.0]), 2.0
    got = binary_kl(s, t, T)
    for i in range(3):
        p, q = _sigmoid(t[i].item() / T), _sigmoid(s[i].item() / T)
        want = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
        assert abs(got[i].item() - want) < 1e-6


def test_binary_kl_is_bce_minus_teacher_entropy_and_zero_on_agreement():
    s, t, T = torch.randn(50), torch.randn(50), 3.0
    p = torch.sigmoid(t / T)
    bce = -(p * torch.log(torch.sigmoid(s / T)) + (1 - p) * torch.log(1 - torch.sigmoid(s / T)))
    entropy = -(p * torch.log(p) + (1 - p) * torch.log(1 - p))
    torch.testing.assert_close(binary_kl(s, t, T), bce - entropy, atol=1e-5, rtol=1e-5)
    assert binary_kl(t, t, T).abs().max() < 1e-6


def test_binary_kl_gradient_equals_bce_gradient():
    s, t, T = torch.randn(20, requires_grad=True), torch.randn(20), 2.0
    binary_kl(s, t, T).sum().backward()
    grad_kl = s.grad.clone()
    s.grad = None
    torch.nn.functional.binary_cross_entropy_with_logits(s / T, torch.sigmoid(t / T), reduction="sum").backward()
    torch.testing.assert_close(grad_kl, s.grad)


def test_class_kd_has_t_squared_scaling_and_weighted_mean_over_locations():
    torch.manual_seed(0)
    s, t = torch.randn(2, 5, 3), torch.randn(2, 5, 3)
    w = torch.tensor([[1.0, 0, 0, 1, 0], [0, 0, 1, 0, 0]])
    for T in (1.0, 4.0):
        per_location = binary_kl(s, t, T).sum(-1)
        want = T * T * (per_location * w).sum() / w.sum()
        torch.testing.assert_close(ClassScoreKD(T)(s, t, w), want)


def test_class_kd_independent_of_batch_and_anchor_count():
    torch.manual_seed(1)
    s, t, w = torch.randn(1, 7, 4), torch.randn(1, 7, 4), torch.ones(1, 7)
    one = ClassScoreKD(2.0)(s, t, w)
    tiled = ClassScoreKD(2.0)(s.repeat(3, 5, 1), t.repeat(3, 5, 1), w.repeat(3, 5))
    torch.testing.assert_close(one, tiled)


def test_bin_kd_is_t2_kl_of_softmaxed_edge_bins():
    torch.manual_seed(2)
    R, T = 4, 2.0
    s, t = torch.randn(1, 2, 4 * R), torch.randn(1, 2, 4 * R)
    w = torch.tensor([[1.0, 3.0]])
    total = 0.0
    for a in range(2):
        edges = 0.0
        for e in range(4):
            p = torch.softmax(t[0, a, e * R:(e + 1) * R] / T, 0)
            q = torch.softmax(s[0, a, e * R:(e + 1) * R] / T, 0)
            edges += (p * (p / q).log()).sum().item()
        total += w[0, a].item() * edges / 4
    want = T * T * total / w.sum().item()
    assert abs(BinDistributionKD(R, T)(s, t, w).item() - want) < 1e-5


def test_decoded_box_kd_is_l1_plus_one_minus_iou():
    s = torch.tensor([[[1.0, 1.0, 1.0, 1.0]]])  # 2x2 box around the anchor
    t = torch.tensor([[[1.0, 1.0, 3.0, 1.0]]])  # 4x2 box sharing the left part
    w = torch.ones(1, 1)
    iou = 4.0 / 8.0
    l1 = (0 + 0 + 2 + 0) / 4
    assert abs(DecodedBoxKD()(s, t, w).item() - (l1 + 1 - iou)) < 1e-6
    assert DecodedBoxKD()(t, t, w).item() < 1e-6


def test_feature_loss_is_mse_of_standardised_maps_and_scale_free():
    torch.manual_seed(3)
    s, t, w = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.rand(2, 4, 4)

    def standardise(x):
        m = x.mean(dim=(2, 3), keepdim=True)
        return (x - m) / (x.var(dim=(2, 3), keepdim=True, unbiased=False).sqrt() + 1e-6)

    want = (((standardise(s) - standardise(t)) ** 2).mean(1) * w).sum() / w.sum()
    torch.testing.assert_close(FeatureAlignLoss()(s, t, w), want)
    torch.testing.assert_close(FeatureAlignLoss()(s * 100, t * 100, w), want, atol=1e-4, rtol=1e-4)


def test_raw_feature_loss_is_plain_weighted_mse_and_grows_with_scale():
    torch.manual_seed(5)
    s, t, w = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.rand(2, 4, 4)
    want = (((s - t) ** 2).mean(1) * w).sum() / w.sum()
    raw = FeatureAlignLoss("raw")
    torch.testing.assert_close(raw(s, t, w), want)
    torch.testing.assert_close(raw(s * 10, t * 10, w), want * 100)


def test_cwd_feature_loss_is_the_channel_wise_spatial_kl_written_out():
    torch.manual_seed(6)
    s, t = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    temperature = 2.0
    # CWD: per image and channel, KL(softmax over the 20 cells of t / T || same of s / T), times T^2,
    # averaged over channels and images
    want = 0.0
    for b in range(2):
        for c in range(3):
            p_t = torch.softmax(t[b, c].flatten() / temperature, 0)
            p_s = torch.softmax(s[b, c].flatten() / temperature, 0)
            want += temperature**2 * (p_t * (p_t.log() - p_s.log())).sum() / 6
    cwd = FeatureAlignLoss("cwd", temperature)
    torch.testing.assert_close(cwd(s, t, torch.ones(2, 4, 5)), want)
    torch.testing.assert_close(cwd(t, t, torch.ones(2, 4, 5)), torch.tensor(0.0), atol=1e-6, rtol=0)
    # a weight rescaled to mean 1 per image: a constant weight changes nothing, a weight on one cell keeps only it
    torch.testing.assert_close(cwd(s, t, torch.full((2, 4, 5), 0.3)), want)
    one_cell = torch.zeros(2, 4, 5)
    one_cell[:, 1, 2] = 1.0
    p_t = torch.softmax(t.flatten(2) / temperature, -1)[..., 7]
    p_s = torch.softmax(s.flatten(2) / temperature, -1)[..., 7]
    want_cell = (20 * temperature**2 * p_t * (p_t.log() - p_s.log())).mean()
    torch.testing.assert_close(cwd(s, t, one_cell), want_cell)


def test_dynamic_level_weights_balance_levels_whatever_their_scale():
    weights = LevelWeights(3, dynamic=True)
    for _ in range(5):
        weights.update(torch.tensor([1.0, 100.0, 0.01]))
    w = weights.weights()
    shares = w * torch.tensor([1.0, 100.0, 0.01])
    torch.testing.assert_close(shares / shares.sum(), torch.full((3,), 1 / 3))
    assert abs(w.sum().item() - 1) < 1e-6
    fixed = LevelWeights(3, dynamic=False)
    fixed.update(torch.tensor([1.0, 100.0, 0.01]))
    torch.testing.assert_close(fixed.weights(), torch.full((3,), 1 / 3))


def test_scaling_one_levels_features_by_100_keeps_its_share():
    torch.manual_seed(4)
    maps = [(torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8)), (torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4))]

    def shares(scale):
        weights, loss = LevelWeights(2), FeatureAlignLoss()
        for _ in range(3):
            losses = torch.stack([loss(s * (scale if i == 0 else 1), t * (scale if i == 0 else 1),
                                       torch.ones(2, *s.shape[-2:])) for i, (s, t) in enumerate(maps)])
            weights.update(losses)
        parts = weights.weights() * losses
        return parts / parts.sum()

    torch.testing.assert_close(shares(1.0), shares(100.0), atol=1e-4, rtol=1e-4)
