import json
import math

import pytest
import torch

from kktexplain.datasets import make_2d
from kktexplain.models import MLP, ConvNet, ResNet, accuracy, load_reference_model, train_classifier


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: MLP((1, 8, 8), 10), (1, 8, 8)),
        (lambda: ConvNet((1, 28, 28), 10, width=8), (1, 28, 28)),
        (lambda: ConvNet((3, 32, 32), 10, width=8, norm="batchnorm", pooling="max"), (3, 32, 32)),
        (lambda: ResNet((1, 28, 28), 10, widths=(4, 8)), (1, 28, 28)),
    ],
)
def test_shapes(factory, shape):
    model = factory()
    assert model(torch.randn(2, *shape)).shape == (2, 10)
    assert model.input_shape == shape and model.num_classes == 10


def test_convnet_is_the_dc_convnet():
    m = ConvNet((1, 28, 28), 10)
    convs = [l for l in m.modules() if isinstance(l, torch.nn.Conv2d)]
    norms = [l for l in m.modules() if isinstance(l, torch.nn.GroupNorm)]
    assert len(convs) == 3 and all(c.out_channels == 128 for c in convs)
    assert all(n.num_groups == n.num_channels == 128 for n in norms)  # instance norm
    assert m.classifier.in_features == 128 * 3 * 3
    with pytest.raises(ValueError, match="norm must be"):
        ConvNet(norm="layer")


def test_train_classifier_learns_and_is_seeded():
    ds = make_2d("blobs", 200)
    accs = []
    for _ in range(2):
        torch.manual_seed(0)
        m = MLP((2,), 2, hidden=(16,))
        losses = train_classifier(m, ds, epochs=30, lr=0.01, batch_size=32, seed=0, progress=False)
        accs.append(accuracy(m, ds))
        assert losses[-1] < losses[0] and not m.training
    assert accs[0] == accs[1] and accs[0] > 0.9
    with pytest.raises(ValueError, match="optimizer"):
        train_classifier(m, ds, optimizer="lbfgs")


def test_reference_model_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KKTEXPLAIN_CACHE", str(tmp_path))
    model, card = load_reference_model("digits_mlp", progress=False)
    assert card["test_accuracy"] > 0.9
    assert (tmp_path / "models" / "digits_mlp.pt").is_file()
    assert json.loads((tmp_path / "models" / "digits_mlp.json").read_text())["name"] == "digits_mlp"
    again, card2 = load_reference_model("digits_mlp", progress=False)  # from the cache
    assert card2 == card
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="name must be a reference model, one of"):
        load_reference_model("imagenet_resnet50")


def test_predict_and_the_report_accuracy_keep_every_modules_own_mode():
    from torch import nn

    from kktexplain.models import predict
    from kktexplain.report import per_class_accuracy

    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a model in training mode
    modes = [m.training for m in model.modules()]
    x = torch.randn(8, 3)
    assert torch.equal(predict(model, x), predict(model, x))  # eval mode inside: dropout off
    per_class_accuracy(model, x, torch.arange(8) % 2, 2)
    assert [m.training for m in model.modules()] == modes


def test_stress_9b_models_helpers_take_numpy_and_name_bad_labels_and_devices():
    """Stress round 9B: numpy data ('int' object is not callable), float hard labels (torch's
    target dtype error), device='cuda' without CUDA (raw driver error) and numpy inputs to
    predict (unpacking error) are taken or named."""
    from kktexplain.models import predict

    torch.manual_seed(0)
    x, y = torch.randn(16, 4), torch.arange(16) % 3
    a, b = MLP((4,), 3, hidden=(8,)), MLP((4,), 3, hidden=(8,))
    b.load_state_dict(a.state_dict())
    la = train_classifier(a, (x, y), epochs=2, batch_size=8, progress=False)
    lb = train_classifier(b, (x.numpy(), y.numpy()), epochs=2, batch_size=8, progress=False)
    assert la == lb
    assert torch.equal(predict(a, x.numpy()), predict(a, x))
    assert accuracy(a, (x.numpy(), y.numpy())) == accuracy(a, (x, y))
    with pytest.raises(TypeError, match=r"labels of shape \(N,\) must be integer class indices.*\.long\(\)"):
        train_classifier(a, (x, y.float()), epochs=1, progress=False)
    with pytest.raises(TypeError, match="inputs must be a Tensor, a numpy array or a Dataset"):
        predict(a, [x])
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda': CUDA is not available"):
            train_classifier(a, (x, y), epochs=1, progress=False, device="cuda")
        with pytest.raises(ValueError, match="device='cuda': CUDA is not available"):
            load_reference_model("fashion_mnist_small", device="cuda", progress=False)


def test_stress_9b_distill_names_float_hard_labels():
    """Float class indices (N,) were blamed on their shape by random_real / distill, and
    truncated silently by distill.evaluate."""
    from kktexplain.distill import evaluate, random_real

    x, y = torch.randn(30, 4), (torch.arange(30) % 3).float()
    with pytest.raises(TypeError, match=r"labels of shape \(N,\) must be integer class indices.*\.long\(\)"):
        random_real((x, y), 2)
    with pytest.raises(TypeError, match=r"dataset labels of shape \(N,\) must be integer"):
        evaluate((x, y + 0.5), (x, y.long()), seeds=[0])
    with pytest.raises(TypeError, match=r"test_set labels of shape \(N,\) must be integer"):
        evaluate((x, y.long()), (x, y), seeds=[0])


def test_review_60_train_classifier_takes_token_ids_in_a_tuple():
    """The numpy conversion of stress round 9B refused integer inputs in a tuple (token ids of
    an embedding model), which a Dataset still passed."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(), torch.nn.Linear(12, 3))
    ids, y = torch.randint(0, 10, (16, 3)), torch.arange(16) % 3
    losses = train_classifier(model, (ids, y), epochs=2, batch_size=8, progress=False)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
