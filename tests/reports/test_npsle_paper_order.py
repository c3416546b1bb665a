"""The NPSLE report's sections follow the paper's results in the order the paper reports them.

Each section title names the table or figure of the paper it reproduces ("Supp. Fig. 3: …"); the
sections the paper reports in its text only are anchored by a phrase of that text. The paper
(../shared/papers/npsle_intrathecal_mtx_dex_386.txt) is read from its Results heading on, and each
section's first mention there must come after the previous section's.
"""

from __future__ import annotations

import re

from analytics.reports.npsle import NpsleReport

#: Sections the paper reports in its text only, by a phrase of that text.
TEXT_ANCHORS = {
    "person_years": r"endpoint events",
    "cox_multivariable": r"multivariable Cox regression model",
    "safety": r"safety of intrathecal treatment",
}
#: The registry's own section, not in the paper: after the paper's.
OWN_SECTIONS = ("doses",)


def paper_results(shared_dir) -> str:
    text = (shared_dir / "papers" / "npsle_intrathecal_mtx_dex_386.txt").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"-\s*\n\s*", "", text))  # words split across lines joined
    return text[text.rindex("Results", 0, text.index("Discussion")) :]


def anchor(title: str) -> str:
    """The first table or figure a title names ('Propensity-score matching (Supp. Fig. 1)'), as the
    paper cites it ('Supplementary Figure 1'; a main figure or table not preceded by 'Supplementary')."""
    found = re.search(r"(Supp\. )?(Fig\.|Table) (\d+[a-z]?)", title)
    assert found, title
    supplementary, kind, number = found.groups()
    if supplementary:
        name = "Figure" if kind == "Fig." else "Table"
        return rf"Supplementary {name} {number}(?!\d)"
    name = r"(Figure|Fig\.)" if kind == "Fig." else "Table"
    return rf"(?<!Supplementary ){name} {number}(?!\d)"


def test_sections_follow_the_papers_results_in_order(shared_dir):
    results = paper_results(shared_dir)
    sections = NpsleReport.__new__(NpsleReport).sections()
    positions = []
    for key, title, _ in sections:
        if key in OWN_SECTIONS:
            continue
        pattern = TEXT_ANCHORS.get(key) or anchor(title)
        found = re.search(pattern, results)
        assert found, f"{key}: {pattern!r} is not in the paper's results"
        positions.append((found.start(), key))
    starts = [start for start, _ in positions]  # two sections may share a figure (Supp. Fig. 3)
    assert starts == sorted(starts), positions
    assert [key for key, _, _ in sections][-len(OWN_SECTIONS) :] == list(OWN_SECTIONS)
    assert len(positions) + len(OWN_SECTIONS) == len(sections)
