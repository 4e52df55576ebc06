"""GET of the two serving endpoints as plain Django views.

DRF's dispatch around a view (wrapping the request, content negotiation, policy objects
built per request, finalizing the response) was about a third of a recommendation
request's Python CPU (docs/BENCHMARKS.md). These views skip that machinery, not its
policy: they run the serving API class's own authentication, permission and throttle
classes (the same methods DRF calls, in DRF's order), its ``answer`` (validation and
work), the one error answer (``recommender.errors``) and the same orjson writer, so a
response is the same bytes and status either way (tests/recommender/test_serving_views.py
compares them). Every other method goes to the DRF view, which also documents the
endpoint: the plain view carries it as ``cls`` / ``view_class``, where drf-spectacular
and the URL classification look."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions

from recommender.apis import ServingApi
from recommender.errors import error_answer
from recommender.renderers import json_bytes

CONTENT_TYPE = "application/json"


def serving_view(api: type[ServingApi]) -> Callable[..., HttpResponse]:
    """The view for ``api``'s URL: GET answered here, anything else by ``api.as_view()``."""
    drf_view = api.as_view()
    authenticators = [authentication() for authentication in api.authentication_classes]
    permissions = [permission() for permission in api.permission_classes]
    throttle_classes = api.throttle_classes
    instance = api()
    instance.setup(None)  # as for a request: a view with GET also answers HEAD
    allow = ", ".join(instance.allowed_methods)

    def admit(request: HttpRequest) -> None:
        """DRF's ``APIView.initial``: authenticate, check permissions, then throttles.
        Sets ``request.auth`` (the API key, or None), which the policies read."""
        request.auth = None
        authenticated = False
        for authenticator in authenticators:
            found = authenticator.authenticate(request)
            if found is not None:
                request.auth = found[1]
                authenticated = True
                break
        for permission in permissions:
            if not permission.has_permission(request, None):
                if authenticators and not authenticated:
                    raise exceptions.NotAuthenticated()
                raise exceptions.PermissionDenied(
                    detail=getattr(permission, "message", None),
                    code=getattr(permission, "code", None),
                )
        waits = []
        for throttle in (throttle_class() for throttle_class in throttle_classes):
            if not throttle.allow_request(request, None):
                waits.append(throttle.wait())
        if waits:
            raise exceptions.Throttled(max((w for w in waits if w is not None), default=None))

    @csrf_exempt
    def view(request: HttpRequest, **path: str) -> HttpResponse:
        if request.method != "GET":
            return drf_view(request, **path)
        headers = {}
        try:
            admit(request)
            body, status = api.answer(request.GET, **path), 200
        except Exception as exc:
            if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
                # DRF's ``handle_exception``: a 401 names the scheme (403 without one)
                if authenticators:
                    exc.auth_header = authenticators[0].authenticate_header(request)
                else:
                    exc.status_code = 403
            answer = error_answer(exc)
            if answer is None:
                raise
            body, status, headers = answer.body, answer.status, answer.headers
        response = HttpResponse(json_bytes(body), status=status, content_type=CONTENT_TYPE)
        for name, value in headers.items():
            response[name] = value
        response["Allow"] = allow
        return response

    view.serving = True  # recsite/wsgi_serving.py answers its GETs without the URLconf
    view.cls = api  # drf-spectacular documents the endpoint from the DRF class
    view.initkwargs = {}
    view.view_class = api  # Django's attribute for class-based views
    return view
