"""Predict a PyTorch model's signal propagation from its weights and momentcalc's exact constants, and
initialize it so that every layer holds its variance.

    from momentcalc.torch import predict, autoinit
    p = predict(model, torch.randn(64, 3, 32, 32))   # per node: predicted and measured mean, std, grad RMS
    report = autoinit(model, torch.randn(64, 3, 32, 32))  # rescales the weights, then measures

One job per module: law (a tensor's law), correlation (spatial correlation through convs, pools and
activations), ops (the rules), shapes (rearrangements), attention (softmax, products of two data tensors,
attention), leaves (autograd Functions and unit ops kept whole, and their rules), more_rules (looked up first),
dispatch (which rule a node gets), trace (torch.fx and the measured run), report (the result types), core
(predict) and autoinit.
"""

from . import loading
from .autoinit import AutoinitReport, Scaled, autoinit
from .core import predict
from .law import Law
from .report import NodePrediction, Prediction

__all__ = ["AutoinitReport", "Law", "NodePrediction", "Prediction", "Scaled", "autoinit", "loading", "predict"]
