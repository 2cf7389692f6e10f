"""`modelhub` command line: stack control (up/down/status) and the HTTP API client commands."""

import click

from modelhub import client, stack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """modelhub: register, deploy, share and run ML models over datasets."""


for command in (*stack.COMMANDS, *client.COMMANDS):
    main.add_command(command)

if __name__ == "__main__":
    main()
