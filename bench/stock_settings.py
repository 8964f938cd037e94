"""The baselines' settings: the bench's, behind Django's stock middleware.

The middleware ``startproject`` writes, nothing of ours (no CSP, lockout,
htmx or WhiteNoise): the baseline views are what a plain Django project
would run, on the same database pool, cache and channel layer.
"""

from bench.settings import *  # noqa: F403

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
