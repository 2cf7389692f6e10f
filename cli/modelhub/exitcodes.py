"""The `modelhub` command's exit codes, one named constant each, so that a script can tell a typo
from a missing model, a refused token, a stack that is down and a job that lost samples.

docs/API.md (section "The command line") lists them; `exit_code_for_status` is the one place an
HTTP status becomes an exit code.
"""

from __future__ import annotations

OK = 0
ERROR = 1  # anything not named below (a deployment that failed, a timeout, an answer declined)
USAGE = 2  # click's own: a wrong option or argument, a delete without --yes off a terminal
STACK_DOWN = 3  # `status`: something is not running; any command: the gateway cannot be reached
JOB_FAILED = 4  # a followed job ended with failed samples, or failed, or was cancelled
NOT_FOUND = 5  # 404: no such resource (or one the caller may not see)
FORBIDDEN = 6  # 401/403: no token, a wrong token, or not allowed
CONFLICT = 7  # 409: the resource's state refuses it (exists already, in use, a job running)
INVALID = 8  # 400/413/415/422: the request itself was refused
SERVER = 9  # 5xx or 429: the hub failed or is busy; trying again later may work
INTERRUPTED = 130  # Ctrl-C while following a job (the shell's 128 + SIGINT)

_BY_STATUS = {404: NOT_FOUND, 401: FORBIDDEN, 403: FORBIDDEN, 409: CONFLICT, 429: SERVER}


def exit_code_for_status(status: int) -> int:
    """The exit code for an API error with this HTTP status."""
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return SERVER
    if 400 <= status < 500:
        return INVALID
    return ERROR
