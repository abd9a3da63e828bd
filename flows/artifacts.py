"""The story of a run in the Prefect UI: a progress artifact per batch, a summary table, a rejects report."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from flows.libraries import library_key

#: Rejects and failures listed in the markdown artifact.
TOP_REJECTS = 50


def artifact_key(library: str, kind: str) -> str:
    """``cratedig-<slug>-<8 hex of the path>-<kind>``: one history per library and kind (keys are lowercase letters,
    digits and dashes; by the folder name alone, /a/Music and /b/Music, and every non-Latin name, shared one)."""
    return f"cratedig-{library_key(library)}-{kind}"


def start_progress(library: str, *, done: bool = False) -> UUID:
    """The run's progress artifact: 0 %, or 100 % for a run with nothing to analyse (``done``)."""
    return create_progress_artifact(
        100.0 if done else 0.0,
        key=artifact_key(library, "progress"),
        description=f"Files analysed in {library}" + (": nothing to analyse" if done else ""),
    )


def report_progress(artifact_id: UUID, done: int, total: int) -> None:
    update_progress_artifact(artifact_id, 100.0 * done / total if total else 100.0)


def publish_summary(library: str, summary: dict[str, Any], failures_by_reason: dict[str, int]) -> None:
    """A table artifact: every count of the run, tracks per minute, and failures by reason code."""
    rows = [{"measure": k, "value": str(v)} for k, v in summary.items()]
    rows += [{"measure": f"rejected/failed: {reason}", "value": str(n)} for reason, n in failures_by_reason.items()]
    create_table_artifact(rows, key=artifact_key(library, "summary"), description=f"Run summary for {library}")


def publish_rejects(
    library: str, catalog_path: str, rejects: list[tuple[str, str, str | None]], counts: dict[str, Any]
) -> None:
    """A markdown artifact: the catalog path and the first :data:`TOP_REJECTS` rejects with reasons."""
    lines = [
        f"# cratedig run on `{library}`",
        "",
        f"Catalog: `{catalog_path}`",
        "",
        f"## Rejected or failed files ({len(rejects)} this run, first {min(len(rejects), TOP_REJECTS)})",
        "",
    ]
    if rejects:
        lines += ["| reason | file | detail |", "|---|---|---|"]
        for reason, path, detail in rejects[:TOP_REJECTS]:
            cell = (detail or "").replace("|", "\\|").replace("\n", " ")[:200]
            lines.append(f"| {reason} | `{path}` | {cell} |")
    elif counts.get("analyzed", 0):
        lines.append(f"None: all {counts['analyzed']} files of this run were analysed.")
    else:
        lines.append("None: this run had nothing to analyse.")
    create_markdown_artifact(
        "\n".join(lines), key=artifact_key(library, "rejects"), description=f"Rejects and failures for {library}"
    )
