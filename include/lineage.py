"""OpenLineage for the Python tasks that read or write our ``trasos://`` Assets.

Airflow's OpenLineage provider turns a task's ``inlets``/``outlets`` into OpenLineage input and
output datasets only for URI schemes a provider registered (``s3``, ``file``, ``postgres``...):
``trasos://`` Assets would be dropped silently. This extractor, registered for the ``@task``
operator through ``[openlineage] extractors`` (``include.airflowctl.LINEAGE_EXTRACTORS``),
emits each Asset as a dataset named by the OpenLineage naming convention (``namespace`` =
``scheme://authority``, ``name`` = the path): ``trasos://warehouse/fct_sessions`` becomes
namespace ``trasos://warehouse``, name ``fct_sessions``, with the Asset's name in the dataset's
documentation facet. Other schemes go the provider's usual way. It keeps the provider's
Python-task job facet (the task's source code).

dbt models get their datasets from Cosmos (``include.tasks.transform``), not from here.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.providers.openlineage.extractors.base import OperatorLineage
from airflow.providers.openlineage.extractors.python import PythonExtractor
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import documentation_dataset

SCHEME = "trasos"


def asset_dataset(asset: Any) -> Dataset | None:
    """The OpenLineage dataset of one inlet or outlet (None when it cannot be named)."""
    uri = getattr(asset, "uri", None)
    if not isinstance(uri, str) or urlsplit(uri).scheme != SCHEME:
        from airflow.providers.openlineage.extractors.manager import ExtractorManager

        return ExtractorManager.convert_to_ol_dataset(asset)
    parts = urlsplit(uri)
    name = getattr(asset, "name", "") or uri
    return Dataset(
        namespace=f"{parts.scheme}://{parts.netloc}",
        name=parts.path.lstrip("/") or parts.netloc,
        facets={
            "documentation": documentation_dataset.DocumentationDatasetFacet(
                description=f"Airflow Asset '{name}' ({uri}); see include/assets.py"
            )
        },
    )


class AssetTaskExtractor(PythonExtractor):
    """``@task`` functions: their declared inlets and outlets as datasets, and their source."""

    @classmethod
    def get_operator_classnames(cls) -> list[str]:
        return ["_PythonDecoratedOperator"]

    def _execute_extraction(self) -> OperatorLineage | None:
        base = super()._execute_extraction() or OperatorLineage()
        inputs = [d for d in map(asset_dataset, self.operator.inlets or []) if d is not None]
        outputs = [d for d in map(asset_dataset, self.operator.outlets or []) if d is not None]
        if not inputs and not outputs:
            return base  # the provider then tries hook lineage, as for any Python task
        return OperatorLineage(inputs=inputs, outputs=outputs, job_facets=base.job_facets)
