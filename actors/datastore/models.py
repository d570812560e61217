"""Tables the light operations write: publications, their gene mentions, and the
comparison of SysNDD's genes with external NDD gene lists.

Only portable column types (no JSON, ARRAY or ENUM) so the same tables work on
SQLite, PostgreSQL and MySQL; string columns have lengths because MySQL needs
them for indexed columns.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from actors.datastore.base import Base


class Publication(Base):
    """One PubMed article found through the PubTator3 search API."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pmid: Mapped[int] = mapped_column(Integer, unique=True, nullable=False)
    doi: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str | None] = mapped_column(Text)
    journal: Mapped[str | None] = mapped_column(String(512))
    publication_date: Mapped[date | None] = mapped_column(Date)
    #: Comma-separated; the search API often omits authors, the field stays empty then.
    authors: Mapped[str | None] = mapped_column(Text)
    abstract: Mapped[str | None] = mapped_column(Text)
    #: PubTator's highlighted passage with its @GENE_/@DISEASE_ annotation markup kept,
    #: so mentions can be re-derived without fetching again.
    text_hl: Mapped[str | None] = mapped_column(Text)
    score: Mapped[float | None] = mapped_column(Float)
    #: The search text that last returned the article.
    search_query: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class PublicationGeneMention(Base):
    """A gene PubTator annotated in a publication, one row per (pmid, Entrez gene)."""

    __tablename__ = "publication_gene_mentions"
    __table_args__ = (UniqueConstraint("pmid", "entrez_id", name="uq_publication_gene_mention"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pmid: Mapped[int] = mapped_column(
        Integer, ForeignKey("publications.pmid", ondelete="CASCADE"), nullable=False, index=True
    )
    entrez_id: Mapped[str] = mapped_column(String(32), nullable=False)
    #: The symbol as PubTator wrote it (may be an alias or another species' symbol).
    symbol: Mapped[str | None] = mapped_column(String(64))
    #: Resolved through the shipped HGNC mapping; empty for genes outside it.
    hgnc_id: Mapped[str | None] = mapped_column(String(32), index=True)
    mention_count: Mapped[int] = mapped_column(Integer, nullable=False, default=1)


class ComparisonMembership(Base):
    """Gene X is named by external list Y (the rows behind the UpSet plot)."""

    __tablename__ = "comparison_memberships"
    __table_args__ = (UniqueConstraint("hgnc_id", "list_name", name="uq_comparison_membership"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hgnc_id: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    symbol: Mapped[str | None] = mapped_column(String(64))
    list_name: Mapped[str] = mapped_column(String(64), nullable=False, index=True)


class ComparisonListMetadata(Base):
    """Where one external list came from and how much of it was imported."""

    __tablename__ = "comparison_list_metadata"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    list_name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    #: The URL or file path the list was read from.
    source: Mapped[str] = mapped_column(String(2000), nullable=False)
    fetched_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    row_count: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Entries whose symbol the HGNC mapping does not know (dropped, not guessed).
    unmapped_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: Position in the source order, so the UpSet "sets" come back in a stable order.
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
