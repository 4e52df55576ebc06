"""Bounded paging for list endpoints: no client can ask for an unbounded page."""

from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    default_limit = 20
    max_limit = 100
