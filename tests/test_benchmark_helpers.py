"""The benchmark's own arithmetic: the import file cut from an export, and a build's figures read
from a ``/usr/bin/time -v`` log (``benchmarks/``; the measurements themselves are not tests)."""

from __future__ import annotations

import csv
import io
import zipfile

from benchmarks.bench_100k import read_time_log
from benchmarks.exchange_subset import first_patients


def _zip(path, tables: dict[str, list[list[str]]]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, rows in tables.items():
            text = io.StringIO()
            csv.writer(text).writerows(rows)
            archive.writestr(name, text.getvalue())


def _read(path, name: str) -> list[list[str]]:
    with zipfile.ZipFile(path) as archive:
        return list(csv.reader(io.StringIO(archive.read(name).decode())))


def test_the_subset_keeps_the_first_patients_whose_rows_fit_and_every_row_of_theirs(tmp_path):
    export = tmp_path / "export.zip"
    _zip(
        export,
        {
            "patients.csv": [["study_code", "sex"], ["A", "F"], ["B", "M"], ["C", "F"]],
            "lumbar_punctures.csv": [
                ["study_code", "performed_at"],
                *[["A", f"2024-01-0{day}"] for day in (1, 2)],
                *[["B", f"2024-02-0{day}"] for day in (1, 2, 3)],
                ["C", "2024-03-01"],
            ],
            "dose_formulations.csv": [["name"], ["MTX 10 mg"]],
            "dataset.csv": [["study_code"], ["A"], ["B"], ["C"]],
        },
    )

    subset = first_patients(export, tmp_path / "subset.zip", most_rows=4)

    # B's three LPs would make five: the cut stops before B, even though C alone would still fit.
    assert _read(subset, "patients.csv") == [["study_code", "sex"], ["A", "F"]]
    assert _read(subset, "lumbar_punctures.csv") == [
        ["study_code", "performed_at"],
        ["A", "2024-01-01"],
        ["A", "2024-01-02"],
    ]
    assert _read(subset, "dose_formulations.csv") == [["name"], ["MTX 10 mg"]]  # no patient: kept whole
    assert "dataset.csv" not in zipfile.ZipFile(subset).namelist()  # not an import table


def test_a_time_log_gives_wall_cpu_and_peak_memory(tmp_path):
    log = tmp_path / "load.log"
    log.write_text(
        "npsle: 100000 patients loaded.\n"
        "\tUser time (seconds): 265.82\n"
        "\tSystem time (seconds): 2.21\n"
        "\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:11:42.75\n"
        "\tMaximum resident set size (kbytes): 791704\n"
    )

    figures = read_time_log(log)

    assert figures["wall"] == 3600 + 11 * 60 + 42.75
    assert round(figures["cpu"], 2) == 268.03
    assert round(figures["peak_rss_mib"], 1) == 773.1
