from __future__ import annotations

import pytest

from experiments.services import participant_join
from tests.experiments.conftest import make_experiment
from tests.helpers import signed_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def superuser(admin_user):
    admin_user.is_superuser = True
    admin_user.save()
    return admin_user


@pytest.mark.parametrize(
    "model", ["experiment", "arm", "armitem", "participant", "response", "assistancetext",
              "assistanceflag", "assistancejob"],
)  # fmt: skip
def test_every_model_has_an_admin_list(superuser, model):
    make_experiment()
    assert signed_in(superuser).get(f"/admin/experiments/{model}/").status_code == 200


def test_a_frozen_experiments_arms_and_slug_cannot_be_edited_in_the_admin(superuser):
    experiment = make_experiment()
    client = signed_in(superuser)
    arm = experiment.arms.first()
    # Arms change only through the service, which refuses once frozen: read-only here.
    assert (
        b'name="time_limit_s"' not in client.get(f"/admin/experiments/arm/{arm.pk}/change/").content
    )
    assert (
        b'name="slug"'
        in client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content
    )
    participant_join(experiment=experiment, external_id="P1", study_id="s", session_id="x")
    page = client.get(f"/admin/experiments/experiment/{experiment.pk}/change/").content
    assert b'name="slug"' not in page and b'name="consent"' in page
