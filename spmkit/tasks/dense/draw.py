"""Drawing predictions onto images (uint8 ``(3, H, W)`` tensors): boxes and masks with torchvision, captions
(text on a filled box in a contrasting colour) and legends with PIL."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import draw_bounding_boxes, draw_segmentation_masks


def palette(n: int, seed: int = 7) -> torch.Tensor:
    """``(n, 3)`` uint8 distinct-ish colours, the same for the same ``n`` and ``seed``."""
    g = torch.Generator().manual_seed(seed)
    hues = (torch.arange(n, dtype=torch.float32) * 0.618034 + torch.rand((), generator=g)) % 1.0
    rgb = []
    for h in hues.tolist():  # HSV (h, 0.75, 0.95) -> RGB
        i, f = int(h * 6) % 6, h * 6 - int(h * 6)
        v, s = 0.95, 0.75
        p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
        rgb.append([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])
    return (torch.tensor(rgb) * 255).round().to(torch.uint8)


def draw_detections(
    image: torch.Tensor,
    prediction: dict[str, torch.Tensor],
    class_names: list[str],
    *,
    score_threshold: float = 0.5,
    mask_threshold: float = 0.5,
    alpha: float = 0.45,
) -> tuple[torch.Tensor, int]:
    """Boxes with ``name score`` captions (and masks when present) for detections above ``score_threshold``.

    ``prediction`` uses torchvision's format with labels 1..K. Returns the drawn image and the count drawn.
    """
    keep = prediction["scores"] >= score_threshold
    boxes, labels, scores = prediction["boxes"][keep], prediction["labels"][keep], prediction["scores"][keep]
    colours = palette(max(len(class_names), 1))
    cols = [tuple(int(c) for c in colours[(int(l) - 1) % len(colours)]) for l in labels]
    out = image
    if "masks" in prediction and len(boxes):
        masks = prediction["masks"][keep][:, 0] > mask_threshold
        out = draw_segmentation_masks(out, masks, alpha=alpha, colors=cols)
    if len(boxes):
        captions = [f"{class_names[int(l) - 1] if 0 < int(l) <= len(class_names) else int(l)} {float(s):.2f}"
                    for l, s in zip(labels, scores)]
        out = draw_bounding_boxes(out, boxes, colors=cols, width=2)
        out = draw_captions(out, [(float(b[0]), float(b[1])) for b in boxes], captions, cols)
    return out, int(len(boxes))


def text_colour(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb`` (relative luminance, ITU-R BT.709)."""
    r, g, b = rgb
    return (0, 0, 0) if 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 else (255, 255, 255)


def _font(size: int = 11):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:
        return ImageFont.load_default()


def draw_captions(image: torch.Tensor, anchors: list[tuple[float, float]], captions: list[str],
                  colours: list[tuple[int, int, int]]) -> torch.Tensor:
    """Each caption on a box filled with its colour, in black or white text, at the top-left ``anchors``
    (above the point when there is room, else just inside)."""
    from PIL import Image, ImageDraw

    pil = Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())
    draw = ImageDraw.Draw(pil)
    font = _font()
    for (x, y), text, colour in zip(anchors, captions, colours):
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 4, bottom - top + 3
        x0 = int(min(max(x, 0), max(pil.width - w, 0)))
        y0 = int(y - h if y - h >= 0 else max(y, 0))
        draw.rectangle((x0, y0, x0 + w - 1, y0 + h - 1), fill=tuple(colour))  # PIL ends are inclusive
        draw.text((x0 + 2 - left, y0 + 1 - top), text, fill=text_colour(tuple(colour)), font=font)
    return torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)


def draw_segmentation(image: torch.Tensor, label_map: torch.Tensor, num_classes: int, alpha: float = 0.5) -> torch.Tensor:
    """Blend a ``(H, W)`` class map (values ``0..num_classes-1``) over the image in per-class colours."""
    colours = palette(num_classes).to(torch.float32)
    overlay = colours[label_map.long().clamp(0, num_classes - 1)].permute(2, 0, 1)
    return (image.float() * (1 - alpha) + overlay * alpha).round().clamp(0, 255).to(torch.uint8)


def add_legend(image: torch.Tensor, entries: list[tuple[str, int]], num_classes: int,
               max_entries: int = 20) -> torch.Tensor:
    """``image`` with a legend strip on its right: a swatch in the class colour of :func:`draw_segmentation`
    and the name for each ``(name, class index)`` of ``entries`` (the first ``max_entries``)."""
    from PIL import Image, ImageDraw

    colours = palette(num_classes)
    font = _font()
    entries = entries[:max_entries]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = max((probe.textbbox((0, 0), name, font=font)[3] for name, _ in entries), default=10) + 6
    text_w = max((probe.textbbox((0, 0), name, font=font)[2] for name, _ in entries), default=0)
    h, w = image.shape[-2:]
    strip_w = 12 + 14 + 6 + text_w + 8
    canvas = Image.new("RGB", (w + strip_w, max(h, 8 + line_h * len(entries))), (255, 255, 255))
    canvas.paste(Image.fromarray(image.permute(1, 2, 0).contiguous().numpy()), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for k, (name, idx) in enumerate(entries):
        y = 4 + k * line_h
        colour = tuple(int(c) for c in colours[idx])
        draw.rectangle((w + 8, y, w + 22, y + line_h - 4), fill=colour, outline=(0, 0, 0))
        draw.text((w + 28, y), name, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.asarray(canvas).copy()).permute(2, 0, 1)


def contact_sheet(images: list[torch.Tensor], captions: list[list[str]], thumb: int = 160,
                  columns: int = 4) -> torch.Tensor:
    """A grid of ``thumb``-pixel thumbnails, each with its caption lines on a dark band underneath
    (classification predictions of a folder in one PNG)."""
    from PIL import Image, ImageDraw

    font = _font()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = probe.textbbox((0, 0), "Ag", font=font)[3] + 3
    lines = max((len(c) for c in captions), default=0)
    cell_w, cell_h = thumb + 8, thumb + 8 + lines * line_h + 4
    cols = max(1, min(columns, len(images)))
    rows = (len(images) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * cell_w, max(rows, 1) * cell_h), (32, 32, 32))
    draw = ImageDraw.Draw(sheet)
    for k, (img, caption) in enumerate(zip(images, captions)):
        x, y = (k % cols) * cell_w + 4, (k // cols) * cell_h + 4
        pil = Image.fromarray(img.permute(1, 2, 0).contiguous().numpy())
        scale = thumb / max(pil.width, pil.height)  # small images are enlarged too, pixels kept sharp
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.NEAREST if scale > 1 else Image.BICUBIC)
        sheet.paste(pil, (x + (thumb - pil.width) // 2, y + (thumb - pil.height) // 2))
        for j, text in enumerate(caption):
            # clip to the cell: long class names must not run into the neighbour
            while text and probe.textbbox((0, 0), text, font=font)[2] > thumb:
                text = text[:-2] + "…" if len(text) > 2 else ""
            draw.text((x, y + thumb + 4 + j * line_h), text, fill=(255, 255, 255) if j == 0 else (200, 200, 200),
                      font=font)
    return torch.from_numpy(np.asarray(sheet).copy()).permute(2, 0, 1)
