"""The `integration` NATS user of the embedded stack: how another system joins the bus.

It may publish only commands (`modelhub.ext.cmd.>`) and subscribe only to its own inbox prefix, so
it cannot publish the services' internal events, read their traffic, or read other clients'
replies; what each command may do is decided by the user's API token it carries (checked by the
gateway). Its URL, with the password, is `integration_nats_url` in DIR/credentials.json (0600).
A client must use INBOX_PREFIX as its inbox prefix (nats-py: `nats.connect(url, inbox_prefix=...)`).
"""

import json

NATS_USER = "integration"
COMMANDS = "modelhub.ext.cmd.>"  # modelhub_contracts.subjects.EXT_COMMANDS (the CLI imports no service)
INBOX_PREFIX = f"_INBOX_ext.{NATS_USER}"


def nats_user_entry(password: str) -> str:
    """The user's entry in nats.conf's `authorization.users`."""
    permissions = {"publish": {"allow": [COMMANDS]}, "subscribe": {"allow": [f"{INBOX_PREFIX}.>"]}}
    return (
        f"    {{user: {json.dumps(NATS_USER)}, password: {json.dumps(password)}, "
        f"permissions: {json.dumps(permissions)}}}"
    )
