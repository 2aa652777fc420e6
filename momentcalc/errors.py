"""The exception types the library raises: for bad input or bad data, and for output it could not write."""


class MomentcalcError(ValueError):
    """Bad input or data: the message says what is wrong and what would be right."""


class WriteError(MomentcalcError):
    """A file could not be written whole (a full disk, a file size limit): nothing half-written was left in its
    place. The CLI exits with its own code for it (EXIT_WRITE), not bad input's."""
