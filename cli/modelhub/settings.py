"""Every environment variable the `modelhub` command reads, in one place (`CliSettings`).

Why one class: so that what the CLI honours can be listed in one place. Each variable is a typed field; the click options that have one name it with `envvar=`
(so `--help` shows it), and the rest of the CLI asks `CliSettings` instead of the environment.
Settings are read when asked (`CliSettings()`), not at import, so a caller (or a test) that changes
the environment sees the change. An empty variable counts as unset.

The only other use of `os.environ` is handing an environment to child processes (stack, sandbox).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modelhub import profiles

API_PREFIX = "/api/v1"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_DATA_DIR = "~/.modelhub"

URL_ENV = "MODELHUB_URL"
TOKEN_ENV = "MODELHUB_TOKEN"
DATA_DIR_ENV = "MODELHUB_DATA_DIR"
PROFILE_ENV = "MODELHUB_PROFILE"


class CliSettings(BaseSettings):
    """What the environment tells the CLI (all optional; secrets have no default)."""

    model_config = SettingsConfigDict(env_prefix="MODELHUB_", env_ignore_empty=True, extra="ignore")

    url: str | None = Field(default=None, description="The gateway URL the API commands talk to.")
    token: str | None = Field(default=None, repr=False, description="The API token (else DIR/admin-token).")
    profile: str = Field(
        default=profiles.DEFAULT_PROFILE, description="The `modelhub login` profile giving URL and token."
    )
    xdg_config_home: str | None = Field(
        default=None,
        validation_alias=AliasChoices("XDG_CONFIG_HOME"),
        description="Where the profiles' config.toml lives (the XDG base directory; default ~/.config).",
    )
    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="The stack's data dir DIR.")
    admin_token: str | None = Field(
        default=None, repr=False, description="`up`: the admin's token, instead of DIR/admin-token."
    )
    nats_url: str | None = Field(default=None, repr=False, description="`up`: an external NATS (no embedded one).")
    mongo_url: str | None = Field(default=None, repr=False, description="`up`: an external MongoDB.")
    cluster: int = Field(
        default=1,
        ge=1,
        le=7,
        description="`up --cluster N`: N nats-servers in one JetStream cluster and an N-member MongoDB replica set.",
    )
    ray_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("RAY_ADDRESS"),
        description="`up`: an external Ray cluster (Ray's own variable).",
    )
    allow_unsealed: bool = Field(
        default=False,
        description="`up --allow-unsealed`: run models as plain processes where bubblewrap cannot jail them.",
    )
    log_max_bytes: int = Field(default=20 * 1024 * 1024, description="Rotate a log file past this size.")
    log_keep: int = Field(default=3, description="Rotated log files kept besides the live one.")

    @field_validator("token", mode="after")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        value = value.strip() if value is not None else None
        return value or None

    def data_path(self, given: str | os.PathLike[str] | None = None) -> Path:
        """DIR: `given` (a --data-dir), else MODELHUB_DATA_DIR, else ~/.modelhub (absolute)."""
        return Path(given or self.data_dir).expanduser().resolve()

    def gateway_url(self, given: str | None = None) -> str:
        """The gateway's base URL: `given` (--url), else MODELHUB_URL, else the login profile's, else
        the running stack's (`gateway_url` in DIR/state.json), else http://127.0.0.1:8000; without a
        trailing /api/v1."""
        url = given or self.url or self.profile_values().get("url") or self._state_gateway_url() or DEFAULT_URL
        return url.rstrip("/").removesuffix(API_PREFIX)

    def api_token(self, url: str | None = None) -> str | None:
        """MODELHUB_TOKEN, else the login profile's, else the stack's DIR/admin-token, else None.
        The profile's token goes only to the profile's own URL: with `url` (the one in use) another
        gateway never sees it."""
        if self.token:
            return self.token
        profile = self.profile_values()
        if profile.get("token") and (url is None or _same_url(url, profile.get("url"))):
            return profile["token"]
        try:
            return self.token_file().read_text().strip() or None
        except OSError:
            return None

    def config_path(self) -> Path:
        """The profiles' file: $XDG_CONFIG_HOME/modelhub/config.toml (default ~/.config/...)."""
        return Path(self.xdg_config_home or "~/.config").expanduser() / "modelhub" / "config.toml"

    def profile_values(self) -> dict[str, str]:
        """The selected profile's {"url", "token"}; {} without one. ValueError: the file is unreadable."""
        return profiles.load(self.config_path(), self.profile)

    def client_dir(self) -> Path:
        """DIR as the API commands name it in messages (not resolved)."""
        return Path(self.data_dir).expanduser()

    def token_file(self) -> Path:
        return self.client_dir() / "admin-token"

    def _state_gateway_url(self) -> str | None:
        try:
            state = json.loads((self.client_dir() / "state.json").read_text())
        except (OSError, ValueError):
            return None
        url = state.get("gateway_url") if isinstance(state, dict) else None
        return url if isinstance(url, str) else None


def _same_url(a: str, b: str | None) -> bool:
    return b is not None and a.rstrip("/").removesuffix(API_PREFIX) == b.rstrip("/").removesuffix(API_PREFIX)
