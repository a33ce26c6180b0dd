import json

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
    with pytest.raises(ValueError, match="name must be one of"):
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
