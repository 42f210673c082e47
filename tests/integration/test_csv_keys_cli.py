"""``imgsearch csv export|import`` on a file-defined engine and ``imgsearch keys``, on the
real node."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from opensearchpy import OpenSearch

from gateway.service.key_store import KeyStore
from gateway.service.system_index import SYSTEM_INDEX, SystemIndex
from imgsearch.cli import main
from imgsearch.errors import Forbidden
from tests.fixtures_clip import tiny_clip_spec


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_csv_import_replaces_and_export_round_trips(
    tmp_path: Path, clothing_dataset: Path, tiny_clip_checkpoint: Path,
    index_name: Callable[[str], str], opensearch_url: str, os_client: OpenSearch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    alias = index_name("csv")
    engine = tmp_path / "engine.json"
    engine.write_text(json.dumps({
        "hashid": "csvshop", "alias": alias, "category_from_folder": None,
        "fields": {"title": {"type": "text"}, "price": {"type": "number"}},
        "vectors": {"clip": tiny_clip_spec(tiny_clip_checkpoint)},
    }))  # fmt: skip
    photos = sorted((clothing_dataset / "validation").rglob("*.jpg"))[:6]
    (tmp_path / "img").mkdir()
    for p in photos:
        (tmp_path / "img" / p.name).write_bytes(p.read_bytes())
    lines = ["id,image,title,price,unknown"]
    lines += [f'a{i},img/{p.name},"T {i}, ok",{i}.5,x' for i, p in enumerate(photos)]
    lines += ["bad,img/missing.jpg,T,1,x", "worse,img/a.jpg,T,cheap,x"]
    feed = tmp_path / "catalog.csv"
    feed.write_text("\n".join(lines) + "\n")
    common = ["--engine", str(engine), "--opensearch-url", opensearch_url]
    assert main(["csv", "import", *common, str(feed)]) == 0
    err = capsys.readouterr().err
    assert "6 indexed, 2 failed of 8 rows" in err and "['unknown']" in err
    out = tmp_path / "out.csv"
    assert main(["csv", "export", *common, str(out)]) == 0
    exported = rows(out.read_text())
    assert [r["id"] for r in exported] == [f"a{i}" for i in range(6)]
    assert exported[0] == {"id": "a0", "image": f"img/{photos[0].name}", "title": "T 0, ok",
                           "price": "0.5"}  # fmt: skip
    # export -> import -> export changes nothing; an import replaces the content
    assert main(["csv", "import", *common, str(out)]) == 0
    again = tmp_path / "again.csv"
    assert main(["csv", "export", *common, str(again)]) == 0
    assert again.read_text() == out.read_text()
    first_two = tmp_path / "two.csv"
    first_two.write_text("".join(out.read_text().splitlines(keepends=True)[:3]))
    assert main(["csv", "import", *common, str(first_two)]) == 0
    assert os_client.count(index=alias)["count"] == 2, "replaced, not merged"


def test_keys_create_list_revoke(
    opensearch_url: str, os_client: OpenSearch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ["--opensearch-url", opensearch_url]
    assert main(["keys", *url, "create", "--access", "write", "--collections", "3,1",
                 "--label", "museum"]) == 0  # fmt: skip
    token = capsys.readouterr().out.strip()
    store = KeyStore(SystemIndex(os_client))
    key = store.check(token)
    assert (key.access, key.collections, key.label) == ("write", [1, 3], "museum")
    doc = os_client.get(index=SYSTEM_INDEX, id=f"api_key:{key.key_id}")["_source"]
    assert token.split("_")[2] not in json.dumps(doc), "the secret is not stored"
    try:
        assert main(["keys", *url, "list"]) == 0
        listed = capsys.readouterr().out
        assert key.key_id in listed and "museum" in listed
        assert main(["keys", *url, "revoke", key.key_id]) == 0
        with pytest.raises(Forbidden):
            store.check(token)
        assert main(["keys", *url, "revoke", "000000000000"]) == 2
        assert main(["keys", *url, "create", "--collections", "x"]) == 2
    finally:
        os_client.delete(index=SYSTEM_INDEX, id=f"api_key:{key.key_id}", refresh=True)
