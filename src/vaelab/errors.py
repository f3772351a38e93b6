"""The user's errors: what vaelab refuses with one line, as opposed to a bug, which keeps its traceback.

:class:`UserError` is an error the user can act on: a bad input, a run folder of the wrong kind, a file that is not
what it should be. :class:`ConfigError`, its most common kind, is a bad key or value (in a config file, an
override, a command-line option or an argument of the Python API). The command line prints a user error's message
as one line and exits with status 2 (:func:`vaelab.cli.main`); it maps only these classes (with the data-file
errors :class:`vaelab.data.DataError`, unknown registered names and the operating system's file errors,
:mod:`vaelab.oserrors`), so any other exception, a ``ValueError`` included, is a bug and is shown with its
traceback. Both subclass ``ValueError``, so that code catching ``ValueError`` keeps working.

This module imports nothing, so that every layer can raise them.
"""

from __future__ import annotations


class UserError(ValueError):
    """An error the user can act on (one line, naming what to change); the command line exits with status 2."""


class ConfigError(UserError):
    """A bad key or value in a config file or override; the message names the key and the valid choices."""


def builtin_type_name(error: BaseException) -> str:
    """The name of the first built-in class of ``error``'s type (``ValueError`` for a :class:`ConfigError`, the
    type's own name for a built-in exception): the type that result files (a sweep point's error.json and
    results.csv) record, as they did before the user-error classes; ``type(error).__name__`` gives the class."""
    for cls in type(error).__mro__:
        if cls.__module__ == "builtins":
            return cls.__name__
    return type(error).__name__
