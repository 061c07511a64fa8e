import pytest

from debate.research.imports import debate_files_import
from tests.debate.research_data import ROOMS
from tests.debate.research_factories import BankQuestionFactory
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


def test_the_research_tables_open_in_the_django_admin(admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    debate_files_import(files=[(ROOMS[0].name, ROOMS[0].read_bytes())])
    BankQuestionFactory()
    client = signed_in(admin_user)
    for name in ["debate", "verdict", "questionbank", "bankquestion", "debatebatch"]:
        assert client.get(f"/admin/debate/{name}/").status_code == 200, name
        # Imports and services write them: no Add (tests/config/test_admin.py).
        assert client.get(f"/admin/debate/{name}/add/").status_code == 403, name
    from debate.models import Debate

    debate = Debate.objects.get()
    assert client.get(f"/admin/debate/debate/{debate.pk}/change/").status_code == 200
