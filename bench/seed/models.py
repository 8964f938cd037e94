"""The seed recipe's tables, as a naive first version would declare them.

No migrations on purpose: ``manage.py migrate --run-syncdb`` under
``bench.settings`` creates them, so the app's migration history is untouched.
There is no uniqueness on messages (the seed had no idempotency); the session
lookup column is indexed so ``get_or_create`` is not a table scan.
"""

from django.db import models


class SeedSession(models.Model):
    session_id = models.CharField(max_length=255, db_index=True)
    platform = models.CharField(max_length=32, blank=True)
    customer_name = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.session_id


class SeedMessage(models.Model):
    session = models.ForeignKey(SeedSession, on_delete=models.CASCADE)
    message_id = models.CharField(max_length=255)
    direction = models.CharField(max_length=8)
    sender = models.CharField(max_length=255, blank=True)
    text = models.TextField(blank=True)
    category = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.message_id


class SeedWebhookLog(models.Model):
    event = models.CharField(max_length=64)
    payload = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.event


class FloorRow(models.Model):
    body_size = models.PositiveIntegerField()
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.body_size} B"
