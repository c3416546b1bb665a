"""REDCap exports (data dictionary + records CSV) turned into exchange tables through a mapping file.

The mapping (JSON) names, for each exchange table, which REDCap rows feed it (the non-repeating
row, or a repeating instrument) and where each column comes from: a REDCap field, optionally with
its codes translated (every code the data dictionary defines must be mapped, so nothing is dropped
silently), or a fixed value. REDCap date-times have no time zone: the mapping gives it. The result
goes through the same importer as the registry's own files. See exchange/examples/redcap/.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from .layout import BY_NAME
from .limits import ImportLimits


class RedcapMappingError(ValueError):
    """The mapping does not fit the data dictionary or the records."""


def _text(content: bytes, what: str) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RedcapMappingError(f"The REDCap {what} is not UTF-8 text.") from None


def _csv_records(content: bytes, what: str, limits: ImportLimits) -> list[dict[str, str]]:
    rows = []
    try:
        for count, row in enumerate(csv.DictReader(io.StringIO(_text(content, what))), start=1):
            limits.check_rows(f"REDCap {what}", count)
            rows.append(row)
    except csv.Error as error:
        raise RedcapMappingError(f"The REDCap {what} cannot be read as CSV ({error}).") from None
    return rows


#: Field name → {"type": ..., "choices": {code: label}}; a row without a field name is keyed None.
Dictionary = dict[str | None, dict[str, Any]]


def _dictionary(content: bytes, limits: ImportLimits) -> Dictionary:
    """Field name → {"type": ..., "choices": {code: label}} from a REDCap data dictionary CSV."""
    fields: Dictionary = {}
    for row in _csv_records(content, "data dictionary", limits):
        name = row.get("Variable / Field Name") or row.get("field_name")
        kind = row.get("Field Type") or row.get("field_type") or ""
        choices_text = (
            row.get("Choices, Calculations, OR Slider Labels")
            or row.get("select_choices_or_calculations")
            or ""
        )
        choices: dict[str, str] = {}
        if kind in ("radio", "dropdown", "checkbox", "yesno", "truefalse"):
            if kind == "yesno":
                choices = {"1": "Yes", "0": "No"}
            elif kind == "truefalse":
                choices = {"1": "True", "0": "False"}
            else:
                for item in choices_text.split("|"):
                    code, _, label = item.strip().partition(",")
                    if code.strip():
                        choices[code.strip()] = label.strip()
        fields[name] = {"type": kind, "choices": choices}
    if not fields:
        raise RedcapMappingError("The REDCap data dictionary is empty or not a REDCap data dictionary CSV.")
    return fields


def _check_mapping(mapping: dict, dictionary: Dictionary) -> list[str]:
    problems = []
    record_id = mapping.get("record_id", "record_id")
    if record_id not in dictionary:
        problems.append(f"record_id field {record_id!r} is not in the data dictionary")
    for table_name, spec in mapping.get("tables", {}).items():
        if table_name not in BY_NAME:
            problems.append(f"{table_name}: not an exchange table ({', '.join(BY_NAME)})")
            continue
        known = set(BY_NAME[table_name].columns()) - {"study_code"}
        for block in spec.get("rows", [spec]):
            for column, source in block.get("columns", {}).items():
                if column not in known:
                    problems.append(f"{table_name}.{column}: not a column of the table")
                if "field" not in source:
                    continue
                base = source["field"].split("___")[0]
                if base not in dictionary:
                    problems.append(
                        f"{table_name}.{column}: REDCap field {source['field']!r} is not in the dictionary"
                    )
                    continue
                choices = dictionary[base]["choices"]
                codes = source.get("codes")
                if choices and "___" not in source["field"] and codes is not None:
                    unmapped = sorted(set(choices) - set(codes))
                    if unmapped:
                        problems.append(
                            f"{table_name}.{column}: REDCap codes {', '.join(unmapped)} of "
                            f"{source['field']} are not mapped"
                        )
            when = block.get("when")
            if when and when.get("field", "").split("___")[0] not in dictionary:
                problems.append(
                    f"{table_name}: condition field {when.get('field')!r} is not in the dictionary"
                )
    return problems


def _value(
    source: dict[str, Any], record: dict[str, str], line: int, problems: list[str], column: str
) -> str:
    if "value" in source:
        return str(source["value"])
    raw = (record.get(source["field"]) or "").strip()
    if raw == "":
        return ""
    codes = source.get("codes")
    if codes is not None:
        if raw not in codes:
            problems.append(f"line {line}, {source['field']}: value {raw!r} has no mapping for {column}")
            return ""
        return str(codes[raw])
    if source.get("timezone"):
        return raw.replace(" ", "T") + (":00" if raw.count(":") == 1 else "") + source["timezone"]
    return raw


def redcap_tables(
    records: bytes, dictionary_csv: bytes, mapping_json: bytes, *, limits: ImportLimits | None = None
):
    """Exchange tables (name → [(line, row)]) from a REDCap records export, and notes."""
    limits = limits or ImportLimits.for_command()
    try:
        mapping = json.loads(_text(mapping_json, "mapping file"))
    except json.JSONDecodeError as error:
        raise RedcapMappingError(f"The mapping file is not valid JSON: {error}") from None
    except RecursionError:
        raise RedcapMappingError("The mapping file is nested too deeply to be a mapping.") from None
    if not isinstance(mapping, dict) or not isinstance(mapping.get("tables", {}), dict):
        raise RedcapMappingError('The mapping file must be a JSON object with a "tables" object.')
    dictionary = _dictionary(dictionary_csv, limits)
    records_rows = _csv_records(records, "records", limits)
    try:
        tables, notes = _tables(mapping, dictionary, records_rows)
    except (AttributeError, TypeError, KeyError) as error:
        # A mapping of the wrong shape (a list where a table's object belongs, a missing "field", ...).
        raise RedcapMappingError(
            f"The mapping file does not have the mapping layout (see exchange/examples/redcap/mapping.json): "
            f"{type(error).__name__} {str(error)[:120]}"
        ) from None
    limits.check_total(sum(len(rows) for rows in tables.values()))
    return tables, notes


def _tables(mapping: dict, dictionary: dict, reader: list[dict[str, str]]):
    problems = _check_mapping(mapping, dictionary)
    if problems:
        raise RedcapMappingError("The REDCap mapping does not fit: " + "; ".join(problems))
    record_id = mapping.get("record_id", "record_id")
    prefix = mapping.get("study_code_prefix", "")
    tables: dict[str, list[tuple[int, dict[str, str]]]] = {}
    value_problems: list[str] = []
    for line, record in enumerate(reader, start=2):
        instrument = (record.get("redcap_repeat_instrument") or "").strip()
        for table_name, spec in mapping["tables"].items():
            if (spec.get("instrument") or "") != instrument:
                continue
            for block in spec.get("rows", [spec]):
                when = block.get("when")
                if when and (record.get(when["field"]) or "").strip() != str(when["equals"]):
                    continue
                row = {"study_code": prefix + (record.get(record_id) or "").strip()}
                for column, source in block.get("columns", {}).items():
                    row[column] = _value(source, record, line, value_problems, column)
                tables.setdefault(table_name, []).append((line, row))
    if value_problems:
        raise RedcapMappingError("REDCap values without a mapping: " + "; ".join(value_problems[:50]))
    notes = [f"REDCap: {len(rows)} {name} row(s)" for name, rows in tables.items()]
    return tables, notes
