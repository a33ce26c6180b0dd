import torch

from kktexplain.kkt import Augmentation


def test_identity_when_disabled():
    x = torch.randn(3, 1, 6, 6)
    assert Augmentation.none()(x) is x


def test_flip_only_is_an_exact_flip():
    x = torch.randn(4, 2, 5, 6)
    out = Augmentation(translate=0, crop=0, flip=1.0, cutout=0, noise=0)(x)
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_translate_shifts_by_whole_pixels_at_most():
    x = torch.randn(2, 1, 8, 8)
    out = Augmentation(translate=0.125, crop=0, flip=0, cutout=0, noise=0)(
        x, torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_seeded_and_differentiable():
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    aug = Augmentation()
    a = aug(x, torch.Generator().manual_seed(1))
    b = aug(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    a.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_one_mode_and_tabular_inputs():
    x = torch.randn(50, 1, 8, 8)
    out = Augmentation(mode="one")(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    tab = torch.randn(10, 4)
    noisy = Augmentation(noise=0.5)(tab, torch.Generator().manual_seed(0))
    assert noisy.shape == tab.shape and not torch.equal(noisy, tab)
