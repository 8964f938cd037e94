"""What the monitors app announces."""

from django.dispatch import Signal

# Sent after commit with ``alert`` (a new ``monitors.models.Alert``): the
# notifications are stored with it; this sends it further (the admin channel).
alert_raised = Signal()
