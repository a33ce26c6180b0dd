"""The HTML audit report, its matplotlib twins, the ``report`` verb, and the page in a real browser."""

import shutil
import sys
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402

from kktexplain import DeepSupportVectors, DSVResult  # noqa: E402
from kktexplain.cli import main  # noqa: E402
from kktexplain.models import MLP, ConvNet  # noqa: E402
from kktexplain.report import per_class_accuracy, write_html  # noqa: E402
from kktexplain.viz import (  # noqa: E402
    class_lambda_sums,
    feasibility_verdict,
    plot_dsv_gallery,
    plot_kkt_residuals,
    plot_lambda_vs_accuracy,
    plot_likely_mislabels,
    plot_synthesis_history,
    plot_top_bottom_lambda,
    stationarity_verdict,
)

NUM_CLASSES = 12
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """A tiny 12-class ConvNet, its DSVs, a selection on 60 random samples and a full report."""
    torch.manual_seed(0)
    model = ConvNet((1, 8, 8), NUM_CLASSES, width=4, depth=2)
    dsv = DeepSupportVectors(n_per_class=3, steps=5, seed=0, progress=False).attribute(model)
    x = torch.randn(60, 1, 8, 8)
    y = torch.arange(60) % NUM_CLASSES
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    path = write_html(
        tmp_path_factory.mktemp("report") / "report.html",
        dsv,
        sel,
        model=model,
        test_data=(x, y),
        explain_inputs=x[:2],
        k=3,
        explain_kwargs={"maps": "total", "n_steps": 4},
        class_names=[f"c{i}" for i in range(NUM_CLASSES)],
        per_page=5,
    )
    return {"model": model, "dsv": dsv, "sel": sel, "x": x, "y": y, "path": path}


def test_page_is_self_contained_with_every_section(audit):
    from plotly.offline import get_plotlyjs

    page = audit["path"].read_text(encoding="utf-8")
    assert page.count(get_plotlyjs()[:200]) == 1  # plotly.js inlined exactly once
    assert "<script src=" not in page and 'src="http' not in page
    for anchor in ("gallery", "kkt", "history", "lambda-accuracy", "top-bottom", "mislabels", "explanations"):
        assert f'<section id="{anchor}">' in page
    assert "self-influence" in page and "per-class accuracy" in page
    assert "0.31 to 0.32" in page  # the stationarity thresholds are stated in words
    assert page.count('class="page" data-pager="gallery"') == 3  # 12 classes, 5 per page
    assert page.count('class="explanation"') == 2


def test_report_without_model_ranks_by_lambda(audit, tmp_path):
    path = write_html(tmp_path / "sel.html", selection=audit["sel"], classes=[0, 3], n_top=2)
    page = path.read_text(encoding="utf-8")
    assert "ranked by λ (no model given" in page
    assert 'id="gallery"' not in page and 'id="explanations"' not in page
    assert "No accuracy given" in page
    only_synth = write_html(tmp_path / "dsv.html", audit["dsv"], classes=[1]).read_text(encoding="utf-8")
    assert 'class="pager"' not in only_synth and 'id="mislabels"' not in only_synth


def test_write_html_rejects_bad_arguments(audit, tmp_path):
    out = tmp_path / "x.html"
    with pytest.raises(ValueError, match="synthesis and selection"):
        write_html(out)
    with pytest.raises(TypeError, match="synthesis must be a DSVResult"):
        write_html(out, synthesis=audit["x"])
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        write_html(out, audit["dsv"], model="net")
    with pytest.raises(ValueError, match="classes must be"):
        write_html(out, audit["dsv"], classes=[NUM_CLASSES])
    with pytest.raises(ValueError, match="per_page"):
        write_html(out, audit["dsv"], per_page=0)
    with pytest.raises(ValueError, match="accuracy must have one value per class"):
        write_html(out, audit["dsv"], accuracy=[0.5, 0.5])
    bad = [0.5] * NUM_CLASSES
    bad[1] = 2.0
    with pytest.raises(ValueError, match=r"accuracy must lie in \[0, 1\].*got 2.0 for class 1"):
        write_html(out, audit["dsv"], accuracy=bad)
    bad[1] = float("-inf")
    with pytest.raises(ValueError, match="accuracy must lie in"):
        plot_lambda_vs_accuracy(audit["dsv"], accuracy=bad)
    with pytest.raises(ValueError, match="explain_inputs needs model"):
        write_html(out, audit["dsv"], explain_inputs=audit["x"][:1])
    with pytest.raises(ValueError, match="test_data needs model"):
        write_html(out, audit["dsv"], test_data=(audit["x"], audit["y"]))
    with pytest.raises(ValueError, match="class_names"):
        write_html(out, audit["dsv"], class_names=["a"])
    assert not out.exists()


def test_per_class_accuracy_and_lambda_sums(audit):
    model, x, y = audit["model"], audit["x"], audit["y"]
    acc = per_class_accuracy(model, x, y, NUM_CLASSES + 1)
    with torch.no_grad():
        pred = model(x).argmax(-1)
    for c in range(NUM_CLASSES):
        assert acc[c].item() == pytest.approx((pred[y == c] == c).double().mean().item())
    assert torch.isnan(acc[NUM_CLASSES])  # absent class
    sel = audit["sel"]
    sums = class_lambda_sums(sel)
    assert sums.shape == (NUM_CLASSES,)
    assert sums.sum().item() == pytest.approx(sel.lambdas[sel.active].double().sum().item())


def test_verdicts_state_thresholds():
    assert stationarity_verdict(0.95).startswith("good")
    assert stationarity_verdict(0.5).startswith("fair")
    assert stationarity_verdict(0.05).startswith("weak")
    assert stationarity_verdict(0.01).startswith("poor")
    assert stationarity_verdict(-0.2).startswith("fails")
    assert stationarity_verdict(float("nan")) == "not measured"
    assert feasibility_verdict(1.0).startswith("good") and feasibility_verdict(0.5).startswith("poor")


def test_the_kkt_table_names_the_scope():
    from kktexplain.report._sections import _scope_row

    free = {
        "param_names": "free",
        "resolved_param_names": ["c.weight", "fc.weight"],
        "invariant_param_names": ["a.w"],
    }
    assert _scope_row(free)[1] == "2 of 3 parameter tensors" and "scale-invariant" in _scope_row(free)[2]
    assert _scope_row({"param_names": ["a", "b", "c"]})[1] == "3 parameter tensors"
    # nothing invariant: the free scope is every parameter, said as a count
    assert _scope_row({"param_names": "free", "resolved_param_names": ["a"], "invariant_param_names": []})[
        1
    ] == ("1 parameter tensor")
    assert _scope_row({})[1] == "every parameter"


def test_matplotlib_twins_take_ax_and_page(audit):
    dsv, sel = audit["dsv"], audit["sel"]
    fig, axes = plt.subplots(2, 3)
    ax = axes.flat
    assert plot_dsv_gallery(dsv, classes=range(12), page=2, per_page=5, ax=ax[0]) is ax[0]
    assert len(ax[0].get_yticks()) == 2  # classes 10 and 11 on the last page
    assert plot_kkt_residuals(dsv, ax=ax[1]) is ax[1]
    assert len(ax[1].patches) == len(dsv.kkt.per_layer_cosine)
    acc = torch.linspace(0, 1, NUM_CLASSES)
    assert plot_lambda_vs_accuracy(sel, acc, classes=[0, 1, 2], ax=ax[2]) is ax[2]
    assert plot_lambda_vs_accuracy(sel, ax=ax[3]) is ax[3]
    assert plot_top_bottom_lambda(sel, n=4, classes=[0, 1], ax=ax[4]) is ax[4]
    assert plot_likely_mislabels(sel, scores=torch.rand(len(sel)), n=3, ax=ax[5]) is ax[5]
    assert isinstance(plot_likely_mislabels(sel, n=2), Axes)  # ranked by λ, new figure
    for panel in ("loss", "entropy", "feasibility"):
        a = plot_synthesis_history(dsv, panel)
        assert a.lines and len(a.lines[0].get_xdata()) == len(dsv.history["entropy"])
    with pytest.raises(ValueError, match="panel must be"):
        plot_synthesis_history(dsv, "lambda")
    with pytest.raises(TypeError, match="result must be"):
        plot_synthesis_history([1.0])
    tab = DeepSupportVectors(n_per_class=2, steps=2, progress=False).attribute(MLP((5,), 3, hidden=(4,)))
    assert isinstance(plot_dsv_gallery(tab), Axes)  # vectors drawn as strips
    with pytest.raises(ValueError, match="page must be"):
        plot_dsv_gallery(dsv, page=3, per_page=5)
    with pytest.raises(ValueError, match="classes must be"):
        plot_top_bottom_lambda(sel, classes=[-1])
    with pytest.raises(ValueError, match="scores must have one value per sample"):
        plot_likely_mislabels(sel, scores=torch.ones(3))
    with pytest.raises(TypeError, match="result must be a DSVResult"):
        plot_kkt_residuals(sel.kkt)
    plt.close("all")


def test_report_verb(audit, tmp_path, monkeypatch, capsys):
    syn, sel = audit["dsv"].save(tmp_path / "syn"), audit["sel"].save(tmp_path / "sel")
    out = tmp_path / "r.html"
    assert main(["report", "--synthesis", str(syn), "--selection", str(sel), "--out", str(out)]) == 0
    assert out.exists() and "ranked by λ" in out.read_text(encoding="utf-8")
    assert "no --model" in capsys.readouterr().err
    assert main(["report", "--out", str(out)]) == 2
    assert "--synthesis and/or --selection" in capsys.readouterr().err
    # a model defined in the user's own file, weights as a state dict
    (tmp_path / "user_net.py").write_text(
        textwrap.dedent(
            """
            from kktexplain.models import ConvNet

            def build():
                return ConvNet((1, 8, 8), 12, width=4, depth=2)
            """
        )
    )
    torch.save(audit["model"].state_dict(), tmp_path / "w.pt")
    np.savez(tmp_path / "test.npz", x=audit["x"].numpy(), y=audit["y"].numpy())
    monkeypatch.syspath_prepend(str(tmp_path))
    out2 = tmp_path / "r2.html"
    args = [
        "report",
        "--selection",
        str(sel),
        "--model",
        "user_net:build",
        "--weights",
        str(tmp_path / "w.pt"),
    ]
    args += ["--inputs", str(tmp_path / "test.npz"), "--explain", "1", "--k", "2", "--out", str(out2)]
    capsys.readouterr()
    assert main(args) == 0
    assert "readiness" in capsys.readouterr().err  # progress bars, off with --no-progress
    assert main(["report", "--no-progress", *args[1:]]) == 0
    assert "readiness" not in capsys.readouterr().err
    page = out2.read_text(encoding="utf-8")
    assert "self-influence" in page and page.count('class="explanation"') == 1
    assert main(["report", "--selection", str(sel), "--model", "nocolon", "--out", str(out2)]) == 2
    # a grayscale image folder as --inputs (stress test 8: report had no --grayscale / --limit)
    from PIL import Image

    for c in ("0", "1"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    folder = ["--inputs", str(tmp_path / "imgs"), "--explain", "1", "--k", "2", "--out", str(out2)]
    assert main(["report", "--no-progress", *args[1:7], *folder, "--grayscale", "--limit", "4"]) == 0
    assert out2.read_text(encoding="utf-8").count('class="explanation"') == 1
    sys.modules.pop("user_net", None)


def _browser_executable() -> str | None:
    for cand in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if cand and Path(cand).exists():
            return cand
    return None


@pytest.fixture(scope="module")
def browser():
    exe = _browser_executable()
    if exe is None:
        pytest.skip("no chromium executable (apt-get install chromium; `make test` tries to)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (dev extra)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=BROWSER_ARGS)
        yield b
        b.close()


def test_report_in_a_real_browser(audit, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, remote = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
    page.goto(audit["path"].as_uri())
    page.wait_for_load_state("load")
    assert errors == []
    assert remote == []  # opens offline: nothing fetched
    # every plot rendered: 3 gallery pages, 2 per-layer bars, the synthesis history, Σλ,
    # top/bottom, mislabels and 2 explanations
    assert audit["path"].read_text(encoding="utf-8").count('class="plotly-graph-div"') == 11
    assert page.locator(".js-plotly-plot").count() == 11
    n_drawn = page.evaluate(
        "Array.from(document.querySelectorAll('.js-plotly-plot'))"
        ".filter(gd => gd.querySelector('svg.main-svg, canvas') && gd._fullLayout).length"
    )
    assert n_drawn == 11
    assert page.locator(
        "#gallery .page[data-page='0'] .heatmaplayer image, #gallery .page[data-page='0'] .hm"
    ).count()

    # paging: next, the selector, previous
    label = page.locator(".pager[data-pager='gallery'] .page-label")
    assert label.text_content() == "page 1 of 3"
    visible = "Array.from(document.querySelectorAll('.page[data-pager=gallery]')).map(e => e.style.display)"
    assert page.evaluate(visible) == ["", "none", "none"]
    page.click(".pager[data-pager='gallery'] .next")
    assert label.text_content() == "page 2 of 3"
    assert page.evaluate(visible) == ["none", "", "none"]
    assert page.locator("#gallery .page[data-page='1']").is_visible()
    page.select_option(".pager[data-pager='gallery'] select", "2")
    assert label.text_content() == "page 3 of 3"
    page.click(".pager[data-pager='gallery'] .next")  # stays on the last page
    assert label.text_content() == "page 3 of 3"
    page.click(".pager[data-pager='gallery'] .prev")
    assert page.evaluate(visible) == ["none", "", "none"]

    # plotly's own interaction: a legend click hides a trace of the history plot
    hist = page.locator("#history .js-plotly-plot").first
    hist.scroll_into_view_if_needed()
    before = hist.evaluate("gd => gd.data.map(t => t.visible === 'legendonly')")
    assert not any(before)
    hist.locator(".legend .traces").first.click()
    page.wait_for_function(
        "() => document.querySelector('#history .js-plotly-plot').data[0].visible === 'legendonly'",
        timeout=5000,
    )
    # and a hover shows the per-layer verdict
    bars = page.locator("#kkt .js-plotly-plot").first
    bars.scroll_into_view_if_needed()
    paths = bars.locator(".bars .point path")
    boxes = [paths.nth(i).bounding_box() for i in range(paths.count())]
    widest = max((b for b in boxes if b), key=lambda b: b["width"])
    assert widest["width"] > 1
    page.mouse.move(widest["x"] + widest["width"] / 2, widest["y"] + widest["height"] / 2)
    page.wait_for_selector("#kkt .hoverlayer .hovertext", timeout=5000)
    tip = page.locator("#kkt .hoverlayer .hovertext").first.text_content()
    assert any(word in tip for word in ("good", "fair", "weak", "poor", "fails")), tip
    assert errors == []
    page.close()


def test_loaded_results_make_the_same_report(audit, tmp_path):
    dsv = DSVResult.load(audit["dsv"].save(tmp_path / "d"))
    page = write_html(tmp_path / "r.html", dsv).read_text(encoding="utf-8")
    assert 'id="gallery"' in page and 'id="history"' in page


def test_flat_features_are_a_feature_matrix_in_the_gallery():
    from kktexplain.report._sections import _feature_rows_figure, _gallery

    torch.manual_seed(0)
    model = MLP((5,), num_classes=3, hidden=(8,))
    dsv = DeepSupportVectors(n_per_class=2, steps=3, seed=0, progress=False).attribute(model)
    page = _gallery(
        dsv, [0, 1, 2], per_page=10, per_class=None, class_names=["a", "b", "c"], denormalize=None
    )
    assert "a row per DSV" in page
    core = dsv.top_k_per_class(2)
    fig = _feature_rows_figure(dsv, core, [0, 1, 2], ["a", "b", "c"])
    z = torch.tensor(fig.data[0].z, dtype=torch.float64)
    assert z.shape == (6, 5)  # a row per DSV, a column per feature
    order = [int(i) for c in range(3) for i in core.indices[c]]  # by class, best λ first
    torch.testing.assert_close(z, dsv.inputs[order].double())
    assert list(fig.layout.yaxis.ticktext)[0] == f"a, λ={float(core.lambdas[0, 0]):.3g}"


def test_write_html_refuses_results_and_data_of_different_models(tmp_path):
    from torch import nn

    from kktexplain import DeepSupportVectors
    from kktexplain.report import write_html

    torch.manual_seed(0)
    flat = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    image = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    syn = DeepSupportVectors(n_per_class=1, steps=2, progress=False).attribute(flat)
    sel = DeepSupportVectors(progress=False).attribute(
        image, candidates=torch.rand(6, 1, 4, 4), labels=torch.arange(6) % 3
    )
    x, y = torch.randn(9, 4), torch.arange(9) % 3
    with pytest.raises(ValueError, match="different shapes"):
        write_html(tmp_path / "a.html", syn, sel)
    with pytest.raises(ValueError, match="synthesis holds a selection result"):
        write_html(tmp_path / "b.html", sel)
    with pytest.raises(ValueError, match=r"test_data holds inputs of shape \(4,\)"):
        write_html(tmp_path / "c.html", selection=sel, model=image, test_data=(x, y))
    with pytest.raises(ValueError, match="test_data inputs holds NaN"):
        write_html(tmp_path / "d.html", syn, model=flat, test_data=(torch.full_like(x, float("nan")), y))


def test_zero_equal_multiplier_ranks_by_loss_and_says_so(tmp_path):
    """A model whose parameters point along +sum grad L (one step of gradient ascent from zero)
    has equal multiplier c = 0: every self-influence is 0, so the mislabel section ranks by the
    loss and says why (stress test 6: samples 0-9 in index order, presented as a ranking);
    the identical-class test reports no number for ours."""
    from kktexplain.attr._evaluate import evaluate_identical_class
    from kktexplain.kkt import cross_entropy

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen), torch.arange(30) % 3
    model = torch.nn.Linear(4, 3)
    torch.nn.init.zeros_(model.weight), torch.nn.init.zeros_(model.bias)
    torch.nn.functional.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        for p in model.parameters():
            p += 0.5 * p.grad  # ascent: theta = +0.5 mean grad L
            p.grad = None
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    out = write_html(tmp_path / "r.html", selection=sel, model=model, readiness=False, n_mislabels=5)
    page = out.read_text(encoding="utf-8")
    assert "ranked by the per-sample loss: the equal multiplier is c = 0" in page
    loss = cross_entropy(model(x).detach().double(), y)
    top = torch.argsort(loss, descending=True)[:5].tolist()
    table = page[page.index("<th>rank</th>") :]
    rows = [int(r.split("</td><td>")[1]) for r in table.split("<tr><td>")[1:6]]
    assert rows == top
    equal = DeepSupportVectors(multipliers="equal", progress=False).attribute(model, candidates=x, labels=y)
    assert float(equal.lambdas.max()) == 0.0
    with pytest.warns(UserWarning, match="every λ"):
        res = evaluate_identical_class(model, equal, x[:6], batch_size=4, compare_tracin=False)
    assert res["ours"]["identical_class"] is None and "no proponent" in res["ours"]["skipped"]


def test_numpy_test_data_and_string_labels(tmp_path):
    """Stress test 7: write_html refused numpy test data the other entry points take, and string
    labels in an .npz reached torch's own conversion error."""
    from kktexplain._cli_io import load_data

    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 4, generator=gen), torch.arange(30) % 3
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    sel = DeepSupportVectors(progress=False).attribute(model, candidates=x, labels=y)
    kw = dict(selection=sel, model=model, readiness=False, explain_inputs=None)
    a = write_html(tmp_path / "a.html", test_data=(x, y), **kw).read_text(encoding="utf-8")
    xn, yn = x.numpy().copy(), y.numpy().copy()
    xn.flags.writeable = yn.flags.writeable = False  # read-only arrays (np.load's mmap) too
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy warns on a read-only array
        b = write_html(tmp_path / "b.html", test_data=(xn, yn), **kw).read_text(encoding="utf-8")
    import re

    def stamp(page):  # past the header's date, without plotly's random element ids
        return re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", page[page.index("Σλ") :])

    assert "accuracy" in stamp(a) and stamp(a) == stamp(b)
    np.savez(tmp_path / "s.npz", x=x.numpy(), y=np.array(["a", "b", "c"] * 10))
    with pytest.raises(ValueError, match="labels must be class indices.*np.unique"):
        load_data(str(tmp_path / "s.npz"))


def test_flat_features_are_feature_rows_in_the_sample_sections(tmp_path):
    # stress test 8: top/bottom-λ and the likely mislabels drew each sample as a 1-pixel strip
    from kktexplain.report._sections import _samples_figure

    torch.manual_seed(0)
    x = torch.randn(4, 5, dtype=torch.float64)
    fig = _samples_figure(
        [[x[0], x[1]], [x[2], None]],
        [["#0 a<br>λ=1", "#1 b<br>λ=2"], ["#2 c<br>λ=0", ""]],
        ["top λ", "bottom λ"],
        None,
        "samples",
    )
    assert fig.data[0].type == "heatmap"
    torch.testing.assert_close(torch.tensor(fig.data[0].z, dtype=torch.float64), x[:3])
    assert list(fig.layout.yaxis.ticktext) == ["top λ: #0 a, λ=1", "top λ: #1 b, λ=2", "bottom λ: #2 c, λ=0"]
    images = _samples_figure([[torch.rand(1, 4, 4)]], [["#0"]], ["top"], None, "images")
    assert list(images.layout.yaxis.ticktext) == ["top"]  # images: the mosaic as before


def test_an_equal_multiplier_selection_shows_no_top_and_bottom_lambda(audit, tmp_path):
    """With one λ for every sample, the section showed the first and the last rows as 'top λ'
    and 'bottom λ' under a note about λ = 0; n_top above half the samples drew each twice."""
    from kktexplain.viz._audit import _top_bottom

    equal = DeepSupportVectors(multipliers="equal", progress=False).attribute(
        audit["model"], candidates=audit["x"], labels=audit["y"]
    )
    page = write_html(tmp_path / "eq.html", selection=equal).read_text(encoding="utf-8")
    assert "Every λ of this selection is the same" in page and "top λ" not in page
    assert "every λ is the same here, so this order is only the samples" in page  # no model
    top, bottom = _top_bottom(audit["sel"], 100_000, None)
    assert len(top) == len(bottom) == 30 and not set(top.tolist()) & set(bottom.tolist())


def test_a_model_of_other_parameters_than_the_results_is_named(audit, tmp_path):
    """The message named param_names, which write_html's caller never passed, after the
    accuracy had been computed with the wrong model."""
    last = [k for k, _ in audit["model"].named_parameters()][-2:]  # the ConvNet's output layer
    sel = DeepSupportVectors(param_names=last, progress=False).attribute(
        audit["model"], candidates=audit["x"], labels=audit["y"]
    )
    other = MLP((1, 8, 8), NUM_CLASSES, hidden=(4,))
    with pytest.raises(ValueError, match="model must be the model the selection was computed for"):
        write_html(tmp_path / "x.html", selection=sel, model=other, test_data=(audit["x"], audit["y"]))
