"""What every unit test shares: no test reads the developer's own `modelhub login` profiles."""

import pytest


@pytest.fixture(autouse=True)
def _no_login_profiles(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.delenv("MODELHUB_PROFILE", raising=False)
