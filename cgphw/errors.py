"""Errors a user can cause: the CLI prints the message as one sentence and exits 2 (1 for a
mismatch: files that are well formed but disagree with each other or with a re-evaluation).
Each is a ValueError, so a notebook's ``except ValueError`` catches it; inside cgphw an ``except
ValueError`` around code that can raise one lets it through first (``except UserError: raise``)."""


class UserError(ValueError):
    """Bad input (file, shape, genome, config, flag). The message is one clear sentence."""

    exit_code = 2


class MismatchError(UserError):
    """Well-formed files that contradict each other or a re-evaluation: a hash that does not
    match, stored metrics that the genome does not reproduce, files of two different runs.
    Tampering or a mix-up, caught: exit 1, like a failed verification."""

    exit_code = 1


class SimulatorError(UserError):
    """A simulator that failed on its own (raised, crashed, stopped before its testbench
    finished): no verdict on the design, so never exit 1 like a mismatch. Exit 2."""
