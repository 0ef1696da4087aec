"""Errors a user can cause: the CLI prints the message as one sentence and exits 2."""


class UserError(Exception):
    """Bad input (file, shape, genome, config, flag). The message is one clear sentence."""
