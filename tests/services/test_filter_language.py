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
    picked = parse_filter("trace:demo:spans,demo:inject,demo:spans outcome:failure")
    assert picked == CorpusFilter(outcome="failure", trace_ids=("demo:spans", "demo:inject"))
    assert parse_filter(format_filter(picked)) == picked
    assert format_filter(picked, brief=True) == "outcome:failure trace:<2 ids>"
    for bad in (
        "trace:",
        "sort:nope",
        "agree:maybe",
        "category:none",
        "tok.entropy_mean>x",
        'unclosed "quote',
        "* ,",
    ):
        with pytest.raises(FilterError):
            parse_filter(bad, {})


def test_unknown_modes_and_features_are_errors_not_searches() -> None:
    modes, features = ["1.1", "1.3"], ["tok.surprisal_mean", "tok.entropy_mean"]
    assert parse_filter("mode:1.3 tok.entropy_mean>2", None, modes, features).mode == "1.3"
    with pytest.raises(FilterError, match=r"unknown mode '9\.9'"):
        parse_filter("mode:9.9", None, modes, features)
    with pytest.raises(FilterError, match=r"unknown feature 'tok\.nonsense'.*tok\.surprisal_mean"):
        parse_filter("tok.nonsense>3", None, modes, features)
    with pytest.raises(FilterError, match="no per-step features stored"):
        parse_filter("tok.surprisal_mean>3", None, modes, [])
    with pytest.raises(FilterError, match="unknown filter key 'model'"):
        parse_filter("model:gpt-4o", None, modes, features)
