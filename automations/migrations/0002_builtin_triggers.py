"""Data: the seed's rules as editable built-in triggers.

The rules are copied here as they were when this migration was written, so
it installs the same triggers whatever automations/builtins.py says later
(a migration must not import live app code).
"""

from django.db import migrations

VERSIONED_FIELDS = ['name',
 'description',
 'is_enabled',
 'platforms',
 'patterns',
 'match_mode',
 'case_sensitive',
 'states',
 'priority',
 'stop_after_match',
 'run_once',
 'cooldown_seconds',
 'actions']

BUILTINS = [{'name': 'Intent: question',
  'patterns': ['\\?', '어떻게|언제|어디|뭐|무엇|왜', '\\b(how|when|where|what|why)\\b'],
  'priority': 10,
  'states': [],
  'actions': [{'type': 'run_task', 'task': 'tag_conversation', 'args': {'tag': 'question'}}]},
 {'name': 'Intent: order',
  'patterns': ['주문|배송|택배', '\\b(order|shipping|delivery|tracking)\\b'],
  'priority': 11,
  'states': [],
  'actions': [{'type': 'run_task', 'task': 'tag_conversation', 'args': {'tag': 'order'}}]},
 {'name': 'Intent: refund',
  'patterns': ['환불|반품', '\\b(refund|money back|chargeback)\\b'],
  'priority': 12,
  'states': [],
  'actions': [{'type': 'run_task', 'task': 'tag_conversation', 'args': {'tag': 'refund'}}]},
 {'name': 'Intent: help',
  'patterns': ['도와|도움|상담', '\\b(help|support)\\b'],
  'priority': 13,
  'states': [],
  'actions': [{'type': 'run_task', 'task': 'tag_conversation', 'args': {'tag': 'help'}}]},
 {'name': 'Negative sentiment → human',
  'description': "The seed's escalation rule: Korean and English words of anger or disappointment, or asking for a "
                 'person.',
  'patterns': ['불만|화나|화가|최악|실망|짜증|고소|신고',
               '\\b(angry|furious|terrible|worst|awful|disappointed|unacceptable|ridiculous|scam|complaint|lawyer)\\b',
               '상담원|사람이랑|human agent|real person|talk to a human'],
  'priority': 20,
  'states': ['bot'],
  'stop_after_match': True,
  'actions': [{'type': 'escalate'}]},
 {'name': 'FAQ: shipping (배송)',
  'patterns': ['배송|택배', '\\b(shipping|delivery)\\b'],
  'priority': 30,
  'states': ['bot'],
  'stop_after_match': True,
  'cooldown_seconds': 600,
  'actions': [{'type': 'reply',
               'text': '배송은 보통 결제 후 2~3일(영업일) 걸립니다. 주문번호를 알려주시면 바로 확인해 드릴게요. / Delivery usually takes 2–3 business '
                       'days.'}]},
 {'name': 'FAQ: refund (환불)',
  'patterns': ['환불', '\\brefund\\b'],
  'priority': 31,
  'states': ['bot'],
  'stop_after_match': True,
  'cooldown_seconds': 600,
  'actions': [{'type': 'reply',
               'text': '환불은 요청 후 3~5영업일 안에 결제하신 수단으로 처리됩니다. / Refunds reach your original payment method within 3–5 '
                       'business days.'}]},
 {'name': 'FAQ: payment (결제)',
  'patterns': ['결제', '\\b(payment|charged|card)\\b'],
  'priority': 32,
  'states': ['bot'],
  'stop_after_match': True,
  'cooldown_seconds': 600,
  'actions': [{'type': 'reply',
               'text': '결제 내역을 확인해 드릴게요. 결제 일시와 금액을 알려주세요. / Tell us the date and amount and we will check the '
                       'payment.'}]}]


def forward(apps, schema_editor):
    Trigger = apps.get_model("automations", "Trigger")
    TriggerVersion = apps.get_model("automations", "TriggerVersion")
    for definition in BUILTINS:
        fields = {"description": "", "stop_after_match": False, "cooldown_seconds": 0, **definition}
        trigger, created = Trigger.objects.get_or_create(
            name=fields.pop("name"), is_builtin=True, defaults=fields
        )
        if created:
            TriggerVersion.objects.create(
                trigger=trigger,
                number=1,
                snapshot={name: getattr(trigger, name) for name in VERSIONED_FIELDS},
                changed_fields=["created"],
            )


def backward(apps, schema_editor):
    apps.get_model("automations", "Trigger").objects.filter(is_builtin=True).delete()


class Migration(migrations.Migration):
    dependencies = [("automations", "0001_triggers")]

    operations = [migrations.RunPython(forward, backward)]
