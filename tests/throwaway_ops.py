"""For tests that declare a throwaway op: removing it from the registry again."""

from momentcalc import catalog


def unregister(name: str) -> None:
    """Remove an op registered by a test (the package never removes one)."""
    catalog._OPS.pop(name, None)
