"""``kktexplain synthesize | select | explain`` end to end on a model defined in the user's own file."""

import argparse
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_gloo

from kktexplain import DSVResult
from kktexplain._cli_io import load_data, load_model
from kktexplain.cli import build_parser, main

safetensors_torch = pytest.importorskip("safetensors.torch")

USER_FILE = textwrap.dedent(
    """
    import numpy as np
    import torch
    from torch import nn


    def build():
        return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


    def data():
        g = torch.Generator().manual_seed(1)
        return torch.randn(24, 1, 4, 4, generator=g), torch.arange(24) % 3
    """
)


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    """A folder with the user's model file, its weights (safetensors and torch.save) and data."""
    (tmp_path / "usernet.py").write_text(USER_FILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "usernet", raising=False)
    torch.manual_seed(0)
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
    safetensors_torch.save_file(model.state_dict(), str(tmp_path / "weights.safetensors"))
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    torch.jit.trace(model.eval(), torch.zeros(1, 1, 4, 4)).save(str(tmp_path / "scripted.pt"))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 1, 4, 4, generator=g), torch.arange(24) % 3
    np.savez(tmp_path / "train.npz", x=x.numpy(), y=y.numpy())
    yield tmp_path, model
    sys.modules.pop("usernet", None)


def test_cli_end_to_end_on_a_user_model_with_safetensors_weights(user_dir, capsys):
    tmp, model = user_dir
    user = ["--model", "usernet:build", "--weights", "weights.safetensors"]
    assert main(["synthesize", *user, "--input-shape", "1", "4", "4", "--n-per-class", "2", "--steps", "3",
                 "--no-progress", "--out", "synth"]) == 0  # fmt: skip
    synth = DSVResult.load(tmp / "synth.npz")
    assert synth.inputs.shape == (6, 1, 4, 4) and synth.settings["mode"] == "synthesis"
    assert main(["synthesize", *user, "--input-shape", "1", "4", "4", "--n-per-class", "2", "--steps", "2",
                 "--classes", "2", "--batch-size", "1", "--no-progress", "--out", "synth2"]) == 0  # fmt: skip
    assert DSVResult.load(tmp / "synth2.npz").labels.tolist() == [2, 2]
    assert main(["synthesize", *user, "--input-shape", "1", "4", "4", "--n-per-class", "2", "--steps", "3",
                 "--lambda-solve-every", "2", "--lr-schedule", "cosine", "--no-progress",
                 "--out", "synth3"]) == 0  # fmt: skip
    assert DSVResult.load(tmp / "synth3.npz").settings["lambda_solve_every"] == 2
    assert DSVResult.load(tmp / "synth3.npz").settings["lr_schedule"] == "cosine"

    assert main(["select", *user, "--data", "train.npz", "--no-progress", "--out", "sel"]) == 0
    sel = DSVResult.load(tmp / "sel.npz")
    assert sel.inputs.shape == (24, 1, 4, 4) and sel.lambdas.shape == (24,)
    x, y = np.load(tmp / "train.npz")["x"], np.load(tmp / "train.npz")["y"]
    from kktexplain import DeepSupportVectors

    direct = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    assert torch.allclose(sel.lambdas, direct.lambdas, atol=1e-6)  # the CLI computes what the API does
    assert main(["select", *user, "--data", "train.npz", "--multipliers", "equal", "--no-progress",
                 "--out", "sel_eq"]) == 0  # fmt: skip
    eq = DSVResult.load(tmp / "sel_eq.npz")
    direct = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert eq.settings["multipliers"] == "equal" and torch.allclose(eq.lambdas, direct.lambdas)
    assert main(["select", *user, "--data", "train.npz", "--projection-dim", "8", "--refit-dim", "64",
                 "--no-progress", "--out", "sel_refit"]) == 0  # fmt: skip
    refit = DSVResult.load(tmp / "sel_refit.npz")
    two = DeepSupportVectors(projection_dim=8, refit_dim=64, progress=False)
    direct = two.attribute(model, candidates=x, labels=y)
    assert refit.settings["refit_dim"] == 64 and torch.allclose(refit.lambdas, direct.lambdas, atol=1e-6)
    (tmp / "spill").mkdir()
    assert main(["select", *user, "--data", "train.npz", "--offload-dir", "spill", "--param-names", "free",
                 "--no-progress", "--out", "sel_off"]) == 0  # fmt: skip
    off = DSVResult.load(tmp / "sel_off.npz")
    direct = DeepSupportVectors(offload_dir="spill", param_names="free", progress=False)
    direct = direct.attribute(model, candidates=x, labels=y)
    assert off.settings["offload_dir"] == "spill"
    assert off.settings["param_names"] == direct.settings["param_names"]
    assert torch.allclose(off.lambdas, direct.lambdas, atol=1e-6) and list((tmp / "spill").iterdir()) == []

    # the same model as a torch.save state dict, as TorchScript, and the data as module:function
    for other in (
        ["--model", "usernet:build", "--weights", "weights.pt", "--data", "train.npz"],
        ["--model", "scripted.pt", "--data", "train.npz", "--input-shape", "1", "4", "4"],
        ["--model", "usernet:build", "--weights", "weights.safetensors", "--data", "usernet:data"],
    ):
        assert main(["select", *other, "--no-progress", "--out", "sel_other"]) == 0, other
        assert torch.allclose(DSVResult.load(tmp / "sel_other.npz").lambdas, sel.lambdas, atol=1e-5), other

    assert main(["explain", *user, "--result", "sel.npz", "--data", "train.npz", "--index", "0", "5",
                 "--k", "2", "--out", "expl"]) == 0  # fmt: skip
    page = (tmp / "expl" / "explanation.html").read_text()
    assert page.count("<section>") == 2 and "plotly" in page.lower()
    assert (tmp / "expl" / "explanation_0.png").stat().st_size > 1000
    assert (tmp / "expl" / "explanation_5.png").stat().st_size > 1000
    assert "supporting" in (tmp / "expl" / "explanation.json").read_text()
    assert "feature maps" in capsys.readouterr().err  # the maps' progress bar, and its switch:
    assert main(["explain", *user, "--result", "sel.npz", "--data", "train.npz", "--index", "0",
                 "--k", "2", "--no-progress", "--out", "expl"]) == 0  # fmt: skip
    assert capsys.readouterr().err == ""


def test_cli_errors_name_the_cause(user_dir, capsys):
    assert main(["select", "--model", "usernet:nope", "--data", "train.npz", "--out", "s"]) == 2
    assert "has no attribute 'nope'" in capsys.readouterr().err
    Path("net.txt").write_text("def build(): pass\n")  # a file Python cannot import as a module
    assert main(["select", "--model", "./net.txt:build", "--data", "train.npz", "--out", "s"]) == 2
    assert "cannot be imported as a Python module" in capsys.readouterr().err
    assert main(["select", "--model", "usernet:build", "--weights", "missing.safetensors",
                 "--data", "train.npz", "--out", "s"]) == 2  # fmt: skip
    assert "no such file" in capsys.readouterr().err
    np.savez("unlabelled.npz", x=np.zeros((3, 1, 4, 4), dtype=np.float32))
    assert main(["select", "--model", "usernet:build", "--data", "unlabelled.npz", "--out", "s"]) == 2
    assert "select needs labels" in capsys.readouterr().err
    torch.save({"other.weight": torch.zeros(2)}, "bad.pt")
    assert main(["select", "--model", "usernet:build", "--weights", "bad.pt", "--data", "train.npz",
                 "--out", "s"]) == 2  # fmt: skip
    assert "do not fit the model" in capsys.readouterr().err
    # the library's parameter names in the command line's words (stress test 8)
    assert main(["select", "--model", "usernet:build", "--weights", "weights.pt", "--data", "train.npz",
                 "--param-names", "fc.weight", "--out", "s"]) == 2  # fmt: skip
    assert "select: --param-names must name parameters of the model" in capsys.readouterr().err
    assert main(["synthesize", "--model", "scripted.pt", "--out", "s"]) == 2
    assert "pass --input-shape C H W" in capsys.readouterr().err


def test_idx_and_image_folder_data(tmp_path):
    images = (np.arange(5 * 4 * 4) % 256).astype(np.uint8).reshape(5, 4, 4)
    header = bytes([0, 0, 0x08, 3]) + np.array([5, 4, 4], dtype=">u4").tobytes()
    (tmp_path / "x-idx3-ubyte").write_bytes(header + images.tobytes())
    labels = np.array([0, 1, 2, 0, 1], dtype=np.uint8)
    (tmp_path / "y-idx1-ubyte").write_bytes(
        bytes([0, 0, 0x08, 1]) + np.array([5], ">u4").tobytes() + labels.tobytes()
    )
    x, y = load_data(str(tmp_path / "x-idx3-ubyte"), str(tmp_path / "y-idx1-ubyte"))
    assert x.shape == (5, 1, 4, 4) and x.dtype == torch.float32 and float(x.max()) <= 1.0
    assert y.tolist() == [0, 1, 2, 0, 1]
    from PIL import Image

    for c in ("cat", "dog"):
        (tmp_path / "folder" / c).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(images[i]).save(tmp_path / "folder" / c / f"{i}.png")
    x, y = load_data(str(tmp_path / "folder"), limit=3)
    assert x.shape == (3, 3, 4, 4) and y.tolist() == [0, 0, 1]  # RGB, as ImageFolder reads
    x, _ = load_data(str(tmp_path / "folder"), grayscale=True)
    assert x.shape == (4, 1, 4, 4) and torch.allclose(x[0, 0], torch.from_numpy(images[0]) / 255.0)
    # one image of another size: named, with its file (stress test 7: torch.stack's error)
    Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "folder" / "dog" / "odd.png")
    with pytest.raises(ValueError, match=r"different shapes: item 4 \(.*odd.png\) has shape \(3, 5, 4\)"):
        load_data(str(tmp_path / "folder"))
    # .npz keys in capitals
    np.savez(tmp_path / "caps.npz", X=images.astype(np.float32), Y=labels)
    x, y = load_data(str(tmp_path / "caps.npz"))
    assert x.shape == (5, 4, 4) and y.tolist() == [0, 1, 2, 0, 1]


def test_every_option_has_help_and_version_works():
    parser, runs = build_parser()
    assert {"synthesize", "select", "explain", "report", "evaluate", "demo"} <= set(runs)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, verb in sub.choices.items():
        if name == "report":
            continue  # kktexplain/report/_cli.py is checked by its own tests
        for action in verb._actions:
            assert action.help, f"kktexplain {name} {action.option_strings} has no help"
    out = subprocess.run([sys.executable, "-m", "kktexplain", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("kktexplain ")


def test_load_model_rejects_weights_with_torchscript(user_dir):
    with pytest.raises(ValueError, match="TorchScript file holds its weights"):
        load_model("scripted.pt", "weights.pt")
    assert isinstance(load_model("usernet.py:build", "weights.safetensors"), torch.nn.Module)


def test_cli_distill_on_a_user_model(user_dir, capsys):
    import json

    from kktexplain.distill import DistilledSet

    tmp, model = user_dir
    user = ["--model", "usernet:build", "--weights", "weights.safetensors", "--input-shape", "1", "4", "4"]
    assert main(["distill", *user, "--data", "train.npz", "--images-per-class", "2", "--steps", "3",
                 "--soft-labels", "--no-progress", "--out", "small", "--test-data", "usernet:data",
                 "--seeds", "0", "1", "--epochs", "2", "--baseline",
                 "--json", "scores.json"]) == 0  # fmt: skip
    small = DistilledSet.load(tmp / "small.npz")
    assert small.inputs.shape == (6, 1, 4, 4) and small.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert small.soft_labels.shape == (6, 3) and small.source == "dsv-real"
    scores = json.loads((tmp / "scores.json").read_text())
    assert set(scores["scores"]) == {"distilled", "random_real"}
    distilled = scores["scores"]["distilled"]
    assert len(distilled["accuracies"]) == 2 and distilled["labels"] == "soft"
    assert scores["protocol"]["epochs"] == 2
    # from noise, no data needed
    assert main(["distill", *user, "--init", "noise", "--images-per-class", "1", "--steps", "2",
                 "--no-progress", "--out", "noise"]) == 0  # fmt: skip
    assert DistilledSet.load(tmp / "noise.npz").source == "dsv-noise"
    assert main(["distill", *user, "--images-per-class", "1", "--out", "x"]) == 2
    assert "need --data" in capsys.readouterr().err


def test_a_binary_classifier_wrapped_by_its_factory_takes_its_own_weights(tmp_path, monkeypatch):
    from torch import nn

    from kktexplain.models import TwoClassLogits

    (tmp_path / "binnet.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from kktexplain.models import TwoClassLogits


            def net():
                return nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1))


            def build():
                return TwoClassLogits(net())
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.manual_seed(0)
    trained = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 1))
    torch.save(trained.state_dict(), tmp_path / "bin.pt")  # the binary classifier's own names
    model = load_model("binnet:build", tmp_path / "bin.pt")
    assert isinstance(model, TwoClassLogits)
    x = torch.randn(5, 4)
    torch.testing.assert_close(model(x)[:, 1] * 2, trained(x)[:, 0])
    torch.save(TwoClassLogits(trained).state_dict(), tmp_path / "wrapped.pt")  # prefixed: as is
    torch.testing.assert_close(load_model("binnet:build", tmp_path / "wrapped.pt")(x), model(x))


def test_cli_checks_outputs_first_and_reports_file_errors_in_one_line(user_dir, capsys, monkeypatch):
    import kktexplain

    def never(*a, **k):
        raise AssertionError("the work ran before the output path was checked")

    attribute = kktexplain.DeepSupportVectors.attribute
    monkeypatch.setattr(kktexplain.DeepSupportVectors, "attribute", never)
    user = ["--model", "usernet:build", "--weights", "weights.pt", "--data", "train.npz"]
    assert main(["select", *user, "--out", "nodir/s.npz"]) == 2
    assert "--out 'nodir/s.npz': the folder 'nodir' does not exist" in capsys.readouterr().err
    Path("afile").write_text("x")
    assert main(["synthesize", *user[:4], "--out", "afile/s.npz", "--steps", "2"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["explain", *user, "--result", "r.npz", "--out", "afile"]) == 2
    assert "--out 'afile' is a file, not a folder" in capsys.readouterr().err
    Path("folder").mkdir()
    assert main(["report", "--selection", "r.npz", "--out", "folder"]) == 2
    assert "--out 'folder' is a directory, not a file" in capsys.readouterr().err
    assert not list(Path(".").glob("*.tmp"))
    monkeypatch.setattr(kktexplain.DeepSupportVectors, "attribute", attribute)
    # labels: floats that are not class indices, and labels on data that carries them, are refused
    np.save("x.npy", np.zeros((24, 1, 4, 4), np.float32))
    np.save("y_float.npy", np.arange(24) % 3 + 0.7)
    np.save("y_int.npy", np.arange(24) % 3)
    sel = ["select", "--model", "usernet:build", "--weights", "weights.pt", "--out", "s.npz"]
    assert main([*sel, "--data", "x.npy", "--labels", "y_float.npy"]) == 2
    assert "--labels must hold integer class indices" in capsys.readouterr().err
    assert main([*sel, "--data", "train.npz", "--labels", "y_int.npy"]) == 2
    assert "already carries labels" in capsys.readouterr().err
    assert main(["synthesize", "--model", "usernet:build", "--init", "real", "--out", "d.npz"]) == 2
    assert "--init real starts from samples: it needs --data" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "--selection", "s.npz", "--explain", "-2"])
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["demo", "--n-select", "0"])


def test_an_interrupted_synthesis_says_so_and_exits_130(user_dir, capsys, monkeypatch):
    import kktexplain

    attribute = kktexplain.DeepSupportVectors.attribute

    def interrupted(self, model, **kwargs):
        def stop(step, row):
            if step == 1:
                raise KeyboardInterrupt

        return attribute(self, model, callback=stop, **kwargs)

    monkeypatch.setattr(kktexplain.DeepSupportVectors, "attribute", interrupted)
    args = ["synthesize", "--model", "usernet:build", "--weights", "weights.pt", "--input-shape", "1", "4",
            "4", "--steps", "5", "--no-progress", "--out", "d.npz"]  # fmt: skip
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 of 5 steps: d.npz holds a partial result" in err
    assert DSVResult.load("d.npz").partial
    # how to resume: without --checkpoint, how to make a run resumable; with it, how to resume
    assert "pass --checkpoint PATH to make a run resumable" in err and "to resume" not in err
    assert main([*args, "--checkpoint", "ck.npz"]) == 130
    err = capsys.readouterr().err
    assert "run the same command to resume from step 2 (its state is in --checkpoint 'ck.npz')" in err


def test_token_ids_outside_the_vocabulary_are_named():
    from torch import nn

    from kktexplain import DeepSupportVectors
    from kktexplain.attr import SupportVectorInfluence

    class Bag(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = nn.Embedding(10, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.out(self.emb(x).mean(1))

    torch.manual_seed(0)
    model = Bag().eval()
    x, y = torch.randint(0, 10, (12, 5)), torch.arange(12) % 3
    bad = x.clone()
    bad[2, 1] = 10
    with pytest.raises(ValueError, match=r"candidates holds token ids in \[0, 10\].*10 rows"):
        DeepSupportVectors(progress=False).attribute(model, candidates=bad, labels=y)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    with pytest.raises(ValueError, match=r"inputs holds token ids in \[-1, "):
        SupportVectorInfluence(model, sel).influence(x[:2] - 1)
    with pytest.raises(ValueError, match="inputs holds token ids"):
        sel.explain(model, bad[:3])


def test_command_line_imports_no_vision_or_plotly_library():
    """``import kktexplain`` and its CLI's parser (every verb's options) leave torchvision,
    captum and plotly unloaded: each verb imports what it uses (torchvision's models alone took
    ~2 s of every command)."""
    code = (
        "import sys, kktexplain.cli; kktexplain.cli.build_parser(); "
        "print([m for m in ('torchvision', 'captum', 'plotly') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_checkpoint_layouts_of_training_scripts_load_and_the_others_are_named(user_dir):
    state = torch.load("weights.pt", weights_only=True)
    want = load_model("usernet:build", "weights.pt").state_dict()
    layouts = {
        "tutorial.pt": {"epoch": 3, "model_state_dict": state, "optimizer_state_dict": {}},
        "dataparallel.pt": {f"module.{k}": v for k, v in state.items()},
        "lightning.ckpt": {"state_dict": {f"model.{k}": v for k, v in state.items()}, "epoch": 1},
    }
    for name, saved in layouts.items():
        torch.save(saved, name)
        got = load_model("usernet:build", name).state_dict()
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want), name
    torch.save({"ema": state, "step": 5}, "ema.pt")
    with pytest.raises(ValueError, match=r"keys \['ema', 'step'\].*model.state_dict\(\)"):
        load_model("usernet:build", "ema.pt")
    torch.save(load_model("usernet:build", "weights.pt"), "whole.pt")
    with pytest.raises(ValueError, match=r"pickled object.*--model module:factory"):
        load_model("usernet:build", "whole.pt")
    Path("usernet2.py").write_text("from torch import nn\n\n\nclass Net(nn.Linear):\n    pass\n")
    sys.path.insert(0, ".")
    import usernet2

    torch.save(usernet2.Net(16, 3), "own_class.pt")  # the user's own class: the usual case
    sys.modules.pop("usernet2", None)
    with pytest.raises(ValueError, match=r"pickled object.*--model module:factory"):
        load_model("usernet:build", "own_class.pt")
    with pytest.raises(ValueError, match=r"not a TorchScript file: it looks like a torch.save file"):
        load_model("whole.pt")


def test_a_factory_that_fails_is_named_with_the_option(user_dir):
    Path("broken.py").write_text(
        "def raises():\n    raise RuntimeError('no config.yaml')\n\n\ndef needs(width, classes):\n    pass\n"
    )
    with pytest.raises(ValueError, match=r"--model broken:raises: calling it raised RuntimeError: no config"):
        load_model("broken:raises")
    with pytest.raises(ValueError, match=r"--model broken:needs: .*must take no arguments"):
        load_model("broken:needs")
    assert main(["select", "--model", "broken:raises", "--data", "usernet:data", "--out", "s.npz"]) == 2
    sys.modules.pop("broken", None)


def test_class_folders_named_by_number_keep_their_numbers(tmp_path, capsys):
    from PIL import Image

    for c in range(12):  # ImageFolder sorts them as strings: '10' got label 2, '2' label 4
        (tmp_path / "digits" / str(c)).mkdir(parents=True)
        Image.fromarray(np.full((4, 4), 20 * c, np.uint8)).save(tmp_path / "digits" / str(c) / "a.png")
    x, y = load_data(str(tmp_path / "digits"), grayscale=True)
    assert sorted(y.tolist()) == list(range(12))
    assert torch.allclose(x[:, 0, 0, 0] * 255, y.float() * 20, atol=0.5)  # each image its own folder's
    for c in (1, 2, 11):
        (tmp_path / "ones" / str(c)).mkdir(parents=True)
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "ones" / str(c) / "a.png")
    _, y = load_data(str(tmp_path / "ones"), grayscale=True)
    assert y.tolist() == [0, 1, 2] and "string order" in capsys.readouterr().err


def test_data_files_in_common_layouts_are_read_or_named(tmp_path):
    from torch import nn

    from kktexplain import DeepSupportVectors

    g = np.random.default_rng(0)
    pixels = g.integers(0, 256, (6, 1, 4, 4), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", x=pixels, y=np.array([0.0, 1.0, 2.0, 0.0, 1.0, 2.0]))
    x, y = load_data(str(tmp_path / "u8.npz"))  # 8-bit as IDX and folders; whole-number labels
    torch.testing.assert_close(x, torch.from_numpy(pixels).float() / 255)
    assert y.dtype == torch.long and y.tolist() == [0, 1, 2, 0, 1, 2]
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(8, 3))
    explainer = DeepSupportVectors(progress=False)
    with pytest.raises(ValueError, match=r"got \(6, 1\): flatten them"):
        explainer.attribute(model, candidates=x, labels=y[:, None])
    with pytest.raises(TypeError, match=r"whole numbers, convert them with .long\(\)"):
        explainer.attribute(model, candidates=x, labels=y.float())
    with pytest.raises(ValueError, match=r"look channels-last \(H, W, C\).*permute\(0, 3, 1, 2\)"):
        explainer.attribute(model, candidates=x.permute(0, 2, 3, 1), labels=y)


def test_cli_explain_names_the_data_rows_that_hold_nan(user_dir, capsys):
    """NaN in --data row 5, picked by --index 5: the message named 'inputs' row 0 (of the picked)."""
    assert main(["select", "--model", "usernet:build", "--weights", "weights.pt", "--data", "train.npz",
                 "--no-progress", "--out", "sel"]) == 0  # fmt: skip
    x, y = np.load("train.npz")["x"].copy(), np.load("train.npz")["y"]
    x[5, 0, 0, 0] = np.nan
    np.savez("nan.npz", x=x, y=y)
    assert main(["explain", "--model", "usernet:build", "--weights", "weights.pt", "--result", "sel",
                 "--data", "nan.npz", "--index", "2", "5", "--no-progress", "--out", "ex"]) == 2  # fmt: skip
    assert "--data rows [5] (picked by --index) hold NaN or inf values" in capsys.readouterr().err


# a user's model that turns NaN, or marks that it runs, after a number of forward calls
COUNTED_FILE = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    from torch import nn


    class Counted(nn.Sequential):
        def __init__(self, nan_after=None, mark_after=None):
            super().__init__(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
            self.calls, self.nan_after, self.mark_after = 0, nan_after, mark_after

        def forward(self, x):
            self.calls += 1
            if self.calls == self.mark_after:
                Path("running").touch()
            out = super().forward(x)
            return out * float("nan") if self.nan_after is not None and self.calls > self.nan_after else out


    def nan_later():
        return Counted(nan_after=12)


    def nan_now():
        return Counted(nan_after=0)


    def marks():
        return Counted(mark_after=20)


    def sleeper():
        Path(f"worker.{os.getpid()}").touch()
        time.sleep(60)
        return Counted()
    """
)


@pytest.fixture
def counted_dir(user_dir):
    Path("counted.py").write_text(COUNTED_FILE)
    yield user_dir
    sys.modules.pop("counted", None)


def _no_escape(argv):
    """``main(argv)``, failing the test where an interrupt or a NaN escapes it as a traceback."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    try:
        status = main(argv)
    except (KeyboardInterrupt, FloatingPointError) as e:
        pytest.fail(f"{type(e).__name__} escaped the command line: {e}")
    assert signal.getsignal(signal.SIGTERM) is before  # the run's SIGTERM handler is gone
    return status


def test_a_nan_in_synthesize_saves_the_last_good_state_and_exits_1(counted_dir, capsys):
    args = ["synthesize", "--model", "counted:nan_later", "--weights", "weights.pt", "--input-shape", "1",
            "4", "4", "--steps", "50", "--no-progress", "--checkpoint", "ck", "--out", "d.npz"]  # fmt: skip
    assert _no_escape(args) == 1
    err = capsys.readouterr().err
    saved = DSVResult.load("d.npz")
    step = saved.settings["stopped"]["step"]
    assert saved.partial and saved.settings["stopped"]["reason"] == "non-finite" and 0 < step < 50
    assert "the model produced NaN or inf in '" in err and f"at step {step} of 50: d.npz holds" in err
    assert "resume" not in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_nan_in_select_is_one_line_and_exits_1(counted_dir, capsys):
    args = ["select", "--model", "counted:nan_now", "--weights", "weights.pt", "--data", "train.npz",
            "--no-progress", "--out", "s.npz"]  # fmt: skip
    assert _no_escape(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("kktexplain select: non-finite value (NaN or inf)") and len(err.splitlines()) == 1
    assert not Path("s.npz").exists()


@pytest.mark.slow
@requires_gloo
def test_a_nan_in_select_nproc_2_is_one_line_and_exits_1(counted_dir, capsys):
    args = ["select", "--model", "counted:nan_now", "--weights", "weights.pt", "--data", "train.npz",
            "--nproc", "2", "--no-progress", "--out", "s.npz"]  # fmt: skip
    assert _no_escape(args) == 1
    err = capsys.readouterr().err
    assert "kktexplain select: non-finite value (NaN or inf)" in err and "Traceback" not in err


def test_checkpoint_and_out_must_be_two_files(user_dir, capsys, monkeypatch):
    import kktexplain

    def never(*a, **k):
        raise AssertionError("the run started with --checkpoint and --out the same file")

    monkeypatch.setattr(kktexplain.DeepSupportVectors, "attribute", never)
    Path("sub").mkdir()
    base = ["synthesize", "--model", "usernet:build", "--input-shape", "1", "4", "4", "--steps", "2"]
    for checkpoint, out in (("run", "run.npz"), ("run.npz", "sub/../run"), ("run.npz", "run.npz")):
        assert main([*base, "--checkpoint", checkpoint, "--out", out]) == 2
        err = capsys.readouterr().err
        assert "--checkpoint and --out are the same file" in err and "pass two different paths" in err
    assert not Path("run.npz").exists()


def test_ctrl_c_in_select_is_one_line_and_exits_130(user_dir, capsys, monkeypatch):
    import kktexplain

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(kktexplain.DeepSupportVectors, "attribute", interrupted)
    args = ["select", "--model", "usernet:build", "--weights", "weights.pt", "--data", "train.npz",
            "--no-progress", "--out", "s.npz"]  # fmt: skip
    assert _no_escape(args) == 130
    assert (
        capsys.readouterr().err
        == "kktexplain select: interrupted before it finished; no result was written\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="needs POSIX signals to the main thread")
@requires_gloo
def test_ctrl_c_in_select_nproc_2_stops_the_workers_in_one_line(counted_dir, capsys):
    import os
    import signal
    import threading
    import time

    main_thread = threading.main_thread().ident

    def ctrl_c_once_both_workers_run():
        deadline = time.monotonic() + 60
        while len(list(Path(".").glob("worker.*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=ctrl_c_once_both_workers_run, daemon=True).start()
    start = time.monotonic()
    args = ["select", "--model", "counted:sleeper", "--data", "train.npz", "--nproc", "2",
            "--no-progress", "--out", "s.npz"]  # fmt: skip
    assert _no_escape(args) == 130
    assert time.monotonic() - start < 50  # the workers' 60 s sleep was not waited for
    err = capsys.readouterr().err
    assert "kktexplain select: interrupted before it finished" in err and "Traceback" not in err
    for pid in (int(p.suffix[1:]) for p in Path(".").glob("worker.*")):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@requires_gloo
def test_select_nproc_refuses_offload_dir_before_starting_processes(user_dir, capsys, monkeypatch):
    import torch.multiprocessing as mp

    def never(*a, **k):
        raise AssertionError("processes were started before --offload-dir was refused")

    monkeypatch.setattr(mp, "spawn", never)
    args = ["select", "--model", "usernet:build", "--data", "train.npz", "--nproc", "2",
            "--offload-dir", ".", "--out", "s.npz"]  # fmt: skip
    assert main(args) == 2
    assert "--offload-dir works in one process: drop it or pass --nproc 1" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGTERM") or sys.platform == "win32",
                    reason="needs SIGTERM that a process can handle")  # fmt: skip
def test_sigterm_stops_synthesize_as_ctrl_c_does_and_exits_143(counted_dir):
    import signal
    import time

    args = [sys.executable, "-m", "kktexplain.cli", "synthesize", "--model", "counted:marks", "--weights",
            "weights.pt", "--input-shape", "1", "4", "4", "--steps", "1000000", "--no-progress",
            "--checkpoint", "ck", "--out", "d"]  # fmt: skip
    run = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not Path("running").exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert run.poll() is None, run.stderr.read()
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert "interrupted after" in err and "run the same command to resume from step" in err
    saved = DSVResult.load("d.npz")
    assert saved.partial and saved.settings["stopped"]["reason"] == "interrupted"
    assert Path("ck.npz").exists()


def test_synthesize_checkpoint_every_saves_periodically(user_dir, capsys, monkeypatch):
    """The CLI had no --checkpoint-every: a run killed outright (out of memory, a scheduler's
    hard limit) lost every step since its start."""
    import kktexplain._synthesis as synthesis

    real = synthesis.synthesis_step

    def killed(state, *args, **kwargs):  # dies inside step 5, as a killed process would
        if state.step == 4:
            raise SystemExit(137)
        return real(state, *args, **kwargs)

    monkeypatch.setattr(synthesis, "synthesis_step", killed)
    args = ["synthesize", "--model", "usernet:build", "--weights", "weights.pt", "--input-shape", "1", "4",
            "4", "--steps", "6", "--no-progress", "--out", "d.npz", "--checkpoint", "ck.npz"]  # fmt: skip
    with pytest.raises(SystemExit):
        main([*args, "--checkpoint-every", "2"])
    monkeypatch.setattr(synthesis, "synthesis_step", real)
    assert main(args) == 0
    assert DSVResult.load("d.npz").settings["resumed_from_step"] == 4
    assert main(["synthesize", "--model", "usernet:build", "--input-shape", "1", "4", "4",
                 "--checkpoint-every", "2", "--out", "e.npz"]) == 2  # fmt: skip
    assert "--checkpoint-every saves to --checkpoint" in capsys.readouterr().err
