"""`modelhub` command line: stack control (up/down/status), `login`, and the HTTP API client
commands (the commands live in modelhub.commands, one module per resource; exit codes in
modelhub.exitcodes)."""

import click

from modelhub.commands import all_commands
from modelhub.settings import PROFILE_ENV


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="modelhub", prog_name="modelhub")
@click.option(
    "--profile",
    default=None,
    envvar=PROFILE_ENV,
    show_envvar=True,
    help="The `modelhub login` profile for URL and token (default: `default`).",
)
def main(profile: str | None) -> None:
    """modelhub: register, deploy, share and run ML models over datasets.

    Exit codes: 0 ok, 1 other error, 2 usage, 3 stack down or gateway unreachable, 4 job with
    failed samples, 5 not found, 6 forbidden or no/wrong token, 7 conflict, 8 invalid request,
    9 server error or busy, 130 interrupted.
    """


for command in all_commands():
    main.add_command(command)

if __name__ == "__main__":
    main()
