import pytest

from predictor.parse import parse_length_guess


@pytest.mark.parametrize(
    ("answer", "tokens"),
    [
        ("150", 150),
        ("about 150", 150),
        ("150-200", 175),
        ("150 – 200 tokens", 175),
        ("Roughly 50 to 100", 75),
        ("~1k", 1000),
        ("1.5k", 1500),
        ("1,200 tokens", 1200),
        ("I think 300.", 300),
        ("fifty", 50),
        ("a thousand", 1000),
        ("around 200 words", 270),
        (" 42\n", 42),
    ],
)
def test_parses_numbers_ranges_and_units(answer, tokens):
    assert parse_length_guess(answer) == pytest.approx(tokens)


@pytest.mark.parametrize("answer", [None, "", "junk", "I cannot say.", "0", "99999999", "100000", "-", "..."])
def test_junk_and_absurd_guesses_are_none(answer):
    assert parse_length_guess(answer) is None
