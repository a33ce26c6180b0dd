"""Each augmentation's geometry, measured on ramps and constant images with fixed seeds."""

import pytest
import torch

from kktexplain.kkt import Augmentation

OFF = {"translate": 0.0, "crop": 0.0, "flip": 0.0, "cutout": 0.0, "noise": 0.0}


def _only(**kw):
    return Augmentation(**{**OFF, **kw})


def _ramps(n, side):
    """Channel 0 holds the column index, channel 1 the row index (pixel coordinates)."""
    idx = torch.arange(side, dtype=torch.float64)
    cols = idx[None, :].expand(side, side)
    rows = idx[:, None].expand(side, side)
    return torch.stack([cols, rows])[None].repeat(n, 1, 1, 1)


def _fit(out, side, margin):
    """Slope and offset (at the image centre) of each output ramp, over the interior."""
    inner = slice(margin, side - margin)
    j = torch.arange(side, dtype=torch.float64)[inner]
    centre = (side - 1) / 2
    cols = out[:, 0, inner, inner]  # (n, rows, cols): varies along the last axis
    rows = out[:, 1, inner, inner].transpose(1, 2)
    fits = []
    for ramp in (cols, rows):
        v = ramp.mean(1)  # (n, len(j))
        jc = j - j.mean()
        slope = (v - v.mean(1, keepdim=True)) @ jc / (jc @ jc)
        offset = v.mean(1) + slope * (centre - j.mean()) - centre
        # the ramp must be exactly affine in the interior (bilinear sampling of a ramp)
        pred = v.mean(1, keepdim=True) + slope[:, None] * jc
        torch.testing.assert_close(ramp, pred[:, None, :].expand_as(ramp), atol=1e-9, rtol=0)
        fits.append((slope, offset))
    return fits


def test_identity_when_disabled():
    x = torch.randn(3, 1, 6, 6)
    assert Augmentation.none()(x) is x
    assert Augmentation.none().enabled == ()
    assert Augmentation().enabled == ("translate", "crop", "flip", "cutout", "noise")


@pytest.mark.parametrize("translate", [0.125, 0.25])
def test_translate_moves_up_to_the_documented_fraction_of_the_side(translate):
    side, n = 16, 400
    out = _only(translate=translate)(_ramps(n, side), torch.Generator().manual_seed(0))
    limit = translate * side  # pixels
    for slope, shift in _fit(out, side, margin=int(limit) + 2):
        torch.testing.assert_close(slope, torch.ones(n, dtype=torch.float64), atol=1e-9, rtol=0)
        assert shift.abs().max() <= limit + 1e-9
        assert shift.abs().max() >= 0.95 * limit  # uniform in [-limit, limit]
        assert shift.abs().mean().item() == pytest.approx(limit / 2, rel=0.1)
        assert (shift > 0).float().mean().item() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize("crop", [0.2, 0.5])
def test_crop_zooms_into_a_square_that_stays_inside_the_image(crop):
    side, n = 20, 400
    out = _only(crop=crop)(_ramps(n, side), torch.Generator().manual_seed(1))
    (sx, cx), (sy, cy) = _fit(out, side, margin=side // 4)
    torch.testing.assert_close(sx, sy, atol=1e-9, rtol=0)  # square crop
    assert sx.min() >= 1 - crop - 1e-9 and sx.max() <= 1 + 1e-9
    assert sx.min() <= 1 - 0.95 * crop  # the side is uniform in [1 - crop, 1]
    assert sx.mean().item() == pytest.approx(1 - crop / 2, abs=0.03)
    for c in (cx, cy):  # the crop's centre keeps the crop inside the image
        assert (c.abs() <= (1 - sx) * side / 2 + 1e-9).all()
        assert c.abs().max() >= 0.5 * crop * side / 2


def test_flip_flips_the_documented_fraction_exactly():
    x = torch.randn(4, 2, 5, 6)
    torch.testing.assert_close(_only(flip=1.0)(x), x.flip(-1), atol=1e-5, rtol=0)
    x = torch.randn(400, 1, 6, 6, dtype=torch.float64)
    out = _only(flip=0.3)(x, torch.Generator().manual_seed(2))
    same = (out - x).flatten(1).abs().max(1).values < 1e-12
    flipped = (out - x.flip(-1)).flatten(1).abs().max(1).values < 1e-12
    assert (same ^ flipped).all()  # horizontal flip or nothing, never a vertical flip
    assert flipped.float().mean().item() == pytest.approx(0.3, abs=0.06)


@pytest.mark.parametrize("cutout, side", [(0.25, 20), (0.5, 12)])
def test_cutout_zeroes_one_square_of_the_documented_side(cutout, side):
    n = 300
    x = torch.rand(n, 2, side, side, dtype=torch.float64) + 1.0  # no zero anywhere
    out = _only(cutout=cutout)(x, torch.Generator().manual_seed(3))
    zero = out == 0
    assert torch.equal(zero[:, 0], zero[:, 1])  # the same square in every channel
    torch.testing.assert_close(out[~zero], x[~zero], rtol=0, atol=0)  # elsewhere untouched
    zero = zero[:, 0]
    height = zero.any(2).sum(1)
    width = zero.any(1).sum(1)
    assert torch.equal(zero.sum((1, 2)), height * width)  # one axis-aligned rectangle
    full = round(cutout * side)
    assert (height <= full).all() and (width <= full).all() and (height * width >= 1).all()
    inside = (height == full) & (width == full)
    assert inside.float().mean() > 0.3  # squares away from the border are whole
    # the square's centre is uniform over the image: every row and column gets cut
    assert zero.any(0).all()


def test_noise_has_the_documented_standard_deviation():
    x = torch.randn(200, 3, 8, 8, dtype=torch.float64)
    out = _only(noise=0.2)(x, torch.Generator().manual_seed(4))
    d = out - x
    assert d.std().item() == pytest.approx(0.2, rel=0.03) and d.mean().abs() < 0.01
    tab = torch.randn(1000, 4, dtype=torch.float64)
    noisy = _only(noise=0.5, flip=1.0, cutout=0.5)(tab, torch.Generator().manual_seed(0))
    assert (noisy - tab).std().item() == pytest.approx(0.5, rel=0.05)  # tabular: noise only


def test_one_mode_applies_exactly_one_augmentation_per_sample():
    x = torch.rand(600, 1, 8, 8, dtype=torch.float64) + 1.0
    out = Augmentation(**{**OFF, "flip": 1.0, "cutout": 0.25, "noise": 0.1}, mode="one")(
        x, torch.Generator().manual_seed(5)
    )
    flipped = (out - x.flip(-1)).flatten(1).abs().max(1).values < 1e-12
    cut = ((out == 0).flatten(1).any(1)) & ((out == x) | (out == 0)).flatten(1).all(1)
    noisy = ~flipped & ~cut
    assert (flipped.int() + cut.int() + noisy.int() == 1).all()
    for kind in (flipped, cut, noisy):
        assert kind.float().mean().item() == pytest.approx(1 / 3, abs=0.07)
    assert ((out - x)[noisy].std().item()) == pytest.approx(0.1, rel=0.1)
    both = Augmentation(**{**OFF, "flip": 1.0, "cutout": 0.25})(x, torch.Generator().manual_seed(5))
    assert ((both == 0).flatten(1).any(1)).all()  # "all" mode cuts every sample
    nz = both != 0
    torch.testing.assert_close(both[nz], x.flip(-1)[nz], rtol=0, atol=1e-12)


def test_seeded_and_differentiable():
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    aug = Augmentation()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # the flip is linear in x: its gradient is the flipped upstream gradient
    x64 = torch.randn(2, 1, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 1, 5, 5, dtype=torch.float64)
    (_only(flip=1.0)(x64) * w).sum().backward()
    torch.testing.assert_close(x64.grad, w.flip(-1), atol=1e-12, rtol=0)


@pytest.mark.parametrize(
    "kw",
    [{"translate": -0.1}, {"flip": 1.5}, {"crop": 1.0}, {"cutout": 1.2}, {"noise": "a"}, {"mode": "some"}],
)
def test_bad_strengths_raise(kw):
    with pytest.raises(ValueError):
        Augmentation(**kw)
