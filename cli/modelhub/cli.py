"""`modelhub` command line: stack control (up/down/status) and the HTTP API client commands
(the commands live in modelhub.commands, one module per resource)."""

import click

from modelhub.commands import all_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """modelhub: register, deploy, share and run ML models over datasets."""


for command in all_commands():
    main.add_command(command)

if __name__ == "__main__":
    main()
