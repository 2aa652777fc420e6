"""What the activations' declarations share: constant and linear pieces of ball functions, growth bounds,
the kink at 0, and activation(): the one declaring function."""

from __future__ import annotations

from collections.abc import Callable

from ...catalog import ELEMENTWISE, OpInfo, Param, register

# --- ball arithmetic (the certified method) -----------------------------------------
# (f, f') per analytic piece between the kinks, on complex balls, through certified's `lib`. Each avoids
# cancellation (x / (1 + exp(-x)), never x (1 + tanh) / 2 or 1 - tanh^2): balls keep no digits a formula loses.


def _ball_const(c):
    return lambda x, a, b, lib: c + 0 * x


_BALL_X = lambda x, a, b, lib: x  # noqa: E731
_BALL_0 = _ball_const(0)
_BALL_1 = _ball_const(1)
_BOUNDED = lambda c, d: lambda a, b: (c, 0.0, d)  # noqa: E731
_LINEAR = lambda d: lambda a, b: (0.0, 1.0, d)  # noqa: E731
_KINK_AT_0 = lambda a, b: (0.0,)  # noqa: E731


def _param(name):
    return lambda op: (float(op.get(name)), 0.0)


def activation(
    name: str,
    description: str,
    f,
    df,
    monotone: bool,
    *params: Param,
    args=lambda op: (0.0, 0.0),
    kinks=lambda a, b: (),
    closed=None,
    grad_closed=None,
    **extra,
) -> OpInfo:
    """Declare an activation; closed(a, b, mu, sigma) and grad_closed(a, b, mu, sigma) take its scalar args."""
    return register(
        OpInfo(
            name,
            ELEMENTWISE,
            description,
            tuple(params),
            f=f,
            df=df,
            args=args,
            monotone=monotone,
            kinks=kinks,
            closed=_on_args(closed, args),
            grad_closed=_on_args(grad_closed, args),
            **extra,
        )
    )


def _on_args(form: Callable | None, args: Callable) -> Callable | None:
    """form(a, b, mu, sigma) as the registry's (op, mu, sigma)."""
    return None if form is None else (lambda op, mu, sigma: form(*args(op), mu, sigma))
