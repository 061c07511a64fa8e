from django.core.management import call_command

from experiments.analysis import experiment_analysis
from experiments.demo import SLUG
from experiments.models import AssistanceJob, Experiment


def test_the_demo_has_a_finished_experiment_with_numbers(db):
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    call_command("seed_demo", password="demo-password-for-tests", verbosity=0)
    experiment = Experiment.objects.get(slug=SLUG)
    analysis = experiment_analysis(experiment)
    assert [row.participants for row in analysis.arms] == [4, 4]
    assert all(row.accuracy.n > 0 for row in analysis.arms)
    assert sum(row.late for row in analysis.arms) == 6  # the slow simulated rater's labels
    assert analysis.comparisons[0].difference is not None
    assert experiment.participants.filter(completed_at__isnull=True).count() == 0
    assert AssistanceJob.objects.filter(arm__experiment=experiment).count() == 1
