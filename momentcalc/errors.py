"""The one exception type the library raises for bad input or bad data."""


class MomentcalcError(ValueError):
    """Bad input or data: the message says what is wrong and what would be right."""
