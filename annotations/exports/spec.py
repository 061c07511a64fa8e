"""What to export (ExportSpec), in which formats, and why a spec can be refused."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from core.types import DbId, IsoDateTime


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    TRL = "trl"
    TRL_CONVERSATIONAL = "trl_conversational"


# What a person reads for each format and aggregation (the form's choices and the job pages).
FORMAT_NAMES = {
    ExportFormat.JSONL: "JSONL",
    ExportFormat.CSV: "CSV",
    ExportFormat.PARQUET: "Parquet",
    ExportFormat.TRL: "TRL preference pairs (plain text)",
    ExportFormat.TRL_CONVERSATIONAL: "TRL preference pairs (conversational)",
}
EXTENSIONS = {
    ExportFormat.JSONL: "jsonl",
    ExportFormat.CSV: "csv",
    ExportFormat.PARQUET: "parquet",
    ExportFormat.TRL: "jsonl",
    ExportFormat.TRL_CONVERSATIONAL: "jsonl",
}
CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


class Aggregation(StrEnum):
    PER_LABEL = "per_label"
    MAJORITY = "majority"


AGGREGATION_NAMES = {
    Aggregation.PER_LABEL: "One row per label",
    Aggregation.MAJORITY: "Majority vote per item (ties dropped)",
}


class ExportSpec(BaseModel):
    """What to export. Stored on ExportJob.spec; built by ExportForm, the API and the command."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: list[DbId] = Field(min_length=1, max_length=50)
    format: ExportFormat = ExportFormat.JSONL
    aggregation: Aggregation = Aggregation.PER_LABEL
    since: IsoDateTime | None = None
    until: IsoDateTime | None = None
    # Items whose most common label has less than this share of their labels are left out.
    min_agreement: float | None = Field(default=None, ge=0.0, le=1.0)
    # Annotators whose gold accuracy is below this are left out (those with no gold are kept).
    min_gold_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    include_gold: bool = False
    include_ai_labels: bool = Field(
        default=False,
        description="One row per label only: add the labels of model annotators (each one's"
        " newest finished run, a row per principle), and give every row its `source`"
        ' ("human" or "model") and `provenance` (null for people; for a model: run, model'
        " config, constitution version, principle, probability). Majority votes count people"
        " only.",
    )
    # CSV only; see csv_cell.
    csv_raw: bool = Field(
        default=False,
        description="CSV only: write cells exactly as stored. By default a text cell that a"
        " spreadsheet would run as a formula (starting with = + - @, a tab or a carriage"
        " return) gets a leading ' (OWASP CSV injection).",
    )


class ExportInvalid(Exception):
    """A spec that cannot be carried out: 404 for queues that do not exist, 409 for queues that
    cannot be exported together or in that format, or a window that ends before it starts
    (a rule between fields that the spec's JSON schema cannot state)."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
