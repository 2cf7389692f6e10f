"""Thumbnails read only what they may, and always re-encode: the guards of modelhub_gateway.media."""

import io
import os

import pytest
from PIL import Image

from modelhub_gateway import media


def png(path, size=(8, 8), color=(200, 10, 10)):
    Image.new("RGB", size, color).save(path)
    return path


def test_an_image_under_a_media_root_becomes_a_jpeg_of_the_asked_size(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    image = png(root / "digit.png", (8, 4))
    path = media.allowed_file(str(image), media.parse_roots(str(root)), tmp_path / "hub")
    data = media.picture(path, 64, tmp_path / "cache")
    out = Image.open(io.BytesIO(data))
    assert out.format == "JPEG" and out.size == (64, 32)
    assert data != image.read_bytes()


def test_the_cache_answers_the_same_bytes_and_notices_a_changed_file(tmp_path):
    image = png(tmp_path / "a.png")
    first = media.picture(image, 64, tmp_path / "cache")
    assert media.picture(image, 64, tmp_path / "cache") == first
    png(image, color=(0, 0, 250))
    os.utime(image, ns=(1, 10**18))  # a new mtime, whatever the clock's resolution
    assert media.picture(image, 64, tmp_path / "cache") != first


def test_a_file_outside_every_media_root_is_refused(tmp_path):
    (tmp_path / "media").mkdir()
    image = png(tmp_path / "elsewhere.png")
    with pytest.raises(media.MediaRefused) as refused:
        media.allowed_file(str(image), media.parse_roots(str(tmp_path / "media")), tmp_path / "hub")
    assert refused.value.status == 403


def test_a_symlink_inside_a_root_that_points_outside_it_is_refused(tmp_path):
    root = tmp_path / "media"
    root.mkdir()
    outside = png(tmp_path / "secret.png")
    (root / "link.png").symlink_to(outside)
    with pytest.raises(media.MediaRefused) as refused:
        media.allowed_file(str(root / "link.png"), media.parse_roots(str(root)), tmp_path / "hub")
    assert refused.value.status == 403


def test_nothing_inside_the_hubs_data_dir_is_served_even_without_roots(tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    token = hub / "admin-token"
    token.write_text("secret")
    with pytest.raises(media.MediaRefused) as refused:
        media.allowed_file(str(token), (), hub)
    assert refused.value.status == 403


def test_a_file_that_is_not_an_image_is_refused_not_served(tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    with pytest.raises(media.MediaRefused) as refused:
        media.picture(text, 64, tmp_path / "cache")
    assert refused.value.status == 415


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a 40x40 image now counts as a bomb
    bomb = png(tmp_path / "bomb.png", (40, 40))
    with pytest.raises(media.MediaRefused) as refused:
        media.picture(bomb, 64, tmp_path / "cache")
    assert refused.value.status == 413


def test_a_missing_file_is_a_404(tmp_path):
    with pytest.raises(media.MediaRefused) as refused:
        media.allowed_file(str(tmp_path / "gone.png"), (), tmp_path / "hub")
    assert refused.value.status == 404
