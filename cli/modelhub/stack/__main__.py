"""`python -m modelhub.stack supervise`: the supervisor process `modelhub up --detach` starts."""

from modelhub.stack.lifecycle import internal

internal()
