"""Where the default self-influence of the mislabel benchmark spends its time.

The reference ConvNet (its initialisation: the cost does not depend on the weights), 10,000
random 28x28 inputs, selection with equal multipliers on the last layer and the self-influence,
chunks of 256 (the benchmark's batch size), against a plain ``no_grad`` forward of the same
inputs; prints the cProfile table of the selection. Quoted in the stop's note for issue 8.

    OMP_NUM_THREADS=2 python benchmarks/profile_self_influence.py
"""

import cProfile
import pstats
import time

import torch

from kktexplain import DeepSupportVectors
from kktexplain.attr import SupportVectorInfluence
from kktexplain.attr._baselines import last_linear
from kktexplain.models import reference_init


def main() -> None:
    torch.manual_seed(0)
    model = reference_init("fashion_mnist_convnet").eval()
    x, y = torch.rand(10_000, 1, 28, 28), torch.randint(0, 10, (10_000,))
    name, _ = last_linear(model)
    start = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(x), 256):
            model(x[i : i + 256])
    print(f"plain no_grad forward, chunks of 256: {time.perf_counter() - start:.1f} s")
    explainer = DeepSupportVectors(
        param_names=[f"{name}.weight", f"{name}.bias"], multipliers="equal", chunk_size=256, progress=False
    )
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    sel = explainer.attribute(model, candidates=x, labels=y)
    profile.disable()
    middle = time.perf_counter()
    SupportVectorInfluence(model, sel, chunk_size=256).self_influence()
    print(f"selection {middle - start:.1f} s, self-influence {time.perf_counter() - middle:.2f} s")
    pstats.Stats(profile).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
