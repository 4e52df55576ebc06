import pytest
from django.core.management import CommandError, call_command

from recommender.models import PromotionEvent, Recommender, VersionStatus
from tests.factories import ModelVersionFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def versions():
    recommender = Recommender.objects.get(name="default")
    return [ModelVersionFactory(recommender=recommender, number=n) for n in (1, 2)]


def test_promote_then_rollback(versions, capsys):
    call_command("promote", "1", "--reason", "first")
    call_command("promote", "2", "--reason", "better")
    assert "v2 is active (was v1)" in capsys.readouterr().out
    call_command("rollback", "--reason", "bad clicks")
    assert "rolled back from v2 to v1" in capsys.readouterr().out
    versions[0].refresh_from_db()
    assert versions[0].status == VersionStatus.ACTIVE
    kinds = list(PromotionEvent.objects.order_by("id").values_list("kind", "reason"))
    assert kinds == [("promote", "first"), ("promote", "better"), ("rollback", "bad clicks")]


def test_promote_refusals_and_usage_errors(versions):
    call_command("promote", "1", "--reason", "x")
    with pytest.raises(CommandError) as refused:
        call_command("promote", "1", "--reason", "again")
    assert refused.value.returncode == 1
    with pytest.raises(CommandError) as unknown:
        call_command("promote", "9", "--reason", "x")
    assert unknown.value.returncode == 2


def test_rollback_without_a_previous_version_is_refused(versions):
    call_command("promote", "1", "--reason", "x")
    with pytest.raises(CommandError) as refused:
        call_command("rollback", "--reason", "x")
    assert refused.value.returncode == 1
