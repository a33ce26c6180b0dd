# %% [markdown]
# # An audit report in one HTML file
# Train a small ConvNet on scikit-learn's 8x8 digits with 5 % of the training labels flipped,
# synthesize its DSVs, select λ over the training set, and write one self-contained HTML page
# (`kktexplain.report.write_html`). With `--screenshot PNG` (needs Playwright and Debian's
# chromium) it also takes the screenshot shown in docs/report.md. About a minute on 2 CPU cores.

# %%
import argparse
import sys

import torch

from kktexplain import DeepSupportVectors
from kktexplain.datasets import load_digits
from kktexplain.models import ConvNet, train_classifier
from kktexplain.report import write_html

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="audit-report.html")
parser.add_argument("--screenshot", default=None, help="PNG of the top of the page (Playwright + chromium)")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])

torch.manual_seed(0)
ds = load_digits()
perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
train, test = perm[:1400], perm[1400:]
x, y = ds.inputs[train], ds.labels[train].clone()
flipped = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))[: len(y) // 20]
y[flipped] = (y[flipped] + 1 + torch.randint(0, 9, (len(flipped),))) % 10  # 5 % wrong labels

model = ConvNet((1, 8, 8), 10, width=16, depth=2)
train_classifier(model, (x, y), epochs=30, lr=3e-3, batch_size=128, progress=False)

# %%
dsv = DeepSupportVectors(n_per_class=6, steps=300, seed=0, progress=False).attribute(model)
sel = DeepSupportVectors(param_names=["classifier.weight", "classifier.bias"], progress=False).attribute(
    model, candidates=x, labels=y
)
path = write_html(
    args.out,
    dsv,
    sel,
    model=model,
    test_data=(ds.inputs[test], ds.labels[test]),
    explain_inputs=ds.inputs[test][:3],
    k=5,
    class_names=ds.classes,
    per_page=5,
    denormalize=ds.denormalize,
    title="Audit of a digits ConvNet (5 % flipped labels)",
)
print(f"wrote {path}; flipped rows {sorted(flipped.tolist())[:10]} ...")

# %%
if args.screenshot:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=args.screenshot)
        browser.close()
    print(f"wrote {args.screenshot}")
