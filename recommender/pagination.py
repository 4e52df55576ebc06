"""Bounded paging for list endpoints: no client can ask for an unbounded page."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100


# For ``extend_schema`` on the list views (plain ``APIView``s, whose paging
# drf-spectacular cannot see): the query parameters and the page's shape.
PAGE_PARAMETERS = [
    OpenApiParameter(
        "limit",
        OpenApiTypes.INT,
        description=f"Page size (default {BoundedLimitOffsetPagination.default_limit}, "
        f"at most {BoundedLimitOffsetPagination.max_limit}).",
    ),
    OpenApiParameter("offset", OpenApiTypes.INT, description="Rows to skip (default 0)."),
]


def paginated(serializer: type[serializers.Serializer], name: str) -> serializers.Serializer:
    """The documented page of ``serializer`` rows: ``{count, next, previous, results}``."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )
