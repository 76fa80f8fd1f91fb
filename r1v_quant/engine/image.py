"""Image preprocessing exactly as Skywork's (InternVL's) inference code does it.

Dynamic tiling: among grids (cols, rows) with ``min_tiles <= cols*rows <=
max_tiles``, pick the one whose aspect ratio is closest to the image's; on a tie
the later (larger) grid wins when the image's area exceeds half the grid's pixel
area.  Resize to the grid (bicubic), cut tiles row-major, append a thumbnail of
the whole image when there is more than one tile.  Each tile: bicubic to the
tile size, to [0, 1], ImageNet normalisation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputError
from ..read.config import IMAGENET_MEAN, IMAGENET_STD



def candidate_grids(min_tiles: int, max_tiles: int) -> list[tuple[int, int]]:
    grids = {(i, j) for n in range(min_tiles, max_tiles + 1) for i in range(1, n + 1) for j in range(1, n + 1)
             if min_tiles <= i * j <= max_tiles}
    return sorted(grids, key=lambda g: g[0] * g[1])


def choose_grid(width: int, height: int, tile: int, min_tiles: int, max_tiles: int) -> tuple[int, int]:
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(min_tiles, max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and width * height > 0.5 * tile * tile * cols * rows:
            best = (cols, rows)
    return best


def tile_image(image: Image.Image, tile: int, min_tiles: int, max_tiles: int, thumbnail: bool) -> list[Image.Image]:
    cols, rows = choose_grid(image.width, image.height, tile, min_tiles, max_tiles)
    resized = image.resize((cols * tile, rows * tile), Image.Resampling.BICUBIC)
    tiles = [resized.crop((c * tile, r * tile, (c + 1) * tile, (r + 1) * tile))
             for r in range(rows) for c in range(cols)]
    if thumbnail and len(tiles) != 1:
        tiles.append(image.resize((tile, tile), Image.Resampling.BICUBIC))
    return tiles


def normalize_tile(tile: Image.Image, size: int, mean: tuple[float, ...] = IMAGENET_MEAN,
                   std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """To [0, 1], then per channel (x - mean) / std (the checkpoint's preprocessor_config.json;
    ImageNet's by default, as InternVL's)."""
    if tile.size != (size, size):
        tile = tile.resize((size, size), Image.Resampling.BICUBIC)
    x = torch.from_numpy(np.asarray(tile, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
    return (x - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def load_image(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read image ({e})") from None


def preprocess(image: Image.Image, size: int = 448, min_tiles: int = 1, max_tiles: int = 12,
               thumbnail: bool = True, dynamic: bool = True, mean: tuple[float, ...] = IMAGENET_MEAN,
               std: tuple[float, ...] = IMAGENET_STD) -> torch.Tensor:
    """[tiles, 3, size, size] float32 pixel values for one image."""
    tiles = tile_image(image, size, min_tiles, max_tiles, thumbnail) if dynamic else [image]
    return torch.stack([normalize_tile(t, size, mean, std) for t in tiles])
