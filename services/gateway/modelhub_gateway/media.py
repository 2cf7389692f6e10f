"""Pictures of image samples for the web UI: a thumbnail for the grid, a preview for the sample view.

A sample's filepath is whatever its owner typed, so reading it is guarded: the gateway only opens a
path that the dataset holds (the route looks the sample up first), only under the media roots the
operator configured (`MODELHUB_MEDIA_ROOTS`; when none are set, any path a dataset holds), never
inside the hub's own data dir, never through a symlink that leaves those roots, and never a file
over `MAX_FILE_BYTES`. The answer is always decoded and re-encoded by Pillow (a JPEG), never the
file's own bytes, so a non-image (a token file, a zip) is refused rather than served. Decoding
runs in a thread and is cached on disk by path, modification time, size and requested size.
"""

import hashlib
import io
import os
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from modelhub_contracts.errors import DomainError

MAX_FILE_BYTES = 64 * 1024 * 1024
# Pillow warns past MAX_IMAGE_PIXELS (~89 Mpx) and raises past twice that; both are refused here.
MAX_PIXELS = Image.MAX_IMAGE_PIXELS
SIZES = (64, 1024)  # smallest and largest edge a caller may ask for


class MediaRefused(DomainError):
    """The picture cannot be made; `status` says how the route answers (404, 403, 413, 415: the
    last two are kinds of their own, of no use outside this module)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_roots(value: str) -> tuple[Path, ...]:
    """`MODELHUB_MEDIA_ROOTS` is a PATH-like list (os.pathsep-separated) of directories."""
    return tuple(Path(p).resolve() for p in value.split(os.pathsep) if p.strip())


def allowed_file(filepath: str, roots: tuple[Path, ...], data_dir: Path) -> Path:
    """The real file behind `filepath` if the gateway may read it; MediaRefused otherwise."""
    try:
        real = Path(filepath).resolve(strict=True)
    except (OSError, RuntimeError):
        raise MediaRefused(404, "the sample's file does not exist") from None
    if real.is_relative_to(Path(data_dir).resolve()):
        raise MediaRefused(403, "files inside the hub's data directory are never served")
    if roots and not any(real.is_relative_to(root) for root in roots):
        raise MediaRefused(403, "the sample's file is outside the configured media roots (MODELHUB_MEDIA_ROOTS)")
    if not real.is_file():
        raise MediaRefused(404, "the sample's path is not a file")
    if real.stat().st_size > MAX_FILE_BYTES:
        raise MediaRefused(413, f"the sample's file is over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    return real


def picture(path: Path, size: int, cache_dir: Path) -> bytes:
    """A JPEG of the image at `path` whose longer edge is `size` pixels, from the cache when fresh."""
    stat = path.stat()
    key = hashlib.sha256(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\0{size}".encode()).hexdigest()
    cached = cache_dir / key[:2] / f"{key}.jpg"
    if cached.exists():
        return cached.read_bytes()
    data = _render(path, size)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(cached)  # atomic: a concurrent reader sees the whole file or none
    return data


def _render(path: Path, size: int) -> bytes:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
                image = ImageOps.exif_transpose(image)
                image = image.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MediaRefused(413, f"the image has more than {MAX_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise MediaRefused(415, "the sample's file is not an image Pillow can read") from None
    scale = size / max(image.size)
    # Tiny images (8x8 digits) are scaled up with hard edges, large ones down smoothly.
    resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
    image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), resample)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()
