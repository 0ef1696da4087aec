"""Helpers of the campaign tests."""


def experiment_file(path, body: str, name: str = "t"):
    path.write_text(f'format = "cgphw-experiment/1"\nname = "{name}"\n' + body)
    return path
