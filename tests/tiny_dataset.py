"""A hand-made FashionIQ-format dataset small enough to train on in seconds.

Coloured shapes on a white background; every caption names the target colour, so a model that
learns anything at all must get better than chance on it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 220), "green": (30, 160, 60),
           "yellow": (240, 210, 40), "black": (20, 20, 20), "purple": (130, 40, 160)}
SHAPES = ("square", "circle", "triangle")


def draw(colour: str, shape: str, size: int = 64, jitter: int = 0) -> Image.Image:
    image = Image.new("RGB", (size, size), (250, 250, 250))
    d = ImageDraw.Draw(image)
    box = (12 + jitter, 12, size - 12 + jitter, size - 12)
    if shape == "square":
        d.rectangle(box, fill=COLOURS[colour])
    elif shape == "circle":
        d.ellipse(box, fill=COLOURS[colour])
    else:
        d.polygon([(size // 2 + jitter, 10), (10 + jitter, size - 10),
                   (size - 10 + jitter, size - 10)], fill=COLOURS[colour])
    return image


def write_tiny_dataset(root: Path, seed: int = 0) -> Path:
    """root/images/*.png plus flat-form train.json and val.json; returns root."""
    rng = random.Random(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    ids = {}
    for colour in COLOURS:
        for shape in SHAPES:
            for variant in range(2):
                item = f"{shape}_{colour}_{variant}"
                draw(colour, shape, jitter=3 * variant).save(root / "images" / f"{item}.png")
                ids[(colour, shape, variant)] = item
    for split, variant in (("train", 0), ("val", 1)):
        entries = []
        for (colour, shape, v), ref in ids.items():
            if v != variant:
                continue
            for other in rng.sample([c for c in COLOURS if c != colour], 3):
                entries.append({"candidate": ref, "target": ids[(other, shape, variant)],
                                "captions": [f"is {other}", f"{other} coloured"],
                                "category": "shapes"})
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root
