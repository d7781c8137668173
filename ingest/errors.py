"""What can be wrong with an upload as a whole. Each error starts nothing and says what to fix.

Row-level problems are never errors: they go to the rejected-rows report with a reason (see
``ingest.collect.REASONS``). Every error has a stable ``code`` (the HTTP API returns it), an HTTP
status, and the field at fault when there is one; each can be rebuilt from its message alone, so it
crosses Ray unchanged.
"""

from __future__ import annotations


class IngestError(Exception):
    """The upload cannot be used; nothing was started."""

    code = "bad_upload"
    status = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[type[IngestError], tuple[str, str | None]]:
        return type(self), (self.message, self.field)

    def __str__(self) -> str:
        return self.message


class EmptyFile(IngestError):
    code = "empty_file"


class NoRows(IngestError):
    code = "no_rows"


class NoPhoneColumn(IngestError):
    code = "no_phone_column"


class UnsupportedFormat(IngestError):
    code = "unsupported_format"
    status = 415


class FormatMismatch(IngestError):
    code = "format_mismatch"
    status = 415


class CorruptFile(IngestError):
    code = "corrupt_file"


class EncryptedFile(IngestError):
    code = "encrypted_file"


class NotText(IngestError):
    code = "not_text"


class FileTooLarge(IngestError):
    code = "file_too_large"
    status = 413


class TooManyRows(IngestError):
    code = "too_many_rows"
    status = 413


class TemplateError(IngestError):
    code = "template_error"


class ColumnNotFound(IngestError):
    code = "column_not_found"


class UnknownOperator(IngestError):
    """The job allows an operator that is not configured."""

    code = "unknown_operator"


class SheetNotFound(IngestError):
    code = "sheet_not_found"


class UnknownEncoding(IngestError):
    code = "unknown_encoding"


class UriNotAllowed(IngestError):
    """The job names a file the policy does not let the API read (``api.uri_root``,
    ``api.object_stores``)."""

    code = "uri_not_allowed"
    status = 403


class UriNotFound(IngestError):
    code = "uri_not_found"


class UriUnreadable(IngestError):
    code = "uri_unreadable"
