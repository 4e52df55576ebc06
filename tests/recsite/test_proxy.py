"""The client's address behind the reverse proxies."""

import pytest
from django.test import RequestFactory

from recsite.proxy import client_ip


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "203.0.113.7", "10.9.9.9"),  # no proxy configured: the header is the client's
        (1, "203.0.113.7", "203.0.113.7"),
        (1, "1.1.1.1, 203.0.113.7", "203.0.113.7"),  # the forged entry is ignored
        (2, "1.1.1.1, 203.0.113.7, 10.0.0.2", "203.0.113.7"),
        (2, "203.0.113.7", "10.9.9.9"),  # fewer entries than proxies: not via them
        (1, "", "10.9.9.9"),
    ],
)
def test_the_client_is_the_entry_the_nearest_proxy_wrote(settings, proxies, forwarded, expected):
    settings.RECSITE_PROXY_COUNT = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected
