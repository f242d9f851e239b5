"""Expected failures and the exit code each one maps to.

The codes follow the BIDS-Apps execution draft as adopted by this project; the CLI turns every
``BidsxaiError`` into one line on stderr and exits with ``exit_code`` (docs/usage.md lists them).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID_BIDS = 16
EXIT_NOTHING_SELECTED = 18
EXIT_USAGE = 64
EXIT_NO_INPUT = 66
EXIT_CANNOT_CREATE_OUTPUT = 73


class BidsxaiError(Exception):
    """An expected failure: the message is shown to the user as it is."""

    exit_code = EXIT_INTERNAL


class UsageError(BidsxaiError):
    exit_code = EXIT_USAGE


class NoInputError(BidsxaiError):
    exit_code = EXIT_NO_INPUT


class InvalidBidsError(BidsxaiError):
    exit_code = EXIT_INVALID_BIDS


class NothingSelectedError(BidsxaiError):
    exit_code = EXIT_NOTHING_SELECTED


class CannotCreateOutputError(BidsxaiError):
    exit_code = EXIT_CANNOT_CREATE_OUTPUT
