"""Names of models, deployments, datasets and users.

1-64 letters, digits, '-', '_' and '.', but not only dots: '.' and '..' would be path segments
in URLs and on disk (a deployment's package folder is named after it).
"""

import re

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
NAME_RULE = "1-64 letters, digits, '-', '_' or '.', and not only dots"
_NAME_RE = re.compile(NAME_PATTERN)


def is_valid_name(value: str) -> bool:
    return bool(_NAME_RE.match(value)) and value.strip(".") != ""


def valid_name(value: str) -> str:
    """Pydantic AfterValidator: the name, or ValueError naming the rule."""
    if not is_valid_name(value):
        raise ValueError(f"name must be {NAME_RULE}")
    return value


# A model's alias (`prod`, `staging`, `champion-2`): a letter, then up to 63 letters, digits, '_' or
# '-'. No '.' or '$': an alias is a key of the model document's `aliases` (a MongoDB path), and the
# deploy body names it as "@<alias>".
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
ALIAS_RULE = "a letter, then up to 63 letters, digits, '_' or '-'"
_ALIAS_RE = re.compile(ALIAS_PATTERN)


def is_valid_alias(value: str) -> bool:
    return bool(_ALIAS_RE.match(value))
