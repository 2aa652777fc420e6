"""The torch API refuses bad arguments with one MomentcalcError line, before torch sees them (issue 28, item 10).

The hostile run found 17 of 68 bad arguments accepted (a batch of 0 gave all-NaN statistics) and 10
refused with torch's own errors. BAD lists the kinds it tried, rebuilt here: sizes of 0, negative, not
whole, bools; non-finite or non-positive inputs; wrong types and dtypes; each must be refused in one line.
"""

import math

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from momentcalc import MomentcalcError  # noqa: E402
from momentcalc.torch import (  # noqa: E402
    NormPropActivation,
    NormPropAvgPool2d,
    NormPropConv2d,
    NormPropDropout,
    NormPropLinear,
    NormPropMaxPool2d,
    affine,
    calculate_gain,
    compare,
    gamma,
    moments,
    propagate,
)
from momentcalc.torch.functional import apply  # noqa: E402

NAN, INF = math.nan, math.inf


def _model():
    return nn.Sequential(NormPropLinear(4, 4), NormPropActivation("relu"))


BAD = {
    # NormPropActivation
    "activation spec None": lambda: NormPropActivation(None),
    "activation spec int": lambda: NormPropActivation(3),
    "activation spec unknown": lambda: NormPropActivation("nosuchop"),
    "activation spec a pool": lambda: NormPropActivation("maxpool(k=2)"),
    "activation mu NaN": lambda: NormPropActivation("relu", mu=NAN),
    "activation mu inf": lambda: NormPropActivation("relu", mu=INF),
    "activation mu text": lambda: NormPropActivation("relu", mu="0"),
    "activation mu bool": lambda: NormPropActivation("relu", mu=True),
    "activation sigma 0": lambda: NormPropActivation("relu", sigma=0.0),
    "activation sigma negative": lambda: NormPropActivation("relu", sigma=-1.0),
    "activation sigma NaN": lambda: NormPropActivation("relu", sigma=NAN),
    "activation sigma tensor": lambda: NormPropActivation("relu", sigma=torch.tensor(1.0)),
    # NormPropLinear
    "linear in 0": lambda: NormPropLinear(0, 4),
    "linear out 0": lambda: NormPropLinear(4, 0),
    "linear in negative": lambda: NormPropLinear(-1, 4),
    "linear in float": lambda: NormPropLinear(4.0, 4),
    "linear in bool": lambda: NormPropLinear(True, 4),
    "linear bias text": lambda: NormPropLinear(4, 4, bias="no"),
    "linear scale None": lambda: NormPropLinear(4, 4, scale=None),
    "linear dtype int": lambda: NormPropLinear(4, 4, dtype=torch.int64),
    "linear device bad": lambda: NormPropLinear(4, 4, device="nodevice"),
    # NormPropConv2d
    "conv in 0": lambda: NormPropConv2d(0, 4, 3),
    "conv out negative": lambda: NormPropConv2d(3, -4, 3),
    "conv kernel 0": lambda: NormPropConv2d(3, 4, 0),
    "conv kernel negative pair": lambda: NormPropConv2d(3, 4, (3, -1)),
    "conv kernel triple": lambda: NormPropConv2d(3, 4, (3, 3, 3)),
    "conv stride 0": lambda: NormPropConv2d(3, 4, 3, stride=0),
    "conv padding negative": lambda: NormPropConv2d(3, 4, 3, padding=-1),
    "conv padding unknown text": lambda: NormPropConv2d(3, 4, 3, padding="most"),
    "conv same with stride 2": lambda: NormPropConv2d(3, 4, 3, stride=2, padding="same"),
    "conv dilation 0": lambda: NormPropConv2d(3, 4, 3, dilation=0),
    "conv groups not dividing": lambda: NormPropConv2d(3, 4, 3, groups=2),
    "conv padding_mode unknown": lambda: NormPropConv2d(3, 4, 3, padding_mode="mirror"),
    "conv scale text": lambda: NormPropConv2d(3, 4, 3, scale="yes"),
    # pools
    "maxpool kernel 0": lambda: NormPropMaxPool2d(0),
    "maxpool kernel negative": lambda: NormPropMaxPool2d(-2),
    "maxpool kernel float": lambda: NormPropMaxPool2d(2.5),
    "maxpool stride 0": lambda: NormPropMaxPool2d(2, stride=0),
    "maxpool padding over half": lambda: NormPropMaxPool2d(2, padding=2),
    "maxpool padding negative": lambda: NormPropMaxPool2d(2, padding=-1),
    "maxpool dilation 0": lambda: NormPropMaxPool2d(2, dilation=0),
    "maxpool after not text": lambda: NormPropMaxPool2d(2, after=3),
    "maxpool after unknown": lambda: NormPropMaxPool2d(2, after="nosuchop"),
    "maxpool sigma 0": lambda: NormPropMaxPool2d(2, sigma=0.0),
    "avgpool kernel 0": lambda: NormPropAvgPool2d(0),
    "avgpool padding over half": lambda: NormPropAvgPool2d(3, padding=2),
    "avgpool ceil_mode text": lambda: NormPropAvgPool2d(2, ceil_mode="yes"),
    # dropout
    "dropout keep 0": lambda: NormPropDropout(0.0),
    "dropout keep over 1": lambda: NormPropDropout(1.5),
    "dropout keep negative": lambda: NormPropDropout(-0.2),
    "dropout keep NaN": lambda: NormPropDropout(NAN),
    "dropout keep text": lambda: NormPropDropout("0.8"),
    "dropout scale unknown": lambda: NormPropDropout(0.8, scale="square"),
    "dropout p given": lambda: NormPropDropout(p=0.2),
    "dropout p text": lambda: NormPropDropout(p="x"),
    # gains and lookups
    "gain of None": lambda: calculate_gain(None),
    "gain leaky slope NaN": lambda: calculate_gain("leaky_relu", NAN),
    "gain of a pool": lambda: calculate_gain("maxpool(k=2)"),
    "gamma sigma 0": lambda: gamma("relu", sigma=0.0),
    "gamma mu NaN": lambda: gamma("relu", mu=NAN),
    "affine mu text": lambda: affine("relu", mu="1"),
    "moments spec list": lambda: moments(["relu"]),
    "apply to a list": lambda: apply("relu", [1.0, 2.0]),
    # propagate
    "propagate model None": lambda: propagate(None, (2, 4)),
    "propagate batch 0": lambda: propagate(_model(), (0, 4)),
    "propagate negative size": lambda: propagate(_model(), (2, -4)),
    "propagate empty shape": lambda: propagate(_model(), ()),
    "propagate shape int": lambda: propagate(_model(), 8),
    "propagate float size": lambda: propagate(_model(), (2.0, 4)),
    "propagate wrong feature size": lambda: propagate(_model(), (2, 5)),
    "propagate huge input": lambda: propagate(_model(), (10**6, 10**6)),
    "propagate dtype int": lambda: propagate(_model(), (2, 4), dtype=torch.int32),
    "propagate dtype complex": lambda: propagate(_model(), (2, 4), dtype=torch.complex64),
    "propagate dtype text": lambda: propagate(_model(), (2, 4), dtype="float32"),
    "propagate seed negative": lambda: propagate(_model(), (2, 4), seed=-1),
    "propagate seed float": lambda: propagate(_model(), (2, 4), seed=1.5),
    "propagate modules text": lambda: propagate(_model(), (2, 4), modules="0"),
    "propagate unknown module": lambda: propagate(_model(), (2, 4), modules=["9"]),
    "propagate train text": lambda: propagate(_model(), (2, 4), train="yes"),
    "propagate progress not callable": lambda: propagate(_model(), (2, 4), progress=3),
    "propagate one value": lambda: propagate(nn.Sequential(NormPropLinear(4, 1)), (1, 4)),
    "propagate batchnorm batch 1": lambda: propagate(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)), (1, 4)),
    "propagate float16 overflow": lambda: propagate(nn.Sequential(_Times(1e6)), (2, 4), dtype=torch.float16),
    # compare
    "compare depth 0": lambda: compare(depth=0),
    "compare batch 1": lambda: compare(depth=1, batch=1),
    "compare unknown variant": lambda: compare(depth=1, width=2, size=4, variants=("best",)),
    "compare variants as text": lambda: compare(depth=1, width=2, size=4, variants="normprop"),
    "compare block not text": lambda: compare(depth=1, width=2, size=4, block=3),
}


class _Times(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_argument_is_one_line(case):
    with pytest.raises(MomentcalcError) as caught:
        BAD[case]()
    message = str(caught.value)
    assert message and len(message.splitlines()) == 1
