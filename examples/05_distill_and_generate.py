# %% [markdown]
# # Distillation and generation from the shipped Fashion-MNIST teacher
# `kktexplain.distill`: one image per class, as random real images and as DSVs started from
# exactly those, each scored by a fresh student under a shortened DC protocol.
# `kktexplain.generate`: class-conditional samples, a 50/50 blend of two classes, and an edit of
# a real image toward another class, with the figures `kktexplain.viz` draws of them. The
# teacher ships with the package (no training); Fashion-MNIST comes from Debian's
# `dataset-fashion-mnist` (`make fashion-mnist`). About a minute on 2 CPU cores.

# %%
import argparse
import sys

import matplotlib

matplotlib.use("Agg")

from kktexplain.datasets import load_fashion_mnist  # noqa: E402
from kktexplain.distill import StudentProtocol, distill, evaluate, random_real  # noqa: E402
from kktexplain.generate import blend, edit, sample  # noqa: E402
from kktexplain.models import load_shipped_model  # noqa: E402
from kktexplain.viz import plot_blend_matrix, plot_class_samples, plot_edits  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="fmnist")
parser.add_argument("--epochs", type=int, default=60, help="student epochs (the DC protocol: 300)")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])

train, test = load_fashion_mnist(train=True), load_fashion_mnist(train=False)
test = test.subset(range(2000))
teacher, card = load_shipped_model("fashion_mnist_small")
names, den = test.classes, test.denormalize
print(f"teacher: {card['name']}, {100 * card['test_accuracy']:.1f} % test accuracy")

# %% [markdown]
# ## Distillation: random real images against DSVs started from them

# %%
real = random_real(train, images_per_class=1, seed=0)
start = (real.inputs, real.labels)  # k-shot: the DSVs start from exactly these images
dsv = distill(teacher, 1, init="real", real=start, input_range=train.input_range, seed=0, progress=False)
protocol = StudentProtocol.from_preset("dc", epochs=args.epochs)
for name, small in (("random real", real), ("k-shot DSVs", dsv)):
    ev = evaluate(small, test, seeds=(0,), protocol=protocol, progress=False)
    print(f"{name}: a student learns {100 * ev.mean:.1f} % from {len(small)} images")
print("stationarity cosine of the DSVs:", round(dsv.info["kkt"]["stationarity_cosine"], 3))

# %% [markdown]
# ## Generation: labels as latent variables

# %%
samples = sample(teacher, n_per_class=2, seed=0, input_range=train.input_range, progress=False)
mix = blend(teacher, 0, 6, delta=0.5, n=2, seed=0, input_range=train.input_range, progress=False)
edits = edit(teacher, test.inputs[:4], target=8, input_range=train.input_range, seed=0, progress=False)
rate = float((samples.predictions == samples.labels).float().mean())
print("teacher's rate of the label on its samples:", rate)
print("teacher's top-2 on the T-shirt/shirt blends:", mix.probabilities.topk(2, -1).indices.tolist())
print("edits classified as bags:", int((edits.predictions == 8).sum()), "of", len(edits.predictions))
for name, fig in (
    ("samples", plot_class_samples(samples, names, den)),
    ("blend", plot_blend_matrix([mix], names, den, samples=samples)),
    ("edits", plot_edits(edits, names, den)),
):
    fig.savefig(f"{args.out}_{name}.png", dpi=70)
print(f"wrote {args.out}_samples.png, {args.out}_blend.png and {args.out}_edits.png")
