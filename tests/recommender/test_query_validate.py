"""Query-string validation (recommender/apis.py ``query_validate``): a valid query string's
result is kept and handed out as a copy; an invalid one is refused every time."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from rest_framework.exceptions import ValidationError

from recommender.apis import RECOMMENDATIONS_QUERY, _validated, query_validate


def test_the_same_query_string_is_validated_once_and_each_caller_gets_a_copy():
    _validated.cache_clear()
    first = query_validate(RECOMMENDATIONS_QUERY, QueryDict("limit=5&exclude=a,b"))
    first["exclude"].append("mutated")
    second = query_validate(RECOMMENDATIONS_QUERY, QueryDict("exclude=a,b&limit=5"))

    assert second["limit"] == 5 and second["exclude"] == ["a", "b"]
    assert _validated.cache_info().hits == 1


def test_an_invalid_query_string_is_refused_every_time():
    _validated.cache_clear()
    for _ in range(2):
        with pytest.raises(ValidationError):
            query_validate(RECOMMENDATIONS_QUERY, QueryDict("limit=0"))
    assert _validated.cache_info().currsize == 0
