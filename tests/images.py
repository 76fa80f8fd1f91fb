"""The synthetic test image: blue ground, a red box, a yellow disc, diagonal stripes."""

from __future__ import annotations

from PIL import Image, ImageDraw


def make_image(width: int, height: int, box: tuple[int, int, int, int], disc: tuple[int, int, int, int]
               ) -> Image.Image:
    img = Image.new("RGB", (width, height), (40, 90, 200))
    d = ImageDraw.Draw(img)
    d.rectangle(box, fill=(220, 30, 30))
    d.ellipse(disc, fill=(250, 240, 80))
    for x in range(0, width, 37):
        d.line((x, 0, width - x, height), fill=(x % 255, 120, 60), width=3)
    return img
