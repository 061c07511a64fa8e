"""Every write of the experiments app, a module per side: design (experiments and arms,
frozen once anyone joins; the study link's switch; the start of an assistance job, whose run
is experiments/assistance.py, on a worker) and participants (joining, the items served, answers
and time-outs, assistance flags).

Items are served and labelled through annotations' services on the arm's own queue
(queue_item_claim, queue_item_prefetch, label_submit, assignment_skip), so k, leases and skips
are theirs.
"""

from experiments.services.design import (
    ASSISTANCE_TASK,
    RATING_KINDS,
    UNCHANGED,
    ArmSpec,
    arm_add,
    arm_change,
    assistance_job_retry,
    assistance_job_start,
    experiment_create,
    experiment_link_set,
)
from experiments.services.participants import (
    assistance_flag,
    assistance_for_lease,
    participant_consent,
    participant_join,
    participant_lease,
    participant_prefetch,
    response_submit,
    response_time_out,
)

__all__ = [
    "ASSISTANCE_TASK",
    "RATING_KINDS",
    "UNCHANGED",
    "ArmSpec",
    "arm_add",
    "arm_change",
    "assistance_flag",
    "assistance_for_lease",
    "assistance_job_retry",
    "assistance_job_start",
    "experiment_create",
    "experiment_link_set",
    "participant_consent",
    "participant_join",
    "participant_lease",
    "participant_prefetch",
    "response_submit",
    "response_time_out",
]
