"""The one exception type for bad user input; entry points turn it into exit code 2."""


class InputError(Exception):
    """Bad input (a file, an entry, a flag): the message is one line naming what and why."""
