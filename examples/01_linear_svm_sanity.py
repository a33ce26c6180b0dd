# %% [markdown]
# # DeepKKT recovers a linear SVM
# On a linear model the DeepKKT selection must find exactly what scikit-learn's
# `SVC(kernel="linear")` knows: its support set and its dual coefficients.

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kktexplain.svm import SANITY_DATASETS, sanity_check  # noqa: E402
from kktexplain.viz import plot_svm_2d  # noqa: E402

x, y = SANITY_DATASETS["two_moons"]()
result = sanity_check(x, y, C=1.0, n_synthetic=5, synth_steps=200)
print(result.to_dict())

# %%
ax = plot_svm_2d(result)
plt.savefig("linear_svm_sanity.png", dpi=120)
