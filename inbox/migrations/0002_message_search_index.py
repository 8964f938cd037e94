"""Full-text index on message text, on PostgreSQL only.

SQLite (embedded mode) has no GIN index; its search falls back to a substring
scan, so this migration does nothing there. The expression matches the
``SearchVector("text", config="simple")`` used by ``ConversationQuerySet.matching``.
"""

from django.db import migrations

INDEX = "inbox_message_text_fts"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON inbox_message "
        "USING gin (to_tsvector('simple'::regconfig, COALESCE(text, '')))"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [("inbox", "0001_initial")]

    operations = [migrations.RunPython(create_index, drop_index)]
