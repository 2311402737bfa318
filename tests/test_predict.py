"""``spmkit predict`` on classification runs (an image, a folder, --json, a contact sheet) and the drawing
helpers that make labels readable (captions on filled boxes, segmentation legends)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from imagefolder_util import make_imagefolder, train_args
from PIL import Image
from typer.testing import CliRunner

from spmkit.cli.app import app
from spmkit.tasks.dense.draw import add_legend, draw_captions, palette, text_colour

runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pred")
    data = make_imagefolder(root / "data", classes=6, train_per_class=2, val_per_class=1)
    out = root / "run"
    res = runner.invoke(app, train_args(data, out, 1, 4))
    assert res.exit_code == 0, res.output
    return out, data


def test_predict_json_gives_top5_with_probabilities_for_each_image(run: tuple[Path, Path]) -> None:
    out, data = run
    res = runner.invoke(app, ["predict", "--checkpoint", str(out / "best.pt"), str(data / "val"), "--json",
                              "--device", "cpu"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    files = sorted((data / "val").rglob("img_*"))
    assert doc["task"] == "classification" and [p["image"] for p in doc["predictions"]] == [str(f) for f in files]
    classes = [f"class_{c:02d}" for c in range(6)]
    for p in doc["predictions"]:
        top = p["top5"]
        assert len(top) == 5 and len({t["class"] for t in top}) == 5 and {t["class"] for t in top} <= set(classes)
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-5
        assert p["class"] == top[0]["class"] and classes[top[0]["index"]] == top[0]["class"]
    # the probabilities are the model's softmax, the same for the image on its own
    one = runner.invoke(app, ["predict", "-c", str(out / "best.pt"), str(files[0]), "--json", "--device", "cpu"])
    single = json.loads(one.stdout)
    first = doc["predictions"][0]["top5"]
    assert [t["class"] for t in single["top5"]] == [t["class"] for t in first] and single["image"] == str(files[0])
    assert [t["probability"] for t in single["top5"]] == pytest.approx([t["probability"] for t in first], abs=1e-5)


def test_predict_table_and_contact_sheet(run: tuple[Path, Path], tmp_path: Path) -> None:
    out, data = run
    sheet = tmp_path / "sheet.png"
    res = runner.invoke(app, ["predict", "-c", str(out / "last.pt"), str(data / "val"), "-o", str(sheet),
                              "--top-k", "2", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert "#2" in res.output and "#3" not in res.output and f"wrote {sheet}" in " ".join(res.output.split())
    img = np.asarray(Image.open(sheet))
    assert img.shape[1] > 4 * 100 and img.shape[0] > 2 * 100  # 6 thumbnails in rows of 4


def test_predict_errors_exit_2(run: tuple[Path, Path], tmp_path: Path) -> None:
    out, _ = run
    res = runner.invoke(app, ["predict", "-c", str(out / "best.pt"), str(tmp_path / "nothing")])
    assert res.exit_code == 2 and "does not exist" in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["predict", "-c", str(out / "best.pt"), str(tmp_path / "empty")])
    assert res.exit_code == 2 and "holds no images" in res.output


def test_caption_text_contrasts_with_its_filled_box() -> None:
    assert text_colour((255, 255, 0)) == (0, 0, 0) and text_colour((0, 0, 160)) == (255, 255, 255)
    image = torch.full((3, 60, 120), 128, dtype=torch.uint8)
    for colour in ((250, 250, 40), (20, 20, 140)):
        drawn = draw_captions(image, [(10.0, 40.0)], ["cat 0.93"], [colour]).permute(1, 2, 0).numpy()
        ys, xs = np.nonzero((drawn != 128).any(-1))
        box = drawn[ys.min():ys.max() + 1, xs.min():xs.max() + 1].reshape(-1, 3)
        fill = (box == colour).all(-1).mean()
        lum = box.astype(float) @ np.array([0.2126, 0.7152, 0.0722])
        toward_text = (lum - np.dot(colour, [0.2126, 0.7152, 0.0722])) * (1 if text_colour(colour)[0] else -1)
        ink = (toward_text > 80).mean()  # antialiased glyphs: pixels well on the text colour's side of the fill
        assert ys.max() < 40 and fill > 0.5 and ink > 0.05  # above the anchor, filled, with legible text


def test_legend_lists_classes_in_their_map_colours() -> None:
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    out = add_legend(image, [("wall 60%", 2), ("sky 40%", 5)], num_classes=8).permute(1, 2, 0).numpy()
    assert out.shape[0] >= 40 and out.shape[1] > 40 and (out[:40, :40] == 0).all()
    strip = out[:, 40:].reshape(-1, 3)
    for idx in (2, 5):
        assert (strip == palette(8)[idx].numpy()).all(-1).sum() > 20
    assert not (strip == palette(8)[3].numpy()).all(-1).any()
