"""Draw the documentation's pictures with sortedhash.plotting, on digits (offline).

Writes into --out: map_vs_bits.png, precision_recall.png, hamming_histogram.png,
soft_permutation.png, sorted_list.png and retrieval_grid.png.

Run: ``python examples/make_figures.py --out docs/img [--fast]``
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from sortedhash import HammingNeighbors, ITQTransformer, LSHTransformer, NSHTransformer  # noqa: E402
from sortedhash.metrics import mean_average_precision, precision_recall_curve  # noqa: E402
from sortedhash.nn import SoftSort, TorchsortSorter, hamming_similarity  # noqa: E402
from sortedhash.plotting import (plot_hamming_histogram, plot_map_vs_bits, plot_precision_recall,  # noqa: E402
                                 plot_retrieval_grid, plot_soft_permutation)

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
parser.add_argument("--fast", action="store_true")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
epochs = 2 if args.fast else 50

digits = load_digits()
perm = np.random.RandomState(0).permutation(len(digits.data))
images, y = digits.images[perm], digits.target[perm]
X = StandardScaler().fit_transform(digits.data[perm]).astype(np.float32)
q, db = slice(0, 200), slice(200, None)

methods = {"LSH": lambda b: LSHTransformer(n_bits=b, random_state=0),
           "ITQ": lambda b: ITQTransformer(n_bits=b, random_state=0),
           "NSH": lambda b: NSHTransformer(n_bits=b, random_state=0, max_epochs=epochs)}
maps, curves, codes32 = {m: {} for m in methods}, {}, {}
for name, make in methods.items():
    for bits in (16, 32, 64):
        codes = make(bits).fit(X[db]).transform(X)
        maps[name][bits] = mean_average_precision(codes[q], y[q], codes[db], y[db])
        if bits == 32:
            codes32[name] = codes
            curves[name] = precision_recall_curve(codes[q], y[q], codes[db], y[db])[:2]

ax = plot_map_vs_bits(maps)
ax.set_title("digits: mAP against bits")
ax.figure.savefig(os.path.join(args.out, "map_vs_bits.png"), dpi=110, bbox_inches="tight")
ax = plot_precision_recall(curves)
ax.set_title("digits, 32 bits: Hamming-radius precision-recall")
ax.figure.savefig(os.path.join(args.out, "precision_recall.png"), dpi=110, bbox_inches="tight")

fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
for ax, name in zip(axes, ("LSH", "NSH")):
    c = codes32[name]
    plot_hamming_histogram(c[q], y[q], c[db], y[db], ax=ax)
    ax.set_title(f"{name}, 32 bits")
fig.savefig(os.path.join(args.out, "hamming_histogram.png"), dpi=110, bbox_inches="tight")

# One anchor's soft permutation over a batch of 24 samples, both sorters.
model = NSHTransformer(n_bits=16, random_state=0, max_epochs=epochs).fit(X[db])
network = model.net_.module_
device = next(network.parameters()).device  # fit on the GPU when there is one
noisy = X[:24] + 0.6 * np.random.default_rng(0).standard_normal(X[:24].shape).astype(np.float32)
with torch.no_grad():
    _, b1, _ = network(torch.as_tensor(X[:24], device=device))
    _, b2, _ = network(torch.as_tensor(noisy, device=device))
    scores = hamming_similarity(b1, b2).cpu()
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, (name, sorter) in zip(axes, [("SoftSort", SoftSort(16)), ("torchsort", TorchsortSorter(16))]):
    plot_soft_permutation(sorter.soft_permutation(scores)[0].numpy(), ax=ax, title=f"{name}: anchor 0, 16 bits")
fig.savefig(os.path.join(args.out, "soft_permutation.png"), dpi=110, bbox_inches="tight")

# The Hamming sort and SortedNCE for anchor 0: candidates of the other view in sorted order,
# the first m positions are SortedNCE's positives, the rest its negatives.
m = 4
row = scores[0].numpy()
order = np.argsort(-row, kind="stable")
soft = TorchsortSorter(16).soft_sorted(scores)[0].numpy()
fig, ax = plt.subplots(figsize=(10, 3.4))
colours = ["tab:green" if k < m else "tab:grey" for k in range(len(order))]
ax.bar(np.arange(len(order)), row[order], color=colours)
ax.plot(np.arange(len(order)), soft, "k.--", lw=1, label="torchsort soft-sorted values (anchors)")
own = int(np.flatnonzero(order == 0)[0])
ax.annotate("anchor's own\nother view", (own, row[0]), xytext=(own + 1.5, row[0] - 0.15), fontsize=8,
            arrowprops=dict(arrowstyle="->"))
ax.set_xticks(np.arange(len(order)))
ax.set_xticklabels(order, fontsize=7)
ax.set_xlabel("candidate j of view 2, in the anchor's Hamming order")
ax.set_ylabel("1 - Hamming / n_bits")
ax.set_ylim(row.min() - 0.1, 1.05)
ax.legend(loc="upper right", fontsize=8)
ax.set_title(f"Anchor 0 (view 1), 16 bits: the first m={m} sorted positions are SortedNCE positives (green)")
fig.savefig(os.path.join(args.out, "sorted_list.png"), dpi=110, bbox_inches="tight")

nsh = codes32["NSH"]
_, ind = HammingNeighbors(n_neighbors=8).fit(nsh[db]).kneighbors(nsh[:6])
fig = plot_retrieval_grid(images[:6], images[db], ind, query_labels=y[:6], database_labels=y[db])
fig.suptitle("NSH 32 bits: queries and their 8 nearest codes (red: another digit)", fontsize=9, y=1.02)
fig.savefig(os.path.join(args.out, "retrieval_grid.png"), dpi=110, bbox_inches="tight")
print("figures written to", args.out)
