"""The `cgphw` command line: a thin layer over the package's stages.

Each stage's commands live in ``cgphw/commands/<stage>.py`` and expose ``register(group)``.
Every error a user can cause is a ``UserError``: printed as one sentence, exit code 2 (1 for a
``MismatchError``: well-formed files that contradict each other or a re-evaluation).
"""
from __future__ import annotations

import errno
import sys

import click

from cgphw.errors import UserError

COMMAND_MODULES = ("evolve", "nn", "calibrate", "hw", "synth", "verify", "layer", "bench", "demo", "campaign",
                   "model_import")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="cgphw")
def cli():
    """cgphw: evolve small 8-bit circuits that compute the int8 weights of a quantized
    network, and turn them into verified hardware (Amaranth, Verilog, Yosys, cocotb)."""


def _register_all() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"cgphw.commands.{name}").register(cli)


def main(argv: list[str] | None = None) -> None:
    try:
        _register_all()  # inside: Ctrl-C while the stages import is one line too
        cli.main(args=argv, prog_name="cgphw", standalone_mode=False)
    except UserError as exc:  # exit 2; a MismatchError (files that contradict each other) exit 1
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):  # Ctrl-C before a run's own handler is in place
        click.echo("interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:  # bad flags, missing arguments: one line, like every other error
        if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):  # a bare group: show its help
            exc.show()
            sys.exit(2)
        ctx = getattr(exc, "ctx", None)  # (usage errors carry the command's context)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path the user gave that cannot be read or written, or a full disk
        if exc.filename is None and exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = exc.filename if exc.filename is not None else "the output"
        click.echo(f"error: cannot use {where}: {exc.strerror or exc}", err=True)
        sys.exit(2)
