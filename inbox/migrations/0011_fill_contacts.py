"""A contact for every customer already stored, and their conversations linked.

Self-contained: historical models only. One contact per (platform, customer
id); the name is the newest conversation's.
"""

from django.db import migrations


def fill(apps, schema_editor):
    Conversation = apps.get_model("inbox", "Conversation")
    Contact = apps.get_model("inbox", "Contact")
    pending = (
        Conversation.objects.filter(contact__isnull=True)
        .exclude(customer_id="")
        .order_by("-last_message_at")
        .values_list("pk", "platform", "customer_id", "customer_name")
    )
    found = {}
    for pk, platform, customer_id, name in pending.iterator(chunk_size=2000):
        key = (platform, customer_id[:255])
        if key not in found:
            found[key] = Contact.objects.get_or_create(
                platform=platform, external_id=key[1], defaults={"name": name}
            )[0].pk
        Conversation.objects.filter(pk=pk).update(contact_id=found[key])


class Migration(migrations.Migration):
    dependencies = [("inbox", "0010_contact")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
