"""Is an OpenAI-compatible server there? Asked by the config form, so a typo in a base URL is
refused when the researcher saves, not discovered when a debate fails."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

PROBE_TIMEOUT_S = 3.0


def models_url(base_url: str) -> str:
    root = base_url.rstrip("/")
    return f"{root}/models" if root.endswith("/v1") else f"{root}/v1/models"


def openai_server_probe(base_url: str, *, api_key: str | None) -> str | None:
    """None when the server lists its models; otherwise a sentence saying what went wrong."""
    request = urllib.request.Request(models_url(base_url))
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:
            json.loads(response.read(1_000_000))
    except urllib.error.HTTPError as error:
        return f"The server at {base_url} answered {error.code} to GET /v1/models."
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        reason = getattr(error, "reason", error)
        return f"Cannot reach an OpenAI-compatible server at {base_url}: {reason}."
    except ValueError:
        return f"The server at {base_url} did not answer GET /v1/models with JSON."
    return None
