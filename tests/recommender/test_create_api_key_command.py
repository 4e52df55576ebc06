import pytest
from django.core.management import CommandError, call_command

from recommender.models import ApiKey


@pytest.mark.django_db
def test_prints_a_working_key_once(capsys):
    call_command("create_api_key", "frontend", "--scopes", "events:write", "recommendations:read")
    key = capsys.readouterr().out.strip()
    api_key = ApiKey.objects.get(name="frontend")
    assert api_key.is_valid(key)
    assert api_key.scopes == ["events:write", "recommendations:read"]
    assert key not in api_key.hashed_key


@pytest.mark.django_db
def test_an_unknown_scope_is_a_usage_error():
    with pytest.raises(CommandError):
        call_command("create_api_key", "x", "--scopes", "everything")
    assert not ApiKey.objects.exists()
