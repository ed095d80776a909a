"""The filter bar's language: words <-> CorpusFilter, and one-line errors for what it cannot read."""

from __future__ import annotations

import pytest

from tracefail.services.filter_language import (
    CorpusFilter,
    FeatureThreshold,
    FilterError,
    format_filter,
    parse_filter,
)


def test_parse_filter_round_trip() -> None:
    f = parse_filter('framework:AG2 mode:1.3 agree:no tok.surprisal_mean>4.5 sort:-steps "wrong answer"')
    assert f == CorpusFilter(
        framework="AG2",
        mode="1.3",
        agreement="disagree",
        features=(FeatureThreshold("tok.surprisal_mean", ">", 4.5),),
        sort="steps",
        descending=True,
        text='"wrong answer"',  # a phrase for the search service
    )
    assert parse_filter(format_filter(f)) == f
    category = parse_filter("category:FC3", {"FC3": ["3.1", "3.2"]})
    assert category.category_modes == ("3.1", "3.2")
    assert parse_filter(format_filter(category), {"FC3": ["3.1", "3.2"]}) == category
    for bad in ("sort:nope", "agree:maybe", "category:none", "tok.entropy_mean>x", 'unclosed "quote', "* ,"):
        with pytest.raises(FilterError):
            parse_filter(bad, {})
