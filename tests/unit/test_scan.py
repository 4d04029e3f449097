"""The fault runs' privacy check finds exactly what a search per value would."""

from hypothesis import given
from hypothesis import strategies as st

from tests.support.scan import values_found_in

text = st.text(alphabet="ab +-]^\\\n0", max_size=40)


@given(st.lists(st.text(alphabet="ab +-]^\\0", min_size=1, max_size=5), max_size=8), st.lists(text, max_size=5))
def test_finds_what_a_search_per_value_finds(values: list[str], texts: list[str]) -> None:
    assert values_found_in(values, texts) == {value for value in values for t in texts if value in t}


def test_finds_a_value_inside_a_log_line_and_nothing_else() -> None:
    lines = ['{"event": "case received", "case_id": "c-1"}', '{"name": "Ouder van gezin 12"}']
    assert values_found_in(["Ouder van gezin 12", "Ouder van gezin 13", "+31 6 10000012"], lines) == {"Ouder van gezin 12"}
    assert values_found_in(["Ouder van gezin 1"], lines) == {"Ouder van gezin 1"}, "a prefix of a longer value counts"
    assert values_found_in([], lines) == set()
