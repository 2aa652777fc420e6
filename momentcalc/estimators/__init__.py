"""The independent ways to get a layer's moments: closed forms, quadrature, Monte Carlo."""


class NotApplicable(Exception):
    """This method has no way to compute this spec; the message says why."""
