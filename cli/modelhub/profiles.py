"""Named connection profiles: `modelhub login URL` stores a gateway URL and its token in
`$XDG_CONFIG_HOME/modelhub/config.toml` (default `~/.config/modelhub/config.toml`), one TOML table
per profile, so that a user of a remote hub types neither on every command.

The file holds tokens: it is written at mode 0600 from the start and replaced atomically. Which
profile applies, and that a flag or an environment variable wins over it, is modelhub.settings'.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from modelhub.private import write_private

DEFAULT_PROFILE = "default"


def read_all(path: Path) -> dict[str, dict[str, str]]:
    """Every profile in the file ({} when there is none); a table that is not a profile is ignored."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    return {
        name: {k: v for k, v in table.items() if k in ("url", "token") and isinstance(v, str)}
        for name, table in data.items()
        if isinstance(table, dict)
    }


def load(path: Path, name: str) -> dict[str, str]:
    """The profile's {"url", "token"} (either may be missing), {} when there is no such profile."""
    return read_all(path).get(name, {})


def _toml(profiles: dict[str, dict[str, str]]) -> str:
    # JSON's string escapes are valid in TOML's basic strings (keys and values alike)
    lines = ["# written by `modelhub login`; holds tokens (mode 0600)"]
    for name, table in sorted(profiles.items()):
        lines += ["", f"[{json.dumps(name)}]", *(f"{k} = {json.dumps(v)}" for k, v in sorted(table.items()))]
    return "\n".join(lines) + "\n"


def save(path: Path, name: str, url: str, token: str) -> None:
    """Store (or replace) profile `name`, keeping the others."""
    profiles = read_all(path)
    profiles[name] = {"url": url, "token": token}
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, _toml(profiles))
