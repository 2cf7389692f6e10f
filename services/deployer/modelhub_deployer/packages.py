"""Model packages: download from the NATS object store, verify, unpack. Never imported here."""

import asyncio
import hashlib
import shutil
from pathlib import Path

from faststream.nats import NatsBroker

from modelhub_contracts import subjects
from modelhub_contracts.package import PackageLimits, safe_extract
from modelhub_deployer.deploy import DeployError, PreparedPackage


class ObjectStorePackages:
    """Unpacks a deployment's package into `DATA_DIR/deployments/<name>/package/` (the deployer
    reads its pip/conda files there) and keeps the verified zip beside it for the cluster's store.
    Replicas never read these paths: they fetch the zip from the Ray cluster by sha-256."""

    def __init__(self, broker: NatsBroker, data_dir: Path, limits: PackageLimits | None = None) -> None:
        self._broker, self._root = broker, Path(data_dir) / "deployments"
        self._limits = limits or PackageLimits()

    async def prepare(self, name: str, package_object: str, sha256: str) -> PreparedPackage:
        """Stream the zip to disk, check its sha256, and extract it safely (a fresh copy)."""
        folder = self._root / name
        folder.mkdir(parents=True, exist_ok=True)
        zip_path, package_dir = folder / "package.zip", folder / "package"
        store = await self._broker.object_storage(subjects.PACKAGES_BUCKET, declare=False)
        with zip_path.open("wb") as fh:
            await store.get(package_object, writeinto=fh)
        try:
            digest = await asyncio.to_thread(_sha256, zip_path)
            if digest != sha256:
                raise DeployError(f"package {package_object} has sha256 {digest}, expected {sha256}")
            await asyncio.to_thread(shutil.rmtree, package_dir, True)
            info = await asyncio.to_thread(safe_extract, zip_path, package_dir, self._limits)
        except BaseException:
            zip_path.unlink(missing_ok=True)
            raise
        return PreparedPackage(
            package_dir, zip_path, info.entrypoint, info.has_requirements, info.has_environment, info.format
        )


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
