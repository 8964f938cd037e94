"""What the inbox announces; other apps (automations) listen, unknown to the inbox."""

from django.dispatch import Signal

# Sent by the ``process_inbound_message`` actor, outside the webhook's fast
# path, once per stored inbound message (at-least-once: receivers must be
# idempotent). Arguments: ``message``.
message_stored = Signal()
