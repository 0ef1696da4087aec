"""The `cgphw` console script. It imports nothing at module level, so that Ctrl-C while the
stages load (numpy, click, ...) ends with one line and exit 130, never a traceback."""


def main() -> None:
    import sys

    try:
        from cgphw.cli import main as cli_main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    cli_main()
