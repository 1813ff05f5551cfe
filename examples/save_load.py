"""Saving and loading a fitted model: joblib (trusted files) and the safe format.

Run: ``python examples/save_load.py --out DIR [--fast]``
"""

import argparse
import os
import tempfile

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sortedhash
from sortedhash import NSHTransformer

parser = argparse.ArgumentParser()
parser.add_argument("--out", default=None, help="folder for the files (default: a temporary one)")
parser.add_argument("--fast", action="store_true")
args = parser.parse_args()
out = args.out or tempfile.mkdtemp()
os.makedirs(out, exist_ok=True)

X, _ = load_digits(return_X_y=True)
scaler = StandardScaler().fit(X)
nsh = NSHTransformer(n_bits=32, random_state=0, max_epochs=2 if args.fast else 30).fit(scaler.transform(X))
codes = nsh.transform(scaler.transform(X))

# joblib keeps whole Pipelines; loading a pickle runs code, so load only files you trust.
joblib.dump(make_pipeline(scaler, nsh), os.path.join(out, "pipeline.joblib"))
pipe = joblib.load(os.path.join(out, "pipeline.joblib"))
print("joblib pipeline, same codes:", np.array_equal(pipe.transform(X), codes))

# The safe format (safetensors + JSON) runs no code on load and refuses altered files.
sortedhash.save(nsh, os.path.join(out, "nsh.safetensors"))
loaded = sortedhash.load(os.path.join(out, "nsh.safetensors"))
print("safe format, same codes:", np.array_equal(loaded.transform(scaler.transform(X)), codes))
print("files in", out, ":", sorted(os.listdir(out)))
