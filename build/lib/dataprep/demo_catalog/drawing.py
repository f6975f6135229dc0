"""Drawing one garment as a product photo: its outline, pattern, shading and background.

Pure functions of (category, attributes, seed, config): the same inputs give the same pixels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from dataprep.demo_catalog.attributes import COLOURS, DemoCatalogConfig

Point = tuple[float, float]


def _bezier(p0: Point, p1: Point, p2: Point, n: int = 8) -> list[Point]:
    """Quadratic Bezier from p0 to p2 with control p1 (n+1 points, both ends included)."""
    pts = []
    for i in range(n + 1):
        t = i / n
        a, b, c = (1 - t) ** 2, 2 * (1 - t) * t, t * t
        pts.append((a * p0[0] + b * p1[0] + c * p2[0], a * p0[1] + b * p1[1] + c * p2[1]))
    return pts


def _mirror(points: Sequence[Point]) -> list[Point]:
    return [(1.0 - x, y) for x, y in points]


@dataclass
class _Shape:
    """A garment in canonical units (x, y in [0, 1], centre line x = 0.5)."""

    body: list[Point]  # closed outline of the torso/skirt
    sleeves: list[list[Point]]  # closed outlines, drawn behind the body
    neck_hole: list[Point]  # inside of the back, drawn darker
    overlays: list[list[Point]]  # collar flaps / bands: fabric drawn on top, outlined
    lines: list[list[Point]]  # seams, hems, placket edges, cuffs (drawn as thin dark lines)
    buttons: list[Point]
    folds: list[tuple[float, float, float]]  # (x at top, slope dx/dy, y start) soft shadows
    waist_y: float | None = None  # dresses: folds radiate from the waist


def _sleeve(
    shoulder: Point, armpit: Point, angle_deg: float, length: float, cuff: float
) -> tuple[list[Point], list[Point]]:
    """Left sleeve polygon and its cuff line: leaves the armhole at ``angle_deg`` from vertical."""
    th = math.radians(angle_deg)
    d = (-math.sin(th), math.cos(th))  # down and outward (left)
    n = (math.cos(th), math.sin(th))  # across the sleeve, towards the body
    outer = (shoulder[0] + length * d[0], shoulder[1] + length * d[1])
    inner = (outer[0] + cuff * n[0], outer[1] + cuff * n[1])
    # The underarm seam must leave the armpit roughly parallel to the sleeve.
    mid = ((armpit[0] + inner[0]) / 2 + 0.01 * n[0], (armpit[1] + inner[1]) / 2)
    poly = [shoulder, outer, inner, mid, armpit]
    inset = 0.035 if length > 0.2 else 0.018
    cuff_line = [
        (outer[0] - inset * d[0], outer[1] - inset * d[1]),
        (inner[0] - inset * d[0], inner[1] - inset * d[1]),
    ]
    return poly, cuff_line


def _neck_hole(kind: str, cx: float, y: float, half: float) -> list[Point]:
    """Front neck opening (left-to-right along the top, then the front edge back)."""
    left, right = (cx - half, y), (cx + half, y)
    back = _bezier(left, (cx, y - 0.018), right, 6)  # back neckline, slightly raised
    if kind == "v-neck":
        front = [right, (cx, y + 0.12), left]
    elif kind == "square":
        front = [right, (cx + half * 0.95, y + 0.07), (cx - half * 0.95, y + 0.07), left]
    elif kind == "boat":  # wide and shallow, almost to the shoulders
        wide_l, wide_r = (cx - half * 1.6, y + 0.016), (cx + half * 1.6, y + 0.016)
        back = _bezier(wide_l, (cx, y - 0.004), wide_r, 8)
        front = _bezier(wide_r, (cx, y + 0.08), wide_l, 10)
    else:  # round
        front = _bezier(right, (cx, y + 0.095), left, 10)
    return back + front[1:]


def _top_shape(category: str, attrs: dict[str, str], rng: np.random.Generator) -> _Shape:  # noqa: C901 - one straight-line recipe
    """Shirts and tops/tees: torso, sleeves, neckline or collar, placket for shirts."""
    shirt = category == "shirt"
    j = lambda s: float(rng.uniform(-s, s))  # noqa: E731 - tiny jitter helper
    cx = 0.5
    neck_y = 0.16 + j(0.006)
    neck_half = (0.062 if shirt else 0.068) + j(0.004)
    shoulder_half = (0.205 if shirt else 0.19) + j(0.008)
    chest_half = (0.182 if shirt else 0.168) + j(0.006)
    armpit_y = neck_y + 0.19
    hem_y = {
        "cropped": 0.58,
        "regular": 0.74,
        "longline": 0.86,
        "tunic": 0.86,
    }[attrs["length"]] + j(0.008)
    hem_half = chest_half + (0.006 if shirt else 0.012) + j(0.006)
    sleeve = attrs["sleeve"]
    shoulder = (cx - shoulder_half, neck_y + 0.038)
    armpit = (cx - chest_half, armpit_y)
    left: list[Point] = [(cx - neck_half, neck_y)]
    if sleeve == "sleeveless":
        strap = (cx - neck_half - 0.055, neck_y + 0.004)
        left += [strap] + _bezier(strap, (cx - chest_half + 0.035, armpit_y - 0.07), armpit, 8)
    else:
        left += [shoulder, armpit]
    waist = (cx - chest_half + 0.014, (armpit_y + hem_y) / 2)
    left.append(waist)
    if shirt:  # curved shirt-tail hem
        left += _bezier(
            (cx - hem_half, hem_y - 0.03), (cx - hem_half, hem_y), (cx - 0.08, hem_y), 6
        )
        left.append((cx, hem_y + 0.012))
    else:
        left += [(cx - hem_half, hem_y), (cx - 0.09, hem_y + 0.006), (cx, hem_y + 0.008)]
    right = _mirror(left[:-1])[::-1]
    body = left + right
    sleeves, lines = [], []
    if sleeve != "sleeveless":
        angle, length, cuff = {
            "short": (52 + j(5), 0.14 + j(0.01), 0.12),
            "three-quarter": (30 + j(4), 0.3 + j(0.015), 0.09),
            "long": (21 + j(3), 0.44 + j(0.015), 0.078),
        }[sleeve]
        poly, cuff_line = _sleeve(shoulder, armpit, angle, length, cuff)
        sleeves = [poly, _mirror(poly)]
        lines += [cuff_line, _mirror(cuff_line)]
        lines += [[shoulder, armpit], _mirror([shoulder, armpit])]  # armhole seams
    overlays: list[list[Point]] = []
    buttons: list[Point] = []
    if shirt:
        neck_hole, overlays, placket_top = _collar(attrs["neckline"], cx, neck_y, neck_half)
        lines += [[(cx - 0.016, placket_top), (cx - 0.016, hem_y + 0.004)]]
        lines += [[(cx + 0.016, placket_top), (cx + 0.016, hem_y + 0.008)]]
        step = 0.075
        y = placket_top + 0.03
        while y < hem_y - 0.025:
            buttons.append((cx, y))
            y += step
        if rng.random() < 0.5 and sleeve != "sleeveless":  # chest pocket
            px = cx - 0.115
            lines.append(
                [
                    (px - 0.045, neck_y + 0.12),
                    (px - 0.045, neck_y + 0.2),
                    (px + 0.045, neck_y + 0.2),
                    (px + 0.045, neck_y + 0.12),
                    (px - 0.045, neck_y + 0.12),
                ]
            )
    else:
        neck_hole = _neck_hole(attrs["neckline"], cx, neck_y, neck_half)
        hem_line = [(cx - hem_half + 0.004, hem_y - 0.022), (cx + hem_half - 0.004, hem_y - 0.022)]
        lines.append(hem_line)
    folds = [
        (cx + float(rng.uniform(-0.12, 0.12)), float(rng.uniform(-0.15, 0.15)), armpit_y)
        for _ in range(int(rng.integers(1, 4)))
    ]
    return _Shape(body, sleeves, neck_hole, overlays, lines, buttons, folds)


def _collar(
    kind: str, cx: float, y: float, half: float
) -> tuple[list[Point], list[list[Point]], float]:
    """Shirt collar: (inside-of-neck polygon, collar flap polygons, where the placket starts)."""
    if kind == "mandarin collar":
        band_out = _bezier((cx - half, y - 0.012), (cx, y + 0.06), (cx + half, y - 0.012), 10)
        band_in = _bezier(
            (cx + half * 0.85, y + 0.012), (cx, y + 0.082), (cx - half * 0.85, y + 0.012), 10
        )
        hole = (
            _bezier((cx - half, y - 0.012), (cx, y - 0.03), (cx + half, y - 0.012), 6)
            + band_out[::-1][1:-1]
        )
        band = band_out + band_in
        return hole, [band], y + 0.045
    if kind == "camp collar":
        hole = [(cx - half, y), (cx + half, y), (cx, y + 0.16)]
        flap = [
            (cx - half, y - 0.008),
            (cx - half - 0.05, y + 0.03),
            (cx - 0.06, y + 0.13),
            (cx - 0.012, y + 0.165),
            (cx - half * 0.45, y + 0.03),
        ]
        return hole, [flap, _mirror(flap)], y + 0.16
    # pointed collar (classic)
    hole = _bezier((cx - half, y), (cx, y - 0.02), (cx + half, y), 6) + [(cx, y + 0.05)]
    flap = [
        (cx - half - 0.004, y - 0.01),
        (cx - half - 0.028, y + 0.04),
        (cx - 0.05, y + 0.105),
        (cx - 0.004, y + 0.055),
        (cx - half * 0.55, y + 0.012),
    ]
    return hole, [flap, _mirror(flap)], y + 0.05


def _dress_shape(attrs: dict[str, str], rng: np.random.Generator) -> _Shape:
    """Fitted bodice, seam at the waist, A-line skirt whose hem sets the length."""
    j = lambda s: float(rng.uniform(-s, s))  # noqa: E731
    cx = 0.5
    neck_y = 0.09 + j(0.005)
    neck_half = 0.058 + j(0.004)
    shoulder_half = 0.148 + j(0.006)
    bust_half = 0.128 + j(0.005)
    armpit_y = neck_y + 0.145
    waist_y = neck_y + 0.27 + j(0.01)
    waist_half = 0.1 + j(0.005)
    hem_y, hem_half = {
        "mini": (0.58, 0.21),
        "knee": (0.74, 0.245),
        "maxi": (0.94, 0.28),
    }[attrs["length"]]
    hem_y += j(0.008)
    hem_half += j(0.012)
    sleeve = attrs["sleeve"]
    shoulder = (cx - shoulder_half, neck_y + 0.03)
    armpit = (cx - bust_half, armpit_y)
    left: list[Point] = [(cx - neck_half, neck_y)]
    if sleeve == "sleeveless":
        strap = (cx - neck_half - 0.042, neck_y + 0.003)
        left += [strap] + _bezier(strap, (cx - bust_half + 0.03, armpit_y - 0.05), armpit, 8)
    else:
        left += [shoulder, armpit]
    left += [(cx - waist_half, waist_y)]
    left += _bezier(
        (cx - waist_half - 0.01, waist_y + 0.04),
        (cx - hem_half * 0.75, hem_y - 0.15),
        (cx - hem_half, hem_y),
        8,
    )
    left += _bezier(
        (cx - hem_half, hem_y), (cx - hem_half * 0.5, hem_y + 0.022), (cx, hem_y + 0.026), 6
    )[1:]
    body = left + _mirror(left[:-1])[::-1]
    sleeves, lines = [], []
    if sleeve != "sleeveless":
        angle, length, cuff = {
            "short": (38 + j(5), 0.1 + j(0.01), 0.1),
            "long": (14 + j(3), 0.4 + j(0.015), 0.066),
        }[sleeve]
        poly, cuff_line = _sleeve(shoulder, armpit, angle, length, cuff)
        sleeves = [poly, _mirror(poly)]
        lines += [cuff_line, _mirror(cuff_line)]
        lines += [[shoulder, armpit], _mirror([shoulder, armpit])]
    lines.append(
        _bezier((cx - waist_half, waist_y), (cx, waist_y + 0.012), (cx + waist_half, waist_y), 6)
    )
    neck_hole = _neck_hole(attrs["neckline"], cx, neck_y, neck_half)
    folds = [
        (cx + float(rng.uniform(-0.6, 0.6)) * waist_half, float(rng.uniform(-0.5, 0.5)), waist_y)
        for _ in range(int(rng.integers(2, 5)))
    ]
    return _Shape(body, sleeves, neck_hole, [], lines, [], folds, waist_y=waist_y)


def garment_shape(category: str, attrs: dict[str, str], rng: np.random.Generator) -> _Shape:
    if category == "dress":
        return _dress_shape(attrs, rng)
    return _top_shape(category, attrs, rng)


@lru_cache(maxsize=4)
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (y, x) in canonical-ish units [0, 1]."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return c[:, None], c[None, :]


def _contrast(rgb: np.ndarray) -> np.ndarray:
    """Pattern colour: near-white on dark fabric, deep navy on light fabric."""
    lum = float(rgb @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.array([0.96, 0.95, 0.92] if lum < 0.55 else [0.12, 0.14, 0.26], np.float32)


def _pattern(
    kind: str, u: np.ndarray, v: np.ndarray, base: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Fabric colour (H, W, 3) at garment-frame coordinates u (across), v (down)."""
    h, w = np.broadcast_shapes(u.shape, v.shape)
    if kind == "solid":
        return np.broadcast_to(base, (h, w, 3)).copy()
    ink = _contrast(base)
    if kind == "striped":
        period = float(rng.uniform(0.03, 0.05))
        duty = float(rng.uniform(0.3, 0.5))
        coord = v if rng.random() < 0.7 else u
        mask = ((coord / period) % 1.0) < duty
    elif kind == "dotted":
        period = float(rng.uniform(0.038, 0.052))
        radius = period * float(rng.uniform(0.2, 0.28))
        row = np.floor(v / period)
        shift = (row % 2) * 0.5 * period
        du = ((u + shift) % period) - period / 2
        dv = (v % period) - period / 2
        mask = du * du + dv * dv < radius * radius
    elif kind == "checked":
        period = float(rng.uniform(0.04, 0.06))
        a = ((u / period) % 1.0) < 0.5
        b = ((v / period) % 1.0) < 0.5
        mix = ((a.astype(np.float32) + b.astype(np.float32)) * 0.42)[..., None]
        return base + (ink - base) * mix
    else:  # floral
        mask, centre = _flowers(u, v, rng)
        out = np.where(mask[..., None], ink, base)
        return np.where(centre[..., None], np.array([0.93, 0.72, 0.2], np.float32), out)
    return np.where(mask[..., None], ink, base)


def _flowers(
    u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Five-petal flowers on a jittered grid: (petal mask, centre mask)."""
    cell = float(rng.uniform(0.065, 0.085))
    jitter = rng.uniform(-0.22, 0.22, size=(2, 7, 7)).astype(np.float32) * cell
    ci = np.floor(u / cell).astype(np.int64) % 7
    cj = np.floor(v / cell).astype(np.int64) % 7
    lu = (u % cell) - cell / 2 - jitter[0][cj, ci]
    lv = (v % cell) - cell / 2 - jitter[1][cj, ci]
    petal_r, ring = cell * 0.17, cell * 0.2
    petals = np.zeros(np.broadcast_shapes(lu.shape, lv.shape), bool)
    turn = float(rng.uniform(0, 2 * math.pi))
    for k in range(5):
        a = turn + k * 2 * math.pi / 5
        du, dv = lu - ring * math.cos(a), lv - ring * math.sin(a)
        petals |= du * du + dv * dv < petal_r * petal_r
    centre = lu * lu + lv * lv < (cell * 0.1) ** 2
    return petals & ~centre, centre


def _transform(points: Sequence[Point], m: tuple[float, ...], size: int) -> list[Point]:
    a, b, c, d, e, f = m
    return [((a * x + b * y + c) * size, (d * x + e * y + f) * size) for x, y in points]


def render_item(
    category: str, attrs: dict[str, str], seed: int, cfg: DemoCatalogConfig
) -> Image.Image:
    """Draw one garment as a product photo (RGB, cfg.image_size square). Pure in its inputs."""
    rng = np.random.default_rng(seed)
    shape = garment_shape(category, attrs, rng)
    size = cfg.image_size * cfg.supersample

    # Pose: rotate/scale about the garment centre, then centre it with a small offset.
    every = shape.body + [p for s in shape.sleeves for p in s]
    xs, ys = [p[0] for p in every], [p[1] for p in every]
    gx, gy = (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2
    extent = max(max(xs) - min(xs), max(ys) - min(ys))
    scale = min(1.0, 0.86 / extent) * float(rng.uniform(0.93, 1.0))
    theta = math.radians(float(rng.uniform(-3.5, 3.5)))
    cos, sin = math.cos(theta) * scale, math.sin(theta) * scale
    tx, ty = 0.5 + float(rng.uniform(-0.02, 0.02)), 0.5 + float(rng.uniform(-0.02, 0.02))
    m = (cos, -sin, tx - cos * gx + sin * gy, sin, cos, ty - sin * gx - cos * gy)

    body = _transform(shape.body, m, size)
    sleeves = [_transform(s, m, size) for s in shape.sleeves]
    overlays = [_transform(o, m, size) for o in shape.overlays]
    mask = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(mask)
    for poly in sleeves + [body] + overlays:
        draw.polygon(poly, fill=255)

    # Fabric: pattern in garment coordinates (so it turns with the garment) times shading,
    # computed only inside the garment's pixel box (about half the canvas).
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, 1, 1)
    py, px = _pixel_grid(size)
    py, px = py[y0:y1], px[:, x0:x1]
    det = cos * cos + sin * sin
    qx, qy = px - tx, py - ty
    u = (cos * qx + sin * qy) / det + gx  # inverse rotation+scale: canonical coords
    v = (-sin * qx + cos * qy) / det + gy
    base = np.asarray(COLOURS[attrs["colour"]], np.float32) / 255.0
    base = np.clip(base * float(rng.uniform(0.95, 1.04)), 0, 1)
    fabric = _pattern(attrs["pattern"], u, v, base, rng)
    shade = _shading(shape, u[::4, ::4], v[::4, ::4], rng)  # smooth: a coarse grid is enough
    shade = np.asarray(
        Image.fromarray(shade, "F").resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
    )
    fabric *= shade[..., None] * 255.0
    np.clip(fabric, 0, 255, out=fabric)
    fabric = fabric.astype(np.uint8)
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[y0:y1, x0:x1] = fabric
    layer = Image.fromarray(canvas, "RGB")  # colour and coverage (mask) kept apart: no RGBA

    ldraw, mdraw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    lum = float(base @ np.array([0.299, 0.587, 0.114], np.float32))
    edge = tuple(
        int(c * 255 * (0.55 if lum > 0.25 else 1.0) + (0 if lum > 0.25 else 70)) for c in base
    )
    inside = tuple(int(c * 255 * 0.62) for c in base)
    seam = tuple(
        int(c * 255 * (0.72 if lum > 0.25 else 1.0) + (0 if lum > 0.25 else 45)) for c in base
    )
    width = max(1, round(size / 256))

    def outline(points: list[Point], w: int) -> None:
        ldraw.line(points + [points[0]], fill=edge, width=w, joint="curve")
        mdraw.line(points + [points[0]], fill=255, width=w, joint="curve")

    hole = _transform(shape.neck_hole, m, size)
    ldraw.polygon(hole, fill=inside)
    mdraw.polygon(hole, fill=255)
    for poly in overlays + sleeves + [body]:  # collar flaps, sleeves, body: crisp outlines
        outline(poly, width)
    outline(hole, width + 1)
    for line in shape.lines:
        ldraw.line(_transform(line, m, size), fill=seam, width=width)
    r = 0.008 * size * scale
    for bx, by in _transform(shape.buttons, m, size):
        ldraw.ellipse((bx - r, by - r, bx + r, by + r), fill=(236, 234, 226), outline=edge)

    if cfg.supersample > 1:
        layer, mask = layer.reduce(cfg.supersample), mask.reduce(cfg.supersample)
    return _on_background(layer, mask, cfg.image_size, rng)


def _shading(shape: _Shape, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Soft light: rounded torso, a directional gradient and a few fabric folds."""
    shade = 1.03 - 0.55 * (u - 0.5) ** 2 - 0.08 * (v - 0.5)
    angle = float(rng.uniform(0, 2 * math.pi))
    shade = shade + 0.06 * (math.cos(angle) * (u - 0.5) + math.sin(angle) * (v - 0.5))
    for x0, slope, y0 in shape.folds:
        if shape.waist_y is not None:  # skirt folds fan out from the waist
            centre = x0 + slope * np.maximum(v - y0, 0) + (x0 - 0.5) * np.maximum(v - y0, 0) * 1.2
        else:
            centre = x0 + slope * (v - y0) * 0.3
        strength = float(rng.uniform(0.05, 0.1))
        ridge = np.exp(-(((u - centre) / 0.018) ** 2)) * (v > y0)
        shade = shade - strength * ridge
    return np.broadcast_to(shade, np.broadcast_shapes(u.shape, v.shape)).astype(np.float32)


def _on_background(
    layer: Image.Image, alpha: Image.Image, size: int, rng: np.random.Generator
) -> Image.Image:
    """Plain light studio background with a soft drop shadow under the garment."""
    tone = np.float32(rng.uniform(-6, 4)) + rng.uniform(-1.5, 1.5, size=3).astype(np.float32)
    tone += np.array([244, 243, 241], np.float32)
    py, _ = _pixel_grid(size)
    bg = np.broadcast_to(tone * (1.0 - 0.035 * py)[..., None], (size, size, 3))
    shadow = alpha.filter(ImageFilter.GaussianBlur(size / 55))
    dx, dy = int(size * 0.012), int(size * 0.02)
    shadow = shadow.transform(shadow.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy))
    dark = 1.0 - 0.2 * np.asarray(shadow, np.float32)[..., None] / 255.0
    canvas = Image.fromarray((bg * dark + 0.5).astype(np.uint8), "RGB")
    canvas.paste(layer, (0, 0), alpha)
    return canvas
