"""Errors a user can act on.

Anything raised as :class:`GancvError` is the user's to fix (bad name, bad file, bad value):
the CLI prints its one-line message and exits with code 2, no traceback. Every other
exception is a bug in gancv and exits with code 1.
"""


class GancvError(ValueError):
    """A problem with the user's input; the message names the value and the fix."""


class UnknownNameError(GancvError, KeyError):
    """A registry lookup with a name that is not registered."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""
