"""Try: SortedNCE ranks the codes by the network's own continuous outputs; where the headroom is.

SortedNCE normally gathers the latent vectors of a head trained with it. Here it gathers a
teacher taken from the same network and detached, so SortedNCE trains the codes alone (through
the sorter) to rank the in-batch candidates as the teacher does: ``--teacher backbone``, the
backbone's features, or ``--teacher relaxed``, the relaxed codes tanh(.) (both L2-normalised):
the continuous ranking distilled into the Hamming one. ``--teacher latent`` keeps the
defaults. Each run also prints the mAP of the network's continuous outputs ranked by cosine
(the backbone, the hash pre-activation, the latent head) beside the codes': how much better a
ranking the same network holds than its codes. Neighbour mixing stays on (the defaults).
A try for issue #4, not a library feature (see docs/benchmarks.md).

    python benchmarks/self_teacher.py newsgroups --data PATH --cache DIR --bits 32 --seeds 3 --teacher backbone --params temperature=0.05,sorted_weight=0.3
"""

import os
import sys

import torch
import torch.nn.functional as F

from sortedhash import NSHTransformer
from sortedhash.metrics import mean_average_precision_from_distances
from sortedhash.nn import sign_ste

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import retrieval  # noqa: E402

TEACHERS = ("latent", "backbone", "relaxed")


class SelfTeacher(torch.nn.Module):
    """The HashingNetwork's codes, with a detached vector of its own as the latent ``z``."""

    def __init__(self, network, source):
        super().__init__()
        if source not in ("backbone", "relaxed"):
            raise ValueError(f"source must be 'backbone' or 'relaxed', got {source!r}")
        self.network = network
        self.source = source

    def forward(self, x):
        f = self.network.backbone(x)
        h = torch.tanh(self.network.hash_head(f))
        teacher = f if self.source == "backbone" else h
        return h, sign_ste(h), F.normalize(teacher, dim=1).detach()

    def encode(self, x):
        return self.network.encode(x)


class SelfTeacherNSH(NSHTransformer):
    """NSHTransformer whose SortedNCE gathers ``teacher_source`` (a class attribute)."""

    teacher_source = "backbone"

    def _build_net(self, X, device, batch_size, multi_view):
        with retrieval.wrapped_network(lambda network: SelfTeacher(network, self.teacher_source)):
            return super()._build_net(X, device, batch_size, multi_view)


def estimator_for(teacher):
    """NSHTransformer for "latent", else a SelfTeacherNSH gathering ``teacher``."""
    if teacher == "latent":
        return NSHTransformer
    if teacher not in TEACHERS:
        raise ValueError(f"teacher must be one of {TEACHERS}, got {teacher!r}")
    return type(f"SelfTeacherNSH_{teacher}", (SelfTeacherNSH,), {"teacher_source": teacher})


@torch.no_grad()
def continuous_map(model, query, query_y, db, db_y, k):
    """mAP@k of the fitted model's continuous outputs, each ranked by cosine."""
    network = model.net_.module_
    network = getattr(network, "network", network).eval()
    device = next(network.parameters()).device

    def outputs(X):
        f = network.backbone(torch.as_tensor(X, device=device))
        out = dict(backbone=f, pre_activation=network.hash_head(f), latent_head=network.latent_head(f))
        return {name: v.cpu() for name, v in out.items()}

    scores = {}
    q, d = outputs(query), outputs(db)
    for name in q:
        a, b = F.normalize(q[name], dim=1).numpy(), F.normalize(d[name], dim=1).numpy()
        scores[name] = mean_average_precision_from_distances(-(a @ b.T), query_y, db_y, k=k)
    return scores


def main():
    parser = retrieval.try_parser(__doc__.splitlines()[0], bits=[32])
    parser.add_argument("--teacher", choices=TEACHERS, default="backbone")
    args = parser.parse_args()
    print(f"teacher {args.teacher}; continuous outputs ranked by cosine, mAP@k:", flush=True)
    retrieval.run_try(args, estimator_for(args.teacher), defaults=(),  # neighbour mixing stays on
                      report=lambda model, data, query, db: continuous_map(model, query, data["query_y"], db,
                                                                           data["db_y"], data["k"]))


if __name__ == "__main__":
    main()
