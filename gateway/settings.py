"""Gateway settings, built in ``create_app()``/``main()``, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="IMGSEARCH_", extra="ignore", frozen=True)

    opensearch_url: str = Field(
        default="http://127.0.0.1:9200",
        validation_alias=AliasChoices("IMGSEARCH_OPENSEARCH_URL", "OPENSEARCH_URL"),
    )
    engines_dir: Path = Path("engines")
    # Optional folder served at /demo-assets (the demo catalog's photos).
    demo_assets_dir: Path | None = None
    max_body_bytes: Annotated[int, Field(ge=1024, le=200 * MiB)] = 16 * MiB
    max_image_bytes: Annotated[int, Field(ge=1024, le=100 * MiB)] = 10 * MiB
    max_image_pixels: Annotated[int, Field(ge=10_000, le=200_000_000)] = 40_000_000
    # OpenSearch: read timeout per request (then 504), connect timeout per attempt, retries of
    # a failed connection on the next node (a stopped cluster answers 503 within
    # (retries + 1) * connect_timeout_s), keep-alive connections per node and worker.
    search_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    connect_timeout_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    opensearch_retries: Annotated[int, Field(ge=0, le=10)] = 2
    opensearch_pool_size: Annotated[int, Field(ge=1, le=1000)] = 10
    fetch_timeout_s: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Let clients' image_url point at private/loopback addresses (trusted networks only).
    image_url_allow_private: bool = False
    embed_concurrency: Annotated[int, Field(ge=1, le=64)] = 1
    device: str | None = None
    # Collections created over HTTP (docs/collections.md): the engine config they start from
    # (default: CLIP ViT-B-32, no declared fields), the folder their CSV image paths are read
    # from (none: URLs only), and whether a new one is readable without an API key.
    collection_template: Path | None = None
    collection_media_dir: Path | None = None
    collection_read_access: Literal["open", "key"] = "open"
    # Seconds before another gateway's changes to collections are seen here, and between
    # looks for long jobs whose gateway stopped.
    engine_ttl_s: Annotated[float, Field(ge=0, le=600)] = 5.0
    job_poll_s: Annotated[float, Field(gt=0, le=3600)] = 10.0

    @field_validator("opensearch_url")
    @classmethod
    def _url(cls, value: str) -> str:
        """One node's URL, or several nodes' URLs separated by commas."""
        urls = [part.strip().rstrip("/") for part in value.split(",") if part.strip()]
        if not urls or not all(u.startswith(("http://", "https://")) for u in urls):
            raise ValueError("must be an http(s) URL, or several separated by commas")
        return ",".join(urls)
