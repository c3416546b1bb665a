"""Bounds on what an import may make the server read: every upload is checked before it is expanded.

A 194 KB zip holding a 200 MB CSV drove the server to 11 GB, a 420 KB workbook of 3 million rows to
16 GB. Every limit is a setting with a default:

- ``IMPORT_MAX_UPLOAD_BYTES`` — the uploaded files together (page);
- ``IMPORT_MAX_MEMBER_BYTES`` — one file inside a zip or a workbook, decompressed (read in chunks,
  so a header that lies about its size does not help);
- ``IMPORT_MAX_COMPRESSION_RATIO`` — decompressed / compressed size of one member (zip bombs);
- ``IMPORT_MAX_ROWS_PER_TABLE`` — rows of one table (counted while streaming);
- ``IMPORT_PAGE_MAX_ROWS`` — rows of one upload on the page; larger files go through the command,
  so a long import never ties up a web worker.
A file over a limit gets one message that names the limit and the setting.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass

from django.conf import settings
from django.template.defaultfilters import filesizeformat

CHUNK_BYTES = 1 << 20


class ImportFileError(ValueError):
    """The file cannot be read as exchange tables at all (wrong format, unknown table, too large)."""


class ImportLimitError(ImportFileError):
    """The file is larger than an import may be; nothing was read beyond the limit."""


@dataclass(frozen=True)
class ImportLimits:
    max_member_bytes: int
    max_compression_ratio: float
    max_rows_per_table: int
    #: Rows of the whole upload (the page's limit); None: only the per-table limit (the command).
    max_total_rows: int | None = None

    @classmethod
    def for_command(cls) -> ImportLimits:
        return cls(
            settings.IMPORT_MAX_MEMBER_BYTES,
            settings.IMPORT_MAX_COMPRESSION_RATIO,
            settings.IMPORT_MAX_ROWS_PER_TABLE,
        )

    @classmethod
    def for_page(cls) -> ImportLimits:
        return cls(
            settings.IMPORT_MAX_MEMBER_BYTES,
            settings.IMPORT_MAX_COMPRESSION_RATIO,
            settings.IMPORT_MAX_ROWS_PER_TABLE,
            settings.IMPORT_PAGE_MAX_ROWS,
        )

    def check_archive(self, archive: zipfile.ZipFile, *, what: str) -> None:
        """Refuse a zip (or workbook) whose members declare a size or ratio over the limits."""
        for info in archive.infolist():
            self._check_member(info, what=what)

    def _check_member(self, info: zipfile.ZipInfo, *, what: str) -> None:
        if info.file_size > self.max_member_bytes:
            raise ImportLimitError(
                f"{what}: {info.filename} expands to {filesizeformat(info.file_size)}, over the limit of "
                f"{filesizeformat(self.max_member_bytes)} per file (IMPORT_MAX_MEMBER_BYTES)."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > CHUNK_BYTES and ratio > self.max_compression_ratio:
            raise ImportLimitError(
                f"{what}: {info.filename} is compressed {ratio:,.0f} to 1, more than the "
                f"{self.max_compression_ratio:,.0f} to 1 a real table reaches (IMPORT_MAX_COMPRESSION_RATIO); "
                "it looks like a zip bomb and was not expanded."
            )

    def read_member(self, archive: zipfile.ZipFile, name: str, *, what: str) -> bytes:
        """A member's bytes, read in chunks and stopped at the limit whatever its header says."""
        info = archive.getinfo(name)
        self._check_member(info, what=what)
        chunks, total = [], 0
        with archive.open(info) as member:
            while chunk := member.read(CHUNK_BYTES):
                total += len(chunk)
                if total > self.max_member_bytes:
                    raise ImportLimitError(
                        f"{what}: {name} expands beyond the limit of {filesizeformat(self.max_member_bytes)} "
                        "per file (IMPORT_MAX_MEMBER_BYTES)."
                    )
                chunks.append(chunk)
        return b"".join(chunks)

    def check_rows(self, table: str, rows: int) -> None:
        """Called with the running count of a table's rows: refuse as soon as it passes the limit."""
        if rows > self.max_rows_per_table:
            raise ImportLimitError(
                f"{table}: more than {self.max_rows_per_table:,} rows, the limit per table "
                "(IMPORT_MAX_ROWS_PER_TABLE)."
            )

    def check_total(self, rows: int) -> None:
        if self.max_total_rows is not None and rows > self.max_total_rows:
            raise ImportLimitError(
                f"This file has {rows:,} rows; the upload page imports at most {self.max_total_rows:,} "
                "(IMPORT_PAGE_MAX_ROWS) so that a long import never holds up the web server. Import it on the "
                "server with: python manage.py import_records FILE --study STUDY --site SITE "
                "(add --dry-run to check it first)."
            )


def check_upload_size(size: int) -> None:
    if size > settings.IMPORT_MAX_UPLOAD_BYTES:
        raise ImportLimitError(
            f"The upload is {filesizeformat(size)}, over the limit of "
            f"{filesizeformat(settings.IMPORT_MAX_UPLOAD_BYTES)} (IMPORT_MAX_UPLOAD_BYTES). Split the file, "
            "or import it on the server with python manage.py import_records."
        )
