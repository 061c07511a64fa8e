"""The experiments' domain errors: a message fit to show a researcher or a participant."""

from __future__ import annotations


class ExperimentError(Exception):
    status = 409

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ExperimentFrozen(ExperimentError):
    """Arms cannot change once a participant has joined."""


class LinkClosed(ExperimentError):
    status = 410


class StudyNotReady(LinkClosed):
    """A consultancy or debate arm's transcripts are still being generated: no newcomer yet."""

    status = 503


class NotYours(ExperimentError):
    """Not the participant's item, lease or assistance: shown as a 404, as if it did not exist."""

    status = 404


class TimeNotUp(ExperimentError):
    pass
