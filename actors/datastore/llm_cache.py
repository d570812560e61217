"""The cache of LLM cluster summaries, one row per (cluster content, model, prompt).

Mirrors SysNDD's ``llm_cluster_summary_cache`` (what /api/llm/cache/summaries lists):
the summary is stored as JSON text, its tags once more as a JSON list for searching,
and ``is_current`` / ``validation_status`` / ``validated_*`` keep SysNDD's review
workflow possible. Portable types only (no JSON or ENUM columns), as in models.py.

A summary is keyed by ``cluster_hash`` (the cluster's content), not by its number:
clustering numbers clusters by size, so the same genes can come back under another
number, and a changed cluster must not be served the old text.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from actors.datastore.base import Base

VALIDATION_STATUSES = ("pending", "validated", "rejected")


class LLMSummary(Base):
    __tablename__ = "llm_summaries"
    __table_args__ = (
        UniqueConstraint("cluster_hash", "model_name", "prompt_version", name="uq_llm_summary_content"),
        Index("ix_llm_summaries_cluster", "cluster_type", "cluster_number"),
    )

    #: SysNDD calls it cache_id.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: "functional" (gene-network clusters) or "phenotype" (phenotype clusters).
    cluster_type: Mapped[str] = mapped_column(String(16), nullable=False)
    #: The number the cluster had when the summary was last served; informational.
    cluster_number: Mapped[int] = mapped_column(Integer, nullable=False)
    #: sha256 hex of the cluster's content (actors.analysis.llm_summary.cluster_hash).
    cluster_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    model_name: Mapped[str] = mapped_column(String(255), nullable=False)
    prompt_version: Mapped[str] = mapped_column(String(32), nullable=False)
    #: The validated summary object as JSON text (tags, summary, confidence, ...).
    summary_json: Mapped[str] = mapped_column(Text, nullable=False)
    #: summary_json's tags again, as a JSON list, so they can be searched without parsing.
    tags: Mapped[str | None] = mapped_column(Text)
    #: True on the row last served for (cluster_type, cluster_number); older rows stay
    #: as the cache of earlier cluster contents.
    is_current: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: One of VALIDATION_STATUSES; new summaries are "pending" until a curator reviews them.
    validation_status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    validated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    validated_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: When summary_json was last written (differs from created_at after a forced regeneration).
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
