"""softmax(n, t=1): one output p_1 = exp(x_1 / t) / sum_j exp(x_j / t) of softmax over n iid N(mu, sigma^2) logits.

Its mean is 1/n exactly, for every mu, sigma and t (the n outputs are exchangeable and sum to 1); mu cancels
altogether. The Jacobian is (diag(p) - p p^T) / t, so the squared gradient reaching logit 1 from unit-variance
output gradients is sum_j J_j1^2 = p_1^2 ((1 - p_1)^2 + |p|^2 - p_1^2) / t^2. E[p_1^2] and the backward constant
have no closed form (the law of a sum of lognormals): Monte Carlo samples the n logits.
"""

from __future__ import annotations

import numpy as np

from ..catalog import JOINT, OpInfo, Param, register
from ..result import Moments
from ..settings import PARAM_RANGES


def _sample(op, x: np.ndarray):
    z = x / op.get("t")
    z -= z.max(axis=1, keepdims=True)  # no overflow: the largest exponent is 0
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    p1 = p[:, 0]
    grad = p1 * p1 * ((1 - p1) ** 2 + (p * p).sum(axis=1) - p1 * p1) / op.get("t") ** 2
    return p1, grad


register(
    OpInfo(
        "softmax",
        JOINT,
        "one output of softmax over n iid logits divided by the temperature t",
        (
            Param("n", int, None, accepted="the number of logits", bounds=PARAM_RANGES["count"]),
            Param("t", float, 1.0, lambda v: 1e-3 <= v <= 1e3, "the temperature, in [0.001, 1000]"),
        ),
        closed=lambda op, mu, sigma: Moments(1.0 / op.get("n"), None),
        size=lambda op: op.get("n"),
        sample=_sample,
    )
)
