from typing import Any

from django.core.management.base import BaseCommand, CommandError

from llm.backends.base import GenerationError
from llm.models import Backend, ModelConfig


class Command(BaseCommand):
    help = (
        "Serve a transformers model config as an OpenAI-compatible chat-completions server "
        "(streaming), so several workers can share one inference process."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("config", help="the model config's name or id")
        parser.add_argument("--port", type=int, required=True)
        parser.add_argument(
            "--host", default="127.0.0.1", help="default 127.0.0.1; there is no authentication"
        )

    def handle(self, *args: Any, config: str, port: int, host: str, **options: Any) -> None:
        from llm.generation import backend_for
        from llm.openai_server import serve

        lookup = {"pk": int(config)} if config.isdigit() else {"name": config}
        model_config = ModelConfig.objects.filter(**lookup).first()
        if model_config is None:
            raise CommandError(f"no model config named {config!r}")
        if model_config.backend != Backend.TRANSFORMERS:
            raise CommandError(f"{model_config.name} is not a transformers config")
        if not 1 <= port <= 65535:
            raise CommandError(f"--port must be between 1 and 65535, got {port}")
        try:
            backend = backend_for(model_config)
        except GenerationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(f"Serving {model_config.name} at http://{host}:{port}/v1", ending="\n")
        self.stdout.flush()
        serve(backend, model_name=model_config.name, host=host, port=port)
