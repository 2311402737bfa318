"""Image bytes -> RGB PIL image, one place for every source that holds encoded images (shards, Hugging Face)."""

from __future__ import annotations

import io

from PIL import Image

from spmkit.data.unreadable import UnreadableImage

#: file suffixes of encoded images inside webdataset shards (``<key>.<suffix>``)
IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "pgm", "tif", "tiff")


def decode_image(data: bytes | None, where: str) -> Image.Image:
    """Decode encoded image bytes to RGB; :class:`UnreadableImage` naming ``where`` when they cannot be."""
    if not data:
        raise UnreadableImage(f"{where} (no image bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except Exception as e:  # noqa: BLE001 - PIL raises many types for broken data
        detail = "not an image format PIL reads" if "<_io.BytesIO" in str(e) else str(e)[:200]
        raise UnreadableImage(f"{where} ({type(e).__name__}: {detail})") from None
