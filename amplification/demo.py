"""Demo objects for `manage.py seed_demo`: one small finished tree.

Stored from recorded text, not generated: expanding even a small tree on the bundled model
takes a minute of CPU at seed time, which `make run` would pay on every fresh machine. The
tree is marked `is_demo` and the inspector says so; its text was written for the demo in the
shape the bundled model produces. It goes in through the same import service as a JSON file.
"""

from __future__ import annotations

from django.contrib.auth.models import User

from amplification.models import (
    DEFAULT_ANSWER_PROMPT,
    DEFAULT_COMPOSE_PROMPT,
    DEFAULT_DECOMPOSE_PROMPT,
    Mode,
    Tree,
    TreeStatus,
)
from amplification.schemas import NodeExport, TreeExport
from amplification.services import tree_import
from llm.models import BUNDLED_CONFIG_NAME, ModelConfig

QUESTION = "Why does a lighthouse keeper paint the door a bright colour?"
SUBS = [
    (
        "What do boats need to see from the channel?",
        "They need a landmark that stays visible in fog and poor light.",
    ),
    (
        "Which colours stay visible in fog?",
        "Bright, saturated colours such as green or red stand out against grey fog.",
    ),
]
ROOT_ANSWER = (
    "So that boats can still pick out the lighthouse in fog: a bright door stays visible "
    "against the grey when the white tower does not."
)


def _node(number: int, parent: int | None, position: int, question: str, answer: str,
          *, decomposed: bool) -> NodeExport:  # fmt: skip
    return NodeExport.model_validate(
        {
            "id": number,
            "parent": parent,
            "position": position,
            "depth": 0 if parent is None else 1,
            "question": question,
            "resolution": "decomposed" if decomposed else "answered",
            "direct_reason": "",
            "answer": "" if decomposed else answer,
            "composed_answer": answer if decomposed else "",
            "status": "done",
            "error": "",
            "decomposed_by": "model" if decomposed else "",
            "answered_by": "model",
            "person": None,
            "memo_origin": None,
            "calls": [],
            "prompt_tokens": None,
            "completion_tokens": None,
            "total_s": None,
            "versions": [
                {
                    "number": 1,
                    "question": question,
                    "answer": answer,
                    "resolution": "decomposed" if decomposed else "answered",
                    "reason": "demo data (recorded text)",
                    "author": "model",
                }
            ],
        }  # fmt: skip
    )


def seed() -> list[str]:
    if Tree.objects.filter(question=QUESTION, is_demo=True).exists():
        return []
    researcher = User.objects.filter(username="researcher").first()
    config = ModelConfig.objects.filter(name=BUNDLED_CONFIG_NAME).first()
    if researcher is None or config is None:
        return []
    nodes = [_node(0, None, 0, QUESTION, ROOT_ANSWER, decomposed=True)]
    nodes += [
        _node(number, 0, number - 1, question, answer, decomposed=False)
        for number, (question, answer) in enumerate(SUBS, start=1)
    ]
    data = TreeExport(
        format="arbiter-amplification-tree/1", question=QUESTION, context="",
        decompose_config=config.name, answer_config=config.name, compose_config=config.name,
        decompose_prompt=DEFAULT_DECOMPOSE_PROMPT, answer_prompt=DEFAULT_ANSWER_PROMPT,
        compose_prompt=DEFAULT_COMPOSE_PROMPT, max_depth=1, max_children=3, max_nodes=4,
        mode=Mode.MACHINE, hold_new_nodes=False, status=TreeStatus.DONE, error="", is_demo=True,
        wall_s=0.0, nodes=nodes,
    )  # fmt: skip
    tree = tree_import(data=data, created_by=researcher)
    return [f"demo amplification tree {tree.pk} (recorded text, 3 nodes)"]
