"""Data: "open" conversations become "bot"; the agent and lead groups; starter
canned responses a lead can edit or delete."""

from django.db import migrations

CANNED = [
    ("hello", "Greeting", "안녕하세요 {customer_name}님, 상담원 {agent_name}입니다. 무엇을 도와드릴까요?"),
    ("hello-en", "Greeting (English)", "Hi {customer_name}, this is {agent_name} from support. How can I help?"),
    ("refund", "Refund started", "Hi {customer_name}, I've started your refund. It takes 3–5 business days to appear."),
    ("shipping", "Where is my order", "배송 조회 결과 내일 도착 예정입니다. 불편을 드려 죄송합니다, {customer_name}님."),
    ("thanks", "Closing", "Thanks for your patience, {customer_name}. Is there anything else I can do?"),
]  # fmt: skip


def forward(apps, schema_editor):
    Conversation = apps.get_model("inbox", "Conversation")
    Conversation.objects.filter(status="open").update(status="bot")

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    Group.objects.get_or_create(name="agent")
    lead, _ = Group.objects.get_or_create(name="lead")
    canned_type, _ = ContentType.objects.get_or_create(
        app_label="inbox", model="cannedresponse"
    )
    for action in ("add", "change", "delete", "view"):
        permission, _ = Permission.objects.get_or_create(
            content_type=canned_type,
            codename=f"{action}_cannedresponse",
            defaults={"name": f"Can {action} canned response"},
        )
        lead.permissions.add(permission)

    CannedResponse = apps.get_model("inbox", "CannedResponse")
    for shortcut, title, text in CANNED:
        CannedResponse.objects.get_or_create(
            shortcut=shortcut, defaults={"title": title, "text": text}
        )


def backward(apps, schema_editor):
    Conversation = apps.get_model("inbox", "Conversation")
    Conversation.objects.filter(status__in=["bot", "snoozed"]).update(status="open")


class Migration(migrations.Migration):
    dependencies = [
        ("inbox", "0003_takeover_and_replies"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(forward, backward)]
