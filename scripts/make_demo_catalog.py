#!/usr/bin/env python3
"""Build the committed demo catalog: a seeded sample of the CC0 clothing photos plus a
JSONL catalog with realistic shop fields (title, brand, category, colour, price, in_stock).

Run once by maintainers; the output under demo/catalog/ is committed. Colours come from the
same palette code the indexer uses, so the `color` field agrees with the photo.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

from imgsearch.embedders.color import ColorEmbedder
from imgsearch.images import decode_image

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "datasets" / "clothing" / "validation"
OUT = ROOT / "demo" / "catalog"
PER_CATEGORY = 24
BRANDS = ["Northwind", "Alder & Co", "Kestrel", "Marlow", "Solstice", "Tidewater", "Umber"]
PRICE_RANGE = {
    "dress": (29, 149), "hat": (9, 45), "longsleeve": (19, 69), "outwear": (59, 249),
    "pants": (29, 119), "shirt": (19, 89), "shoes": (39, 189), "shorts": (15, 59),
    "skirt": (19, 99), "t-shirt": (9, 39),
}  # fmt: skip


def main() -> None:
    rng = random.Random(2026)
    colour = ColorEmbedder()
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "images").mkdir(parents=True)
    shutil.copy(SOURCE.parent / "LICENSE", OUT / "LICENSE")
    rows = []
    for category_dir in sorted(p for p in SOURCE.iterdir() if p.is_dir()):
        category = category_dir.name
        photos = sorted(category_dir.glob("*.jpg"))
        for photo in rng.sample(photos, min(PER_CATEGORY, len(photos))):
            target = OUT / "images" / category / photo.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, target)
            palette = colour.extra_fields(decode_image(photo.read_bytes()))
            names = palette.get("colors") or ["multicolour"]
            brand = rng.choice(BRANDS)
            low, high = PRICE_RANGE[category]
            item_id = f"{category}-{photo.stem[:8]}"
            rows.append(
                {
                    "id": item_id,
                    "image": f"images/{category}/{photo.name}",
                    "thumbnail": f"/demo-assets/images/{category}/{photo.name}",
                    "title": f"{brand} {names[0]} {category}",  # type: ignore[index]
                    "brand": brand,
                    "category": category,
                    "color": names[0],  # type: ignore[index]
                    "price": round(rng.uniform(low, high), 2),
                    "in_stock": rng.random() < 0.8,
                    "url": f"https://shop.example/p/{item_id}",
                }
            )
    with (OUT / "catalog.jsonl").open("w") as out:
        for row in rows:
            out.write(json.dumps(row) + "\n")
    print(f"wrote {len(rows)} items to {OUT}")


if __name__ == "__main__":
    main()
