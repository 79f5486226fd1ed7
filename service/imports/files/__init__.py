"""The file side of imports: sniff uploads, read CSV/XLSX/XLS in validated chunks, write errors.csv lines.

Pure: no database, HTTP or broker here; the upload endpoint and the worker build on this interface.
"""

from service.imports.files.exceptions import EmptyFile, ImportFileError, MappingError, UnreadableFile, UnsupportedFile
from service.imports.files.export import csv_line, defuse, error_record, errors_header
from service.imports.files.filenames import safe_filename
from service.imports.files.headers import FIELDS, Options, parse_options
from service.imports.files.readers import Reader, open_reader
from service.imports.files.rows import VALID_COLUMNS, Chunk, RowError, RowWarning, ValidRow
from service.imports.files.sniff import SNIFF_BYTES, Kind, sniff

__all__ = [
    "FIELDS",
    "SNIFF_BYTES",
    "VALID_COLUMNS",
    "Chunk",
    "EmptyFile",
    "ImportFileError",
    "Kind",
    "MappingError",
    "Options",
    "Reader",
    "RowError",
    "RowWarning",
    "UnreadableFile",
    "UnsupportedFile",
    "ValidRow",
    "csv_line",
    "defuse",
    "error_record",
    "errors_header",
    "open_reader",
    "parse_options",
    "safe_filename",
    "sniff",
]
