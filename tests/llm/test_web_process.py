import json
import subprocess
import sys

from tests.helpers import PROJECT_DIR

PROBE = """
import json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from config.asgi import application
from django.urls import URLResolver, get_resolver

def visit(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            visit(pattern.url_patterns)
        else:
            pattern.callback  # the view function itself, imported

visit(get_resolver().url_patterns)
from config.celery import app
app.loader.import_default_modules()  # every tasks module, as when the web enqueues a task
from config.routing import websocket_urlpatterns
training = {"torch", "transformers", "accelerate", "trl", "peft", "datasets"}
heavy = sorted(m for m in sys.modules if m.split(".")[0] in training)
print(json.dumps({"views": len(get_resolver().reverse_dict), "heavy": heavy}))
"""


def test_the_web_process_never_imports_torch():
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["views"] > 10
    assert report["heavy"] == []
