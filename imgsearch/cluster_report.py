"""What an operator wants to see of the cluster: health, nodes (heap, disk), engines' shards.

``gather`` asks the cluster (four read-only calls); ``render`` is pure, so the table is
tested without a cluster.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from opensearchpy import OpenSearch

from imgsearch.engine_config import EngineConfig
from imgsearch.search_client import backend_errors


def gather(client: OpenSearch, engines: dict[str, EngineConfig]) -> dict[str, Any]:
    """Health, every node's heap and disk, and per engine its index and shard copies."""
    with backend_errors():
        health = client.cluster.health()
        stats = client.nodes.stats(metric="jvm,fs")
        shards = client.cat.shards(format="json", bytes="b")
        aliases = client.indices.get_alias()
    nodes = []
    for node in stats["nodes"].values():
        heap = node["jvm"]["mem"]
        disk = node["fs"]["total"]
        nodes.append(
            {
                "name": node["name"],
                "host": node.get("host", ""),
                "roles": sorted(node.get("roles", [])),
                "heap_used_bytes": heap["heap_used_in_bytes"],
                "heap_max_bytes": heap["heap_max_in_bytes"],
                "disk_total_bytes": disk["total_in_bytes"],
                "disk_available_bytes": disk["available_in_bytes"],
            }
        )
    index_of = {alias: index for index, data in aliases.items() for alias in data["aliases"]}
    report_engines = {}
    for hashid, config in sorted(engines.items()):
        index = index_of.get(config.alias)
        copies = [s for s in shards if s["index"] == index]
        report_engines[hashid] = {
            "alias": config.alias,
            "index": index,
            "shards": [
                {
                    "shard": int(s["shard"]),
                    "primary": s["prirep"] == "p",
                    "state": s["state"],
                    "node": s.get("node"),
                    "docs": int(s["docs"]) if s.get("docs") else None,
                    "store_bytes": int(s["store"]) if s.get("store") else None,
                }
                for s in sorted(copies, key=lambda s: (int(s["shard"]), s["prirep"] != "p"))
            ],
        }
    keys = ("status", "number_of_nodes", "active_shards", "unassigned_shards")
    return {
        "cluster": {"name": health["cluster_name"], **{k: health[k] for k in keys}},
        "nodes": sorted(nodes, key=lambda n: n["name"]),
        "engines": report_engines,
    }


def render(report: dict[str, Any]) -> str:
    """The report as text tables."""
    c = report["cluster"]
    lines = [
        f"cluster {c['name']}: {c['status']}, {c['number_of_nodes']} node(s), "
        f"{c['active_shards']} active shard(s), {c['unassigned_shards']} unassigned",
        "",
        f"{'node':<24} {'roles':<28} {'heap used/max':>17} {'disk free/total':>19}",
    ]
    for n in report["nodes"]:
        heap = f"{_gb(n['heap_used_bytes'])}/{_gb(n['heap_max_bytes'])} GB"
        disk = f"{_gb(n['disk_available_bytes'])}/{_gb(n['disk_total_bytes'])} GB"
        roles = ",".join(n["roles"])[:28]
        lines.append(f"{n['name']:<24} {roles:<28} {heap:>17} {disk:>19}")
    for hashid, engine in report["engines"].items():
        lines.append("")
        if engine["index"] is None:
            lines.append(f"engine {hashid}: alias {engine['alias']} points at no index")
            continue
        states = Counter(s["state"] for s in engine["shards"])
        primaries = sum(s["primary"] for s in engine["shards"])
        summary = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        lines.append(
            f"engine {hashid}: {engine['alias']} -> {engine['index']}, {primaries} primary "
            f"shard(s), {len(engine['shards']) - primaries} replica(s); {summary}"
        )
        for s in engine["shards"]:
            kind = "primary" if s["primary"] else "replica"
            docs = "-" if s["docs"] is None else s["docs"]
            lines.append(
                f"  shard {s['shard']:<3} {kind:<8} {s['state']:<12} {s['node'] or '-':<24} "
                f"docs {docs}"
            )
    return "\n".join(lines)


def _gb(value: int) -> str:
    return f"{value / 2**30:.1f}"
