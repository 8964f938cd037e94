"""One search document per conversation (PostgreSQL): its words, GIN-indexed.

Filled here from the messages already stored: the distinct lexemes of every
message, per conversation, with no positions (strip), so the document is
bounded by the conversation's vocabulary. SQLite keeps an empty table (its
search scans message text).
"""

import django.contrib.postgres.search
import django.db.models.deletion
from django.db import migrations, models


INDEX = "inbox_conversationsearch_fts"


def index_and_fill(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {INDEX} ON inbox_conversationsearch "
        "USING gin (document)"
    )
    schema_editor.execute(
        "INSERT INTO inbox_conversationsearch (conversation_id, document) "
        "SELECT m.conversation_id, array_to_tsvector(array_agg(DISTINCT u.lexeme)) "
        "FROM inbox_message m, "
        "unnest(to_tsvector('simple'::regconfig, COALESCE(m.text, ''))) u "
        "GROUP BY m.conversation_id "
        "ON CONFLICT (conversation_id) DO NOTHING"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):

    dependencies = [
        ('inbox', '0008_gateway_connector'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConversationSearch',
            fields=[
                ('conversation', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='+', serialize=False, to='inbox.conversation')),
                ('document', django.contrib.postgres.search.SearchVectorField(null=True)),
            ],
        ),
        migrations.RunPython(index_and_fill, drop_index),
    ]
