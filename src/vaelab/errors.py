"""The user's errors: what vaelab refuses with one line, as opposed to a bug, which keeps its traceback.

:class:`ConfigError` is a bad key or value (in a config file, an override, a command-line option or an argument
of the Python API); the command line prints its message as one line and exits with status 2
(:func:`vaelab.cli.main`). It subclasses ``ValueError`` so that code catching ``ValueError`` keeps working, but
the command line maps only this class (and the data and file errors of :mod:`vaelab.data` and
:mod:`vaelab.oserrors`) to a one-line error: any other ``ValueError`` is a bug and is shown with its traceback.
This module imports nothing, so that every layer can raise it.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad key or value in a config file or override; the message names the key and the valid choices."""
