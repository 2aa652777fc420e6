"""What momentcalc's constants predict for the NormProp net: mean 0, std 1 and the gradient RMS of every block."""

from __future__ import annotations

import math

from ... import backward
from ...errors import MomentcalcError
from ...spec import parse
from ..moments import moments
from .builders import Stage, block_names, output_sizes
from .hooks import LayerStats, Propagation


def prediction(plan_: list[tuple[Stage, ...]], size: int) -> Propagation:
    """What momentcalc predicts for the NormProp net: mean 0 and std 1 after every block, and the gradient RMS.

    The gradient's variance changes by a known factor through each layer, for iid upstream gradients:
    a unit-norm conv with circular padding by cout / cin = 1 (backward.py's count with no border);
    an activation f by E[f'(X)^2] / std^2 (the backward constant, then the normalization); a pool by
    the mean of its exact backward map (backward.exact_map) / std^2. A max-pool right after a monotone
    f is taken with f as one step, because the gradient goes only to each window's largest input,
    where f' is not a typical f': the pair's factor is map_mean * m * E[f'(X)^2; X the max of m] /
    (std_f^2 std_pool^2), m = k * k. The RMS is 1 at the output, where the gradient is injected.
    """
    depth = len(plan_)
    sides = [size] + output_sizes(plan_, size)
    factors = []  # per block: Var[grad at its input] / Var[grad at its output]
    for number, stages in enumerate(plan_):
        factor, side, feed, act, act_op = 1.0, sides[number], None, None, None
        for st in stages:
            if st.kind == "activation":
                act, act_op = moments(st.spec), st.op if st.op is not None else parse(st.spec).last
                if act.grad_sq is None:
                    raise MomentcalcError(f"no backward constant E[f'(X)^2] for {st.spec!r}: nothing to predict with")
                factor *= act.grad_sq / act.std**2
                feed = f"{st.spec} | normalize"
            elif st.kind == "pool":
                pipeline = f"{feed} | {st.spec}" if feed else st.spec
                bare = st.spec.split("(")[0]
                layer = backward.Layer(bare, st.k, st.s, st.p)
                map_mean = float(backward.exact_map(layer, side).mean())
                pool_var = moments(pipeline).std ** 2
                if act is not None and bare == "maxpool" and act_op.info.monotone:
                    m = st.k * st.k
                    factor *= (act.std**2 / act.grad_sq) * map_mean * m * backward.grad_sq_at_max(act_op, m)
                    factor /= act.std**2 * pool_var
                else:
                    factor *= map_mean / pool_var
                side = backward.output_size(layer, side)
                feed, act = f"{pipeline} | normalize", None
            else:
                feed, act = None, None
        factors.append(factor)
    rms = [1.0] * (depth + 1)
    for d in range(depth - 1, -1, -1):  # the gradient at block d's input is block d's factor times that at its output
        rms[d] = rms[d + 1] * math.sqrt(factors[d])
    rows = [LayerStats("input", 0, 0.0, 1.0, rms[0])]
    rows += [LayerStats(name, d + 1, 0.0, 1.0, rms[d + 1]) for d, name in enumerate(block_names(depth))]
    return Propagation(tuple(rows))
