""""Photo-like" scenes: sky/ground gradients, sun, clouds, houses, trees and grain."""

from __future__ import annotations

import random

import numpy as np
from PIL import Image, ImageDraw

from .common import ordinal
from .reasoning import CONCLUDERS, DOUBLE_CHECKS


def scene(rng: random.Random, index: int, seed: int) -> tuple[Image.Image, str, str, str]:
    w = rng.randint(440, 900)
    h = int(w / rng.uniform(1.25, 2.6))
    hz = int(h * rng.uniform(0.5, 0.62))  # horizon
    yy = np.arange(h, dtype=np.float32)[:, None]
    top, low = np.array(rng.choice([(70, 130, 210), (40, 90, 180), (110, 160, 220)]), np.float32), np.array((200, 225, 245), np.float32)
    g1, g2 = np.array(rng.choice([(90, 160, 70), (120, 170, 80), (200, 180, 120)]), np.float32), np.array((50, 110, 40), np.float32)
    t_sky = np.clip(yy / hz, 0, 1)[..., None]
    t_gnd = np.clip((yy - hz) / (h - hz), 0, 1)[..., None]
    arr = np.where(yy[..., None] < hz, top * (1 - t_sky) + low * t_sky, g1 * (1 - t_gnd) + g2 * t_gnd)
    arr = np.broadcast_to(arr, (h, w, 3)).copy()
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)

    sun_left = rng.random() < 0.5
    sr = h * 0.08
    sx = w * (0.1 if sun_left else 0.9)
    d.ellipse([sx - sr, h * 0.16 - sr, sx + sr, h * 0.16 + sr], fill=(255, 220, 60))
    n_clouds = rng.randint(0, 3)
    cloud_xs = [w * (0.3 + 0.5 * (i + 0.5) / 3) if sun_left else w * (0.1 + 0.5 * (i + 0.5) / 3) for i in range(3)]
    for cx in rng.sample(cloud_xs, n_clouds):
        cy = h * rng.uniform(0.1, 0.3)
        for dx, rr in ((-0.035, 0.03), (0.0, 0.045), (0.035, 0.03)):  # clouds stay apart
            d.ellipse([cx + dx * w - rr * w, cy - rr * w * 0.6, cx + dx * w + rr * w, cy + rr * w * 0.6], fill=(250, 250, 252))
    n_houses = rng.randint(1, 3)
    n_trees = rng.randint(0, max(0, min(5, w // 110 - n_houses)))  # keep houses big enough to count windows
    objs = ["house"] * n_houses + ["tree"] * n_trees
    rng.shuffle(objs)
    slot = w / len(objs)
    windows = []
    for i, kind in enumerate(objs):
        cx = slot * (i + 0.5)
        base_y = hz + (h - hz) * rng.uniform(0.35, 0.6)
        if kind == "house":
            hw = min(slot * 0.38, h * 0.22)
            hh = hw * rng.uniform(0.9, 1.3)
            wall = rng.choice([(230, 200, 160), (240, 240, 230), (200, 90, 70), (170, 190, 210)])
            d.rectangle([cx - hw, base_y - hh, cx + hw, base_y], fill=wall, outline=(60, 40, 30), width=2)
            d.polygon([(cx - hw * 1.15, base_y - hh), (cx + hw * 1.15, base_y - hh), (cx, base_y - hh - hw * 0.8)], fill=rng.choice([(150, 40, 30), (90, 60, 50), (60, 60, 80)]))
            d.rectangle([cx - hw * 0.18, base_y - hh * 0.45, cx + hw * 0.18, base_y], fill=(100, 60, 30))
            nw = rng.randint(1, 4)
            windows.append(nw)
            spots = [(-0.6, 0.72), (0.6, 0.72), (-0.6, 0.38), (0.6, 0.38)][:nw]
            for fx, fy in spots:
                wx, wy = cx + fx * hw, base_y - fy * hh
                s = hw * 0.17
                d.rectangle([wx - s, wy - s, wx + s, wy + s], fill=(170, 210, 240), outline=(60, 40, 30), width=2)
        else:
            th = h * rng.uniform(0.14, 0.22)
            d.rectangle([cx - th * 0.08, base_y - th, cx + th * 0.08, base_y], fill=(110, 70, 35))
            crown = rng.choice([(40, 120, 40), (60, 140, 50), (30, 100, 50)])
            if rng.random() < 0.5:
                cr = min(th * 0.45, slot * 0.4)
                d.ellipse([cx - cr, base_y - th - cr * 1.2, cx + cr, base_y - th + cr * 0.8], fill=crown)
            else:
                cr = min(th * 0.4, slot * 0.4)
                d.polygon([(cx - cr, base_y - th * 0.6), (cx + cr, base_y - th * 0.6), (cx, base_y - th * 1.6)], fill=crown)
    # Photo-like grain: brightness noise drawn at 1/4 size, smoothed up and rounded
    # to steps of 3, weaker in the sky.  Per-pixel colour noise would look similar
    # but makes each PNG 4-5 times bigger, and the whole folder must stay small.
    nrng = np.random.default_rng(seed)
    small = nrng.normal(0, 5, (h // 4 + 1, w // 4 + 1)).astype(np.float32)
    noise = np.round(np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR)) / 3) * 3
    noise *= np.where(np.arange(h) < hz, 0.5, 1.0)[:, None]
    img = Image.fromarray(np.clip(np.asarray(img, np.float32) + noise[..., None], 0, 255).astype(np.uint8))

    order = ", ".join(objs)
    r = [rng.choice(["Okay, this looks like a simple outdoor scene.", "Alright, the picture shows a landscape.", "Let me describe what I see in this picture first."]),
         f"There's a {'deep ' if top[2] < 200 else ''}blue sky fading lighter toward the horizon, {'green' if g1[0] < 150 else 'sandy'} ground below, and the sun in the upper {'left' if sun_left else 'right'}.",
         f"{'There are ' + str(n_clouds) + ' white clouds' if n_clouds > 1 else 'There is one cloud' if n_clouds == 1 else 'There are no clouds'} in the sky.",
         f"Along the ground, going from left to right, I see: {order}."]
    qtype = rng.choice(["trees", "houses", "windows", "sun", "clouds", "more"])
    if qtype == "trees":
        q = "How many trees are in the picture?"
        r += ["Counting only the trees in that left-to-right list: " + ", ".join(f"{k + 1}" for k in range(n_trees)) + f"... so {n_trees}." if n_trees else "There are no trees at all, only houses.",
              rng.choice(DOUBLE_CHECKS) + f" The row has {len(objs)} objects; {n_houses} of them are houses, so {len(objs)} - {n_houses} = {n_trees} are trees. "
              "Both round and pointed crowns count as trees.",
              rng.choice(CONCLUDERS).format(a=str(n_trees))]
        final = f"There {'is' if n_trees == 1 else 'are'} **{n_trees}** tree{'s' if n_trees != 1 else ''}."
    elif qtype == "houses":
        q = "How many houses can you see?"
        r += [f"Houses are the shapes with walls, a triangular roof and a door. In the list there are {n_houses}.",
              rng.choice(DOUBLE_CHECKS) + f" Total objects on the ground {len(objs)}, trees {n_trees}, so houses = {len(objs)} - {n_trees} = {n_houses}.",
              rng.choice(CONCLUDERS).format(a=str(n_houses))]
        final = f"**{n_houses}** house{'s' if n_houses != 1 else ''}."
    elif qtype == "windows":
        tw_ = sum(windows)
        q = "How many windows are there on all the houses together?"
        r += [f"There are {n_houses} house{'s' if n_houses > 1 else ''}. Windows are the light blue squares; doors are the brown rectangles and don't count.",
              *(f"The {ordinal(k + 1)} house from the left has {nw} window{'s' if nw > 1 else ''}." for k, nw in enumerate(windows)),
              f"Total: {' + '.join(map(str, windows))} = {tw_}.",
              rng.choice(DOUBLE_CHECKS) + " I'll recount each house's windows row by row: the upper row first, then the lower row. The counts are the same.",
              rng.choice(CONCLUDERS).format(a=str(tw_))]
        final = f"{' + '.join(map(str, windows))} = **{tw_}** windows."
    elif qtype == "sun":
        side = "left" if sun_left else "right"
        q = "Is the sun on the left or the right side of the picture?"
        r += [f"The yellow disc in the sky is at about {10 if sun_left else 90}% of the width from the left edge, near the top.",
              rng.choice(DOUBLE_CHECKS) + f" Left and right are from the viewer's point of view; the sun is {'near the left edge' if sun_left else 'near the right edge'}, "
              f"well {'left' if sun_left else 'right'} of the middle of the picture, and there is no second sun or lamp to confuse it with.",
              rng.choice(CONCLUDERS).format(a=side)]
        final = f"The sun is on the **{side}** side."
    elif qtype == "clouds":
        q = "How many clouds are in the sky?"
        r += [f"Each cloud is a cluster of three overlapping white puffs, so I must count clusters, not puffs. I count {n_clouds}.",
              rng.choice(DOUBLE_CHECKS) + f" Puffs: {3 * n_clouds}, in groups of three, so {n_clouds} clouds. The sun is yellow and not a cloud.",
              rng.choice(CONCLUDERS).format(a=str(n_clouds))]
        final = f"**{n_clouds}** cloud{'s' if n_clouds != 1 else ''}."
    else:
        q = "Are there more trees or more houses, and by how many?"
        diff = n_trees - n_houses
        verdict = "more trees" if diff > 0 else "more houses" if diff < 0 else "the same number"
        r += [f"Trees: {n_trees}. Houses: {n_houses}.",
              f"{max(n_trees, n_houses)} - {min(n_trees, n_houses)} = {abs(diff)}, so there are {verdict}" + (f", by {abs(diff)}." if diff else "."),
              rng.choice(DOUBLE_CHECKS) + f" {n_trees} + {n_houses} = {len(objs)}, the number of objects along the ground. Consistent.",
              rng.choice(CONCLUDERS).format(a=verdict + (f" by {abs(diff)}" if diff else ""))]
        final = f"{n_trees} trees vs {n_houses} houses: **{verdict}**" + (f" (by **{abs(diff)}**)." if diff else ".")
    return img, q, " ".join(r), final
