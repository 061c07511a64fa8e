from celery import current_app

from rewards import services, tasks


def test_the_tasks_the_services_send_by_name_are_the_registered_tasks():
    """rewards.services sends its tasks by name, so that rewards.tasks imports the services
    and not the other way round: the names must stay true."""
    sent = {
        services.TRAINING_TASK: tasks.reward_training_task,
        services.SCORES_REFRESH_TASK: tasks.reward_scores_refresh_task,
        services.DEBATE_SCORES_FILL_TASK: tasks.debate_scores_fill_task,
    }
    for name, task in sent.items():
        assert current_app.tasks[name] is task._get_current_object()


def test_the_services_import_no_task_module():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(services))
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "rewards.tasks" not in imported
