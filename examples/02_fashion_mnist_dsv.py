# %% [markdown]
# # Deep support vectors of a Fashion-MNIST ConvNet
# Trains (or loads from the cache) the reference ConvNet-3, then synthesises DSVs started from
# real images and draws them with their multipliers (DSVs from noise: examples 01 and the demo).

# %%
import matplotlib

matplotlib.use("Agg")

from kktexplain import DeepSupportVectors  # noqa: E402
from kktexplain.datasets import load_fashion_mnist  # noqa: E402
from kktexplain.models import load_reference_model  # noqa: E402
from kktexplain.viz import plot_dsv_grid, plot_history  # noqa: E402

train = load_fashion_mnist()
model, card = load_reference_model("fashion_mnist_convnet")
print("teacher test accuracy", card["test_accuracy"])

# %%
x, y, _ = train.per_class(2, seed=0)
explainer = DeepSupportVectors(n_per_class=2, init="real", steps=50, input_range=train.input_range)
dsv = explainer.attribute(model, init_data=(x, y))
print(dsv.kkt.summary())
plot_dsv_grid(dsv, classes=train.classes, denormalize=train.denormalize).savefig("dsv_real.png")
plot_history(dsv)[0].figure.savefig("dsv_real_history.png")
