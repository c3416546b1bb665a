"""The report page turns a table too wide for it that has few rows (each column becomes a row);
narrow or long tables keep their shape, and the PDF always prints the table as it is."""

from analytics.reports.display import SCREEN_CHARS, TURN_MAX_ROWS, Cell, DisplayTable


def _table(columns: int, rows: int) -> DisplayTable:
    headers = [
        Cell("Patients", False),
        *(Cell(f"Median measurement{i:02d} (mg)", True) for i in range(1, columns)),
    ]
    body = [
        [Cell(f"Group {r}", False), *(Cell(f"{r}.{c}", True) for c in range(1, columns))] for r in range(rows)
    ]
    return DisplayTable("doses.intensity", "Schedule", headers, body, ["a note"])


def test_a_wide_table_of_few_rows_is_turned_on_the_page():
    wide = _table(columns=14, rows=2)
    assert wide.width_chars > SCREEN_CHARS
    turned = wide.on_screen
    assert [h.text for h in turned.headers] == ["", "Group 0", "Group 1"]
    assert [row[0].text for row in turned.rows] == [h.text for h in wide.headers[1:]]
    assert [c.text for c in turned.rows[-1]] == ["Median measurement13 (mg)", "0.13", "1.13"]
    assert turned.rows[-1][1].numeric and not turned.rows[-1][0].numeric
    assert (turned.key, turned.title, turned.notes) == (wide.key, wide.title, wide.notes)
    assert turned.width_chars <= SCREEN_CHARS


def test_narrow_or_long_tables_keep_their_shape():
    narrow = _table(columns=4, rows=2)
    assert narrow.width_chars <= SCREEN_CHARS and narrow.on_screen is narrow
    long = _table(columns=14, rows=TURN_MAX_ROWS + 1)
    assert long.on_screen is long
