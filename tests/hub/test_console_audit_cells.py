"""The audit CSV's cells that a spreadsheet could read as a formula get a leading apostrophe,
also behind leading spaces and in their full-width forms, which Excel in a CJK locale takes as
the ASCII ones (＝SUM(…) is a formula there) (attack review). Other text is left as it is."""

from __future__ import annotations

import pytest

from hub.console.audit_log import safe_cell


@pytest.mark.parametrize(
    "text",
    ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", " =HYPERLINK(\"x\")", "\u3000=1", "\n=1",
     "＝HYPERLINK(\"http://x\")", "＋1", "－1", "＠SUM(A1)", "  ＝1"],
)  # fmt: skip
def test_formula_starts_are_quoted(text: str) -> None:
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["admin1", "job 12", "event 3 files=4", "王治安 contact=sh1", "", "a=b"])
def test_plain_text_is_left_alone(text: str) -> None:
    assert safe_cell(text) == text
