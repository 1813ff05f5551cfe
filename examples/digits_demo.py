"""Main demo: NSH codes against simple references on scikit-learn's digits (offline).

Trains NSHTransformer at 16, 32 and 64 bits and prints the mAP of Hamming ranking
against LSH (sign of a Gaussian random projection), PCA signs, ITQ and the unbinarised
features (Euclidean ranking of the standardised features). 200 digits are queries, the
other 1,597 the database (and the training set); relevance is the same digit.

Run: ``bash scripts/demo.sh`` (or ``python examples/digits_demo.py [--epochs N]``).
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import pairwise_distances
from sklearn.preprocessing import StandardScaler

from sortedhash import ITQTransformer, LSHTransformer, NSHTransformer, PCAHashTransformer
from sortedhash.metrics import mean_average_precision, mean_average_precision_from_distances


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50, help="NSH training epochs (default 50)")
    parser.add_argument("--bits", type=int, nargs="+", default=[16, 32, 64])
    args = parser.parse_args(argv)

    X, y = load_digits(return_X_y=True)
    # Shuffle with a fixed seed: the file is not in class order, but ties in Hamming
    # distance are broken by index, so a fixed random order keeps the comparison fair.
    perm = np.random.RandomState(0).permutation(len(X))
    X, y = X[perm], y[perm]
    queries, database = slice(0, 200), slice(200, None)
    scaler = StandardScaler().fit(X[database])
    X = scaler.transform(X).astype(np.float32)

    float_map = mean_average_precision_from_distances(
        pairwise_distances(X[queries], X[database]), y[queries], y[database])

    rows = []
    for n_bits in args.bits:
        methods = {
            "LSH": LSHTransformer(n_bits=n_bits, random_state=0),
            "PCA sign": PCAHashTransformer(n_bits=min(n_bits, X.shape[1])),
            "ITQ": ITQTransformer(n_bits=min(n_bits, X.shape[1]), random_state=0),
            "NSH": NSHTransformer(n_bits=n_bits, max_epochs=args.epochs, random_state=0, verbose=1),
        }
        row = {"bits": n_bits}
        for name, model in methods.items():
            start = time.perf_counter()
            model.fit(X[database])
            codes = model.transform(X)
            row[name] = mean_average_precision(codes[queries], y[queries], codes[database], y[database])
            if name == "NSH":
                row["NSH fit s"] = time.perf_counter() - start
        rows.append(row)
        print(f"{n_bits} bits done: NSH mAP {row['NSH']:.3f} in {row['NSH fit s']:.1f} s", flush=True)

    print("\nmAP on digits (200 queries, 1,597 database items; PCA sign and ITQ capped at 64 bits)")
    names = ["LSH", "PCA sign", "ITQ", "NSH"]
    print(f"{'bits':>5} | " + " | ".join(f"{n:>8}" for n in names) + f" | {'float':>6} | NSH fit s")
    for row in rows:
        cells = " | ".join(f"{row[n]:8.3f}" for n in names)
        print(f"{row['bits']:>5} | {cells} | {float_map:6.3f} | {row['NSH fit s']:8.1f}")
    wins = all(row["NSH"] > max(row["LSH"], row["PCA sign"]) for row in rows)
    print("\nNSH beats LSH and PCA signs at every length:", "yes" if wins else "NO")


if __name__ == "__main__":
    main()
