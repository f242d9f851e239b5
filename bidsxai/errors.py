"""Expected failures and the exit code each one maps to.

The codes follow the BIDS-Apps execution draft as adopted by this project; the CLI turns every
``BidsxaiError`` into one line on stderr and exits with ``exit_code`` (docs/usage.md lists them).
"""

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID_BIDS = 16
EXIT_UNKNOWN_LEVEL = 17
EXIT_NOTHING_SELECTED = 18
EXIT_USAGE = 64
EXIT_NO_INPUT = 66
EXIT_CANNOT_CREATE_OUTPUT = 73
EXIT_TEMPFAIL = 75
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

# Every code bidsxai exits with and what it means, in a sentence: the Boutiques descriptor's
# error codes are written from it, and a test checks that docs/usage.md lists the same codes.
EXIT_CODES = {
    EXIT_INTERNAL: "internal error (a bug): the traceback is written to a crash file",
    EXIT_INVALID_BIDS: "the input is not valid BIDS",
    EXIT_UNKNOWN_LEVEL: "unknown analysis level",
    EXIT_NOTHING_SELECTED: "the filters selected nothing",
    EXIT_USAGE: "usage error: an option or a combination of options that cannot work",
    EXIT_NO_INPUT: "missing or unusable input",
    EXIT_CANNOT_CREATE_OUTPUT: "OUTPUT_DIR cannot be created or written",
    EXIT_TEMPFAIL: "a worker process was lost (the out-of-memory killer, a signal): worth retrying",
    EXIT_INTERRUPTED: "stopped by Ctrl-C; the same command resumes",
    EXIT_TERMINATED: "stopped by SIGTERM (a scheduler's time limit); the same command resumes",
}


class BidsxaiError(Exception):
    """An expected failure: the message is shown to the user as it is."""

    exit_code = EXIT_INTERNAL


class UsageError(BidsxaiError):
    exit_code = EXIT_USAGE


class UnknownLevelError(UsageError):
    exit_code = EXIT_UNKNOWN_LEVEL


class NoInputError(BidsxaiError):
    exit_code = EXIT_NO_INPUT


class UnreadableImageError(NoInputError):
    """A NIfTI file that cannot be read (``nifti.read_image``)."""


class InvalidBidsError(BidsxaiError):
    exit_code = EXIT_INVALID_BIDS


class NothingSelectedError(BidsxaiError):
    exit_code = EXIT_NOTHING_SELECTED


class CannotCreateOutputError(BidsxaiError):
    exit_code = EXIT_CANNOT_CREATE_OUTPUT
