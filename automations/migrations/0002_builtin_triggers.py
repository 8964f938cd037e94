"""Data: the seed's rules as editable built-in triggers."""

from django.db import migrations


def forward(apps, schema_editor):
    from automations.builtins import install

    install(apps.get_model("automations", "Trigger"), apps.get_model("automations", "TriggerVersion"))


def backward(apps, schema_editor):
    apps.get_model("automations", "Trigger").objects.filter(is_builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("automations", "0001_triggers")]

    operations = [migrations.RunPython(forward, backward)]
