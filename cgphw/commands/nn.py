"""Commands of this stage (filled in by its issue)."""


def register(group) -> None:
    pass
