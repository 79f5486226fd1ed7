"""The two ways an uploaded file is turned away, each carrying a message fit to show the user as is."""

from __future__ import annotations


class ImportFileError(Exception):
    """Base of the importer's refusals; `str(exc)` (or `.message`) is the user-facing message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFile(ImportFileError):
    """Refused at upload: not a .csv/.xlsx/.xls, or the content does not match the name (HTTP 415)."""


class UnreadableFile(ImportFileError):
    """Accepted at upload but cannot be imported: no title column, corrupt, password-protected, too large.

    The worker ends the job `failed` with this message as its `error`.
    """


class MappingError(ImportFileError):
    """The `mapping` or `preset` a client sent does not fit the file (HTTP 422), with an error per entry."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


class EmptyFile(UnreadableFile):
    """Nothing but blank space: refused at upload (HTTP 422) rather than made a job that fails."""
