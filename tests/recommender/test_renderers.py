"""The serving endpoints' orjson renderer writes what DRF's JSONRenderer writes."""

import json
from decimal import Decimal

import numpy as np
from django.utils.translation import gettext_lazy
from rest_framework.exceptions import ErrorDetail
from rest_framework.renderers import JSONRenderer

from recommender.renderers import OrjsonRenderer

PAGE = {
    "recommender": "default",
    "user_id": 'ü/42 "quoted"',
    "model_version": 3,
    "recommendation_id": "0" * 32,
    "fallback": None,
    "items": [
        {"item_id": "i1", "score": 0.1, "rank": 1, "title": "Amélie ✓", "categories": ["a"]},
        {"item_id": "i2", "score": -1e-06, "rank": 2, "title": None, "categories": []},
        {"item_id": "i3", "score": 123456.123456, "rank": 3, "title": "", "categories": []},
    ],
    "pagination": {"limit": 20, "offset": 0, "total": 1682, "has_more": True},
}


def test_a_page_is_the_same_json_as_drfs():
    written = OrjsonRenderer().render(PAGE)
    assert json.loads(written) == json.loads(JSONRenderer().render(PAGE)) == PAGE
    assert b"\\u" not in written  # UTF-8, not escaped, like DRF's UNICODE_JSON
    assert b", " not in written and b": " not in written  # compact like DRF's COMPACT_JSON


def test_error_bodies_and_what_orjson_does_not_know_are_encoded_like_drf():
    body = {
        "error": {
            "code": ErrorDetail("invalid", code="invalid"),
            "message": gettext_lazy("Invalid input."),
            "detail": {"limit": [ErrorDetail("Too big.", code="max_value")], 1: Decimal("2.5")},
        }
    }
    assert json.loads(OrjsonRenderer().render(body)) == json.loads(JSONRenderer().render(body))


def test_numpy_values_are_written_as_numbers():
    data = {"a": np.float32(0.5), "b": np.int64(7), "c": np.arange(3)}
    assert json.loads(OrjsonRenderer().render(data)) == {"a": 0.5, "b": 7, "c": [0, 1, 2]}


def test_no_data_is_an_empty_body():
    assert OrjsonRenderer().render(None) == b""
