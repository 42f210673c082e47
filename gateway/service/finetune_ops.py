"""Fine-tuning a collection, as a long job of the one ``JobRunner``.

``start_finetune`` checks what can be checked at once (the collection has images, the label
field exists, no content update is running) and queues the job ``finetune:<hashid>``; the job
(``indexer.finetune``) learns an adapter, writes a new index version through it and swaps
the alias. Its state (status, progress, finished_at, error, and the outcome: the adapter, or
"unchanged" with the held-out numbers that kept the untuned embedder) is the job document,
which the collection's ``info`` reads. A job interrupted by a gateway stop is claimed again
by any gateway and re-run from its params; ``indexer.finetune`` is safe to re-run.
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.engines import EngineRuntime
from gateway.service.collection_ops import CONTENT_JOB, FINETUNE_JOB, CollectionOps
from gateway.service.job_runner import JobContext
from imgsearch.errors import Conflict, InvalidRequest
from imgsearch.finetune.store import AdapterStore
from imgsearch.finetune.train import TrainSettings
from indexer.finetune import FinetuneRequest, finetune_collection, live_index

logger = logging.getLogger(__name__)

DEFAULT_LABEL_FIELD = "category"


class FinetuneOps(CollectionOps):
    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self.adapters = AdapterStore(self.client)
        self.runner.register(FINETUNE_JOB, self._finetune_job)

    async def start_finetune(
        self,
        engine: EngineRuntime,
        *,
        label_field: str | None = None,
        augment: bool | None = None,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Queue the fine-tuning of ``engine``; its state as queued.

        Without a ``label_field``, ``category`` is used where the engine has it, and
        augmentation pairs otherwise (``augment`` adds pairs to labels, or turns them off).
        """
        config = engine.config
        if label_field is None and DEFAULT_LABEL_FIELD in config.fields:
            label_field = DEFAULT_LABEL_FIELD
        if label_field is not None and label_field not in config.fields:
            raise InvalidRequest(f"label field {label_field!r} is not a field of this collection")
        use_pairs = augment if augment is not None else label_field is None
        if label_field is None and not use_pairs:
            raise InvalidRequest("fine-tuning needs a label field or augmentation pairs")

        def submit() -> dict[str, Any]:
            index = live_index(self.client, config)
            if int(self.client.count(index=index)["count"]) == 0:
                raise InvalidRequest(
                    f"collection {config.hashid!r} is empty: upload content before fine-tuning"
                )
            if self.runner.active(CONTENT_JOB, engine.hashid):
                raise Conflict("the content is being replaced; fine-tune when that is done")
            params = {"label_field": label_field, "augment": use_pairs, "seed": seed,
                      "from_index": index}  # fmt: skip
            return self.runner.submit(FINETUNE_JOB, engine.hashid, params)

        return await self._backend(submit)

    def _finetune_job(self, context: JobContext) -> dict[str, Any]:
        engine = self.registry.get(context.key)
        params = context.params
        request = FinetuneRequest(
            label_field=params.get("label_field"),
            augment=bool(params.get("augment")),
            settings=TrainSettings(seed=int(params.get("seed") or 0)),
        )
        base = engine.base_embedder(engine.vector_field)
        outcome = finetune_collection(
            self.client, engine.config, base, self.adapters, request,
            progress=context.progress, from_index=params.get("from_index"), limits=self.limits,
            image_root=self.settings.collection_media_dir,
        )  # fmt: skip
        logger.info("fine-tuning of %s: %s", engine.hashid, outcome.status)
        return outcome.as_state()

    async def finetune_state(self, engine: EngineRuntime) -> dict[str, Any] | None:
        return await self._backend(lambda: self.runner.state(FINETUNE_JOB, engine.hashid))
