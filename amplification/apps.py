from django.apps import AppConfig


class AmplificationConfig(AppConfig):
    name = "amplification"
