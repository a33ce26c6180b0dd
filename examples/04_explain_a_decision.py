# %% [markdown]
# # Explaining one decision by its support vectors
# Train a small MLP on scikit-learn's 8x8 digits with 10 % of the training labels flipped,
# score every training sample by selection in the last layer, and explain test predictions:
# which training samples push each decision for and against (captum's `DataInfluence`
# convention), which pixels carry that push (captum's Integrated Gradients), and which training
# labels look wrong (self-influence). About 30 seconds on 2 CPU cores; writes
# `explanation.png` and `explanation.html` (a self-contained plotly fragment).

# %%
import argparse
import sys

import torch
from sklearn.metrics import roc_auc_score

from kktexplain import DeepSupportVectors, kkt_readiness
from kktexplain.attr import SupportVectorAttribution, SupportVectorInfluence
from kktexplain.datasets import load_digits
from kktexplain.models import MLP, train_classifier

parser = argparse.ArgumentParser()
parser.add_argument("--out", default="explanation")
args = parser.parse_args(sys.argv[1:] if "ipykernel" not in sys.modules else [])

# %% [markdown]
# ## A model trained on partly wrong labels
# Full-batch gradient descent with weight decay, run long enough to come near a stationary
# point of the regularised loss: the regime in which θ* = -Σ λ_j ∇θ L_j holds with every λ
# equal, and the expansion below can be read term by term.

# %%
ds = load_digits()
perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
train, test = perm[:1400], perm[1400:]
x, y = ds.inputs[train], ds.labels[train].clone()
flipped = torch.randperm(len(y), generator=torch.Generator().manual_seed(1))[: len(y) // 10]
shift = torch.randint(0, 9, (len(flipped),), generator=torch.Generator().manual_seed(2))
y[flipped] = (y[flipped] + 1 + shift) % 10  # 10 % wrong labels
is_flipped = torch.zeros(len(y), dtype=torch.bool)
is_flipped[flipped] = True

torch.manual_seed(0)
model = MLP(ds.input_shape, 10, hidden=(128,))
train_classifier(
    model, (x, y), epochs=300, lr=0.1, optimizer="sgd", batch_size=len(y), weight_decay=1e-3, progress=False
)
x_test, y_test = ds.inputs[test], ds.labels[test]
with torch.no_grad():
    print(f"test accuracy {(model(x_test).argmax(1) == y_test).float().mean():.3f}")

# %% [markdown]
# ## The support set: every training sample, scored in the last layer
# In the last layer the model is linear in its parameters, so the expansion
# <θ*, ∇θ f_c(x)> is the logit itself. With `multipliers="equal"` every sample gets the same λ,
# exact at a stationary point of training with weight decay.

# %%
last = [n for n, _ in model.named_parameters()][-2:]  # the last Linear's weight and bias
print(kkt_readiness(model, (x, y), param_names=last).message)  # how much an expansion can explain
support = DeepSupportVectors(param_names=last, multipliers="equal", progress=False).attribute(
    model, candidates=x, labels=y
)
print(f"stationarity cosine of the support set: {support.kkt.stationarity['cosine']:.3f}")

# %% [markdown]
# ## Which training samples drive a test decision (captum's DataInfluence)

# %%
svi = SupportVectorInfluence(model, support)
top = svi.influence(x_test[:5], k=3)  # KMostInfluentialResults: indices and scores, (5, 3) each
for i in range(5):
    print(
        f"test {i}: predicted {int(model(x_test[i : i + 1]).argmax())}, "
        f"proponents {top.indices[i].tolist()} with labels {y[top.indices[i]].tolist()}"
    )
delta = svi.convergence_delta(x_test[:5])  # exact quantity - sum of the contributions
with torch.no_grad():
    logit = model(x_test[:5]).max(1).values  # in the last layer the exact quantity is the logit
for i in range(5):
    terms = float(logit[i] - delta[i])
    print(f"test {i}: logit {float(logit[i]):.2f} = terms {terms:.2f} + residual {float(delta[i]):.2f}")
# over the whole test set: does the sum of the terms pick the model's class?
fid = svi.expansion.fidelity(x_test)
print(f"argmax agreement {fid.argmax_agreement:.3f}, logit Pearson {fid.logit_pearson:.3f}")

# %% [markdown]
# ## Which pixels carry the push (captum's Integrated Gradients)

# %%
sva = SupportVectorAttribution(model, support)
maps = sva.attribute(x_test[:5], n_steps=16)  # same shape as the inputs, (5, 1, 8, 8)
one = sva.attribute(x_test[:1], support_index=int(top.indices[0, 0]), n_steps=16)  # one support vector
print("feature maps:", tuple(maps.shape), "and for the top proponent alone:", tuple(one.shape))

# %% [markdown]
# ## One call: the explanation object, its figure and its HTML fragment

# %%
expl = support.explain(model, x_test[0], k=5, class_names=[str(c) for c in range(10)], influence=svi)
ax = expl.plot()  # matplotlib; pass ax= to draw into your own figure
ax.figure.savefig(f"{args.out}.png", dpi=80)
with open(f"{args.out}.html", "w") as f:
    f.write(expl.to_html())
print(f"wrote {args.out}.png and {args.out}.html")

# %% [markdown]
# ## Which training labels look wrong: self-influence
# A sample's influence on its own prediction, λ_j ||∇θ L_j||², read from the selection's
# recorded norms without another pass.

# %%
score = svi.self_influence()
print(f"mislabel ROC-AUC of self-influence: {roc_auc_score(is_flipped.numpy(), score.numpy()):.3f}")
