"""What an op's ball functions may call (Lib: flint's acb functions, analytic-checked), and one elementwise stage
of a chain evaluated on balls (Stage: the op's analytic pieces between its kinks, or an affine map)."""

from __future__ import annotations

from dataclasses import dataclass

from .._lazy import lazy_module

flint = lazy_module("flint")

_NUMBERS: dict = {}


class Lib:
    """What an op's `ball` functions may call (catalog.Ball): flint acb functions, analytic-checked.

    With analytic=True (acb.integral asks whether the integrand is holomorphic on a ball) a function
    with a branch cut returns a non-finite ball where the ball touches the cut.
    """

    def __init__(self, analytic: bool):
        self.analytic = analytic

    @staticmethod
    def num(value):
        """A ball for a number: floats and ints exact, decimal text such as '0.044715' enclosed (cached per
        precision: integrands ask for their constants at every evaluation)."""
        key = (value, flint.ctx.prec)
        found = _NUMBERS.get(key)
        if found is None:
            found = _NUMBERS[key] = flint.acb(flint.arb(value))
        return found

    @staticmethod
    def pi():
        key = ("pi", flint.ctx.prec)
        found = _NUMBERS.get(key)
        if found is None:
            found = _NUMBERS[key] = flint.acb.pi()
        return found

    def sqrt(self, x):
        return flint.acb(x).sqrt(analytic=self.analytic)

    def log(self, x):
        return x.log(analytic=self.analytic)

    def log1p(self, x):
        if self.analytic and not (x.real > -1 or not x.imag.contains(0)):
            return flint.acb(flint.arb.nan())  # the ball may touch the cut of log(1 + x) on x <= -1
        return x.log1p()

    @staticmethod
    def exp(x):
        return x.exp()

    @staticmethod
    def expm1(x):
        return x.expm1()

    @staticmethod
    def erf(x):
        return x.erf()

    @staticmethod
    def erfc(x):
        return x.erfc()

    @staticmethod
    def tanh(x):
        return x.tanh()

    @staticmethod
    def sech(x):
        return x.sech()


LIBS = (Lib(False), Lib(True))


@dataclass(frozen=True)
class Stage:
    """One elementwise stage: the op's analytic pieces between its kinks, or an affine map (y - shift) * scale."""

    pieces: tuple = ()  # ((f, df), ...) as catalog.Ball, len(kinks) + 1
    kinks: tuple[float, ...] = ()
    a: float = 0.0
    b: float = 0.0
    growth: tuple[float, float, float] = (0.0, 1.0, 1.0)  # (c0, c1, d): |f| <= c0 + c1 |x|, |f'| <= d
    monotone: bool = True
    odd_center: float | None = None
    shift: object = None  # affine stage: arb balls
    scale: object = None

    def value(self, x, which: int, lib: Lib):
        """f (which=0) or f' (which=1) at the ball x."""
        if self.scale is not None:
            return (x - self.shift) * self.scale if which == 0 else self.scale + 0 * x
        if not self.kinks:
            return self.pieces[0][which](x, self.a, self.b, lib)
        re = x.real
        touched = [
            i
            for i in range(len(self.pieces))
            if not (i > 0 and re < self.kinks[i - 1]) and not (i < len(self.kinks) and re > self.kinks[i])
        ]
        if len(touched) > 1 and lib.analytic and not x.is_exact():
            return flint.acb(flint.arb.nan())  # not one analytic piece on this ball
        found = self.pieces[touched[0]][which](x, self.a, self.b, lib)
        for i in touched[1:]:
            found = found.union(self.pieces[i][which](x, self.a, self.b, lib))
        return found
