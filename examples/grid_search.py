"""Model selection: GridSearchCV over the temperature and the number of bits, scored by mAP.

Run: ``python examples/grid_search.py [--fast]``
"""

import argparse

from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from sortedhash import NSHTransformer
from sortedhash.metrics import make_map_scorer

parser = argparse.ArgumentParser()
parser.add_argument("--fast", action="store_true", help="tiny grid and few epochs (for CI)")
args = parser.parse_args()

X, y = load_digits(return_X_y=True)
pipe = Pipeline([("scale", StandardScaler()),
                 ("hash", NSHTransformer(random_state=0, max_epochs=2 if args.fast else 20))])
grid = {"hash__temperature": [0.2, 0.5], "hash__n_bits": [16, 32] if args.fast else [16, 32, 64]}
# Each held-out sample is a query against the other held-out samples: mAP@100.
search = GridSearchCV(pipe, grid, scoring=make_map_scorer(k=100), cv=3)
search.fit(X, y)
for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
    print(params, round(score, 3))
print("best:", search.best_params_, round(search.best_score_, 3))
