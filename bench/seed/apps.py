from django.apps import AppConfig


class SeedConfig(AppConfig):
    """Baselines for the benchmarks; tables made by ``migrate --run-syncdb``."""

    name = "bench.seed"
    label = "bench_seed"
    default_auto_field = "django.db.models.BigAutoField"
