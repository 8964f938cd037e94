"""Triggers benchmark, Django side: matching, hostile input, backtest.

``python -m bench.load_triggers CONFIG OUT``; ``config["part"]`` says which:

* ``matching``: N enabled Trigger rows (generated, deterministic), the
  engine's ruleset built from them as a worker builds it
  (``engine.ruleset()``), then every message of a fixed corpus through
  ``Ruleset.match`` and, right after it (order alternating), through the
  baseline: a plain loop of ``re.search`` over the same patterns, compiled
  once.
* ``hostile``: ``(a+)+$`` against ``a…a!``: RE2 through the engine in this
  process, Python's ``re`` in a child process killed at a deadline.
* ``seed``: customer messages (and bot replies between them) by bulk insert.
* ``backtest``: a draft trigger through ``Backtest.start`` → the real actor
  on a real worker (started by ``bench.triggers``), its row polled every
  500 ms as the editor does; then the baseline, a plain RE2 loop over the
  same messages' text in this process.

Every loop is bounded by count and time; nothing here listens or connects
anywhere but the bench database.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import kill_group, percentile
from bench.loadstats import all_process_cpu, busiest, group_cpu, machine_busy

# --- the corpus -----------------------------------------------------------------------

KO_WORDS = {
    "refund": ["환불", "반품", "취소", "결제 취소", "돈 돌려"],
    "shipping": ["배송", "택배", "도착", "출고", "운송장", "배달"],
    "order": ["주문", "주문번호", "구매", "결제", "영수증"],
    "account": ["비밀번호", "로그인", "계정", "회원가입", "아이디", "인증번호"],
    "coupon": ["쿠폰", "할인", "포인트", "적립금", "이벤트", "프로모션"],
    "product": ["사이즈", "색상", "재고", "품절", "불량", "파손", "교환"],
    "angry": ["최악", "실망", "짜증", "화나", "불만", "고소", "신고"],
    "human": ["상담원", "사람이랑", "직원", "매니저"],
    "thanks": ["감사", "고마워", "해결", "좋아요"],
}
EN_WORDS = {
    "refund": ["refund", "return", "cancel", "money back", "chargeback"],
    "shipping": ["shipping", "delivery", "package", "tracking", "courier", "parcel"],
    "order": ["order", "purchase", "invoice", "receipt", "payment", "checkout"],
    "account": ["password", "login", "account", "sign up", "username", "2fa"],
    "coupon": ["coupon", "discount", "points", "promo", "voucher", "gift card"],
    "product": ["size", "color", "stock", "defective", "broken", "exchange"],
    "angry": ["angry", "terrible", "worst", "awful", "scam", "lawyer", "ridiculous"],
    "human": ["human", "agent", "person", "manager", "representative"],
    "thanks": ["thanks", "thank you", "great", "solved", "perfect"],
}
# A shop's catalogue and campaigns: most of a large ruleset is about them.
PRODUCTS = [
    ("갤럭시", "galaxy"), ("아이폰", "iphone"), ("에어팟", "airpods"),
    ("맥북", "macbook"), ("운동화", "sneakers"), ("패딩", "padded jacket"),
    ("가습기", "humidifier"), ("청소기", "vacuum"), ("텀블러", "tumbler"),
    ("선풍기", "fan"), ("키보드", "keyboard"), ("모니터", "monitor"),
    ("이어폰", "earphones"), ("백팩", "backpack"), ("캠핑의자", "camping chair"),
    ("전기포트", "kettle"), ("에어프라이어", "air fryer"),
    ("로봇청소기", "robot vacuum"), ("스마트워치", "smartwatch"), ("블렌더", "blender"),
]  # fmt: skip
MODEL_LETTERS = "ASXZ"
CAMPAIGNS = ["SPRING", "SUMMER", "WELCOME", "VIP", "BLACK", "HOLIDAY", "FLASH"]
CAMPAIGNS += ["FRIEND", "APP", "FIRST"]
SEASONS = [
    ("봄", "spring"),
    ("여름", "summer"),
    ("추석", "chuseok"),
    ("설날", "new year"),
]
KO_SENTENCES = [
    "{w} 관련해서 문의드립니다.",
    "{w} 문제로 연락드렸어요.",
    "{w} 언제 되나요?",
    "어제 {w} 요청했는데 아직 답이 없어요.",
    "{w} 어떻게 하나요?",
    "{w} 때문에 너무 불편해요.",
    "혹시 {w} 가능할까요?",
    "{p} 샀는데 {w} 문제가 있어요.",
    "{p} 언제 재입고 되나요?",
    "쿠폰 {c} 적용이 안 돼요.",
    "{s} 이벤트 아직 하나요?",
    "주문번호 {n} 확인 부탁드려요.",
    "운송장 번호가 CJ{code} 인데 조회가 안 돼요.",
    "연락처는 010-{a}-{b} 입니다.",
]
EN_SENTENCES = [
    "I have a question about my {w}.",
    "What's the status of my {w}?",
    "Order #{n} still hasn't arrived.",
    "my order {n} is late",
    "The tracking number is CJ{code} but it shows nothing.",
    "Please help with the {w}, it's urgent.",
    "I bought the {p} and the {w} is wrong.",
    "Is the {p} back in stock?",
    "Code {c} doesn't work at checkout.",
    "When does the {s} sale end?",
    "Can I talk to a {h}?",
    "Where is my {w}??",
    "You can reach me at user{n}@example.com",
    "{W} please!!",
]
FILLERS = [
    "안녕하세요", "혹시", "빨리 답변 부탁드려요 ㅠㅠ", "ㅋㅋ", "네", "저기요",
    "Hi", "Hello,", "thanks in advance", "hello?", "are you there", "ok", "🙏", "😡",
]  # fmt: skip


def _product(rng: random.Random) -> tuple[str, str, str]:
    """(Korean name, English name, model) of one of 20 × 4 × 40 products."""
    ko, en = rng.choice(PRODUCTS)
    return ko, en, f"{rng.choice(MODEL_LETTERS)}{rng.randint(1, 40)}"


def _campaign(rng: random.Random) -> str:
    return f"{rng.choice(CAMPAIGNS)}{rng.randint(5, 50)}"


def _base_texts() -> list[str]:
    from bench.tasks import EN, MORE_KO
    from inbox.simulator import CUSTOMER_TEXTS

    return [*CUSTOMER_TEXTS, *MORE_KO, *EN]


def _sentence(rng: random.Random, korean: bool) -> str:
    words = KO_WORDS if korean else EN_WORDS
    word = rng.choice(rng.choice(list(words.values())))
    template = rng.choice(KO_SENTENCES if korean else EN_SENTENCES)
    ko, en, model = _product(rng)
    product = f"{ko if korean else en} {model}"
    return template.format(
        w=word,
        W=word.upper() if rng.random() < 0.3 else word.capitalize(),
        p=product if rng.random() < 0.7 else product.lower(),
        c=_campaign(rng) if rng.random() < 0.8 else _campaign(rng).lower(),
        s=rng.choice(SEASONS)[0 if korean else 1],
        h=rng.choice(EN_WORDS["human"]),
        n=rng.randrange(1000, 999999),
        code=rng.randrange(10**9, 10**10),
        a=rng.randrange(1000, 9999),
        b=rng.randrange(1000, 9999),
    )


def corpus(count: int, seed: int) -> list[str]:
    """``count`` customer messages, 20–300 characters, Korean and English.

    The simulator's and the scale seed's texts plus generated sentences around
    the triggers' vocabulary, joined; lengths spread log-uniformly.
    """
    rng = random.Random(seed)
    base = _base_texts()
    messages = []
    for _ in range(count):
        target = int(math.exp(rng.uniform(math.log(20), math.log(300))))
        roll = rng.random()
        korean = roll < 0.55
        mixed = roll > 0.9
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < target:
            pick = rng.random()
            if pick < 0.3:
                parts.append(rng.choice(base))
            elif pick < 0.85:
                parts.append(
                    _sentence(rng, korean if not mixed else rng.random() < 0.5)
                )
            else:
                parts.append(rng.choice(FILLERS))
        text = " ".join(parts)
        if len(text) > 300:
            text = text[:300].rsplit(" ", 1)[0]
        if len(text) < 20:
            text = f"{text} {rng.choice(FILLERS)} {rng.choice(base)}"[:300]
        messages.append(text)
    return messages


# --- the triggers ---------------------------------------------------------------------

# Share of a large ruleset per kind: a few broad topic rules, mostly rules
# about one product or one campaign, some phrases and combinations.
PATTERN_KINDS = {
    "product": 45,
    "campaign": 20,
    "phrase": 13,
    "near": 10,
    "bilingual": 4,
    "en_list": 2,
    "ko_list": 2,
    "number": 2,
    "code": 2,
}


def _pattern(rng: random.Random) -> tuple[str, bool]:
    """One realistic pattern and whether it must be case-sensitive."""
    topic = rng.choice(list(KO_WORDS))
    kind = rng.choices(list(PATTERN_KINDS), list(PATTERN_KINDS.values()))[0]
    if kind == "product":
        ko, en, model = _product(rng)
        letter, number = model[0], model[1:]
        en = en.replace(" ", r"\s*")
        return rf"({ko}|{en})\s*{letter}\s*{number}\b", False
    if kind == "campaign":
        if rng.random() < 0.8:
            return rf"\b{_campaign(rng)}\b", False
        ko, en = rng.choice(SEASONS)
        return rf"({ko}|{en})\s*(세일|이벤트|기획전|sale|event)", False
    if kind == "phrase":
        shipping = rng.sample(EN_WORDS["shipping"] + EN_WORDS["order"], 2)
        ko = rng.sample(KO_WORDS[topic], 2)
        return rng.choice(
            [
                r"(talk|speak)\s+to\s+(a\s+)?(human|person|agent|manager)",
                rf"where\s+is\s+my\s+({'|'.join(shipping)})",
                rf"({'|'.join(ko)})\s*(언제|어떻게|왜)",
                r"언제\s*(와요|오나요|도착|받)",
                r"안\s*(와요|왔어요|옴|됨|돼요)",
                r"(charged|billed)\s+(twice|two times|double)",
                r"(결제|카드).{0,10}(두\s*번|중복)",
                rf"({'|'.join(shipping)})\s+(is\s+)?not\s+(working|arrived|received)",
            ]
        ), False
    if kind == "near":
        first = rng.sample(KO_WORDS[topic], 1) + rng.sample(EN_WORDS[topic], 1)
        other = rng.choice([t for t in KO_WORDS if t != topic])
        second = rng.sample(KO_WORDS[other], 1) + rng.sample(EN_WORDS[other], 1)
        return rf"({'|'.join(first)}).{{0,40}}({'|'.join(second)})", False
    if kind == "bilingual":
        ko = rng.sample(KO_WORDS[topic], rng.randint(1, 3))
        en = rng.sample(EN_WORDS[topic], rng.randint(1, 3))
        return "|".join(ko + en), False
    if kind == "number":
        if rng.random() < 0.6:
            words = rng.sample(["order", "shipping", "tracking", "invoice", "case"], 2)
            return rf"\b({'|'.join(words)})\s*#?\d+", False
        return r"(주문|송장|운송장)\s*(번호)?\s*:?\s*\d{4,}", False
    if kind == "en_list":
        pool = [w for words in EN_WORDS.values() for w in words]
        return rf"\b({'|'.join(rng.sample(pool, rng.randint(3, 10)))})\b", False
    if kind == "ko_list":
        pool = [w for words in KO_WORDS.values() for w in words]
        words = "|".join(rng.sample(pool, rng.randint(3, 8)))
        if rng.random() < 0.4:
            return rf"({words})\s*(요청|신청|문의|해\s*주세요)", False
        return f"({words})", False
    return rng.choice(
        [
            (r"\b[A-Z]{2}\d{8,10}\b", True),
            (r"[\w.+-]+@[\w-]+\.(com|net|kr|io)", False),
            (r"01[016789]-?\d{3,4}-?\d{4}", False),
            (r"\b[A-Z0-9]{4}-[A-Z0-9]{4}\b", True),
        ]
    )


def generated_triggers(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """``count`` trigger definitions; the first N are the same for every count."""
    rng = random.Random(seed)
    triggers = []
    for i in range(count):
        patterns, sensitive = [], False
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            pattern, must = _pattern(rng)
            if pattern not in patterns:
                patterns.append(pattern)
                sensitive = sensitive or must
        triggers.append(
            {
                "name": f"bench {i:04d}",
                "patterns": patterns,
                "case_sensitive": sensitive or rng.random() < 0.3,
                "match_mode": "all"
                if len(patterns) > 1 and rng.random() < 0.15
                else "any",
                "priority": 1000 + i,
                "states": [],
                "actions": [
                    {
                        "type": "run_task",
                        "task": "tag_conversation",
                        "args": {"tag": f"bench-{i}"},
                    }
                ],
            }
        )
    return triggers


# --- part 1: matching throughput ------------------------------------------------------


def _stats_us(values_ns: list[int]) -> dict[str, float]:
    total_s = sum(values_ns) / 1e9
    return {
        "messages": len(values_ns),
        "messages_per_s": len(values_ns) / total_s if total_s else float("nan"),
        "mean_us": statistics.fmean(values_ns) / 1000,
        "p50_us": percentile(values_ns, 50) / 1000,
        "p90_us": percentile(values_ns, 90) / 1000,
        "p99_us": percentile(values_ns, 99) / 1000,
        "max_us": max(values_ns) / 1000,
    }


# "word … word" patterns (a dot repeated): each one multiplies the states
# the one-set DFA can be in, so they are measured apart as a diagnostic.
GAP = re.compile(r"\.(\*|\+|\{\d*,\d*\})")
CLASS_OR_ESCAPE = re.compile(r"\[(?:\\.|[^\]\\])*\]|\\.")


def has_gap(pattern: str) -> bool:
    return GAP.search(CLASS_OR_ESCAPE.sub("", pattern)) is not None


class _PlainSet:
    """An RE2 set of some of the ruleset's patterns, with its own DFA cache.

    Diagnostic only: a set scanned right after the ruleset's own set matched
    the same text would find that text's DFA states already built.
    """

    def __init__(self, patterns: list[str]) -> None:
        import re2

        # As automations.engine._options() sets them.
        options = re2.Options()
        options.log_errors = False
        options.max_mem = 8 << 20
        self.size = len(patterns)
        self.regex_set = re2.Set.SearchSet(options)
        for pattern in patterns:
            self.regex_set.Add(pattern)
        if patterns:
            self.regex_set.Compile()

    def Match(self, text: str) -> Any:  # noqa: N802 - mirrors re2.Set
        return self.regex_set.Match(text) if self.size else None


def _plain_set(ruleset: Any, *, gaps: bool) -> _PlainSet:
    from automations.engine import flagged

    return _PlainSet(
        [
            flagged(pattern, compiled.trigger.case_sensitive)
            for compiled in ruleset.compiled
            for pattern in compiled.patterns
            if gaps or not has_gap(pattern)
        ]
    )


def _baseline_rules(ruleset: Any) -> list[tuple[int, bool, list[re.Pattern[str]]]]:
    """(trigger pk, all-mode, patterns compiled by ``re``) in the ruleset's order."""
    rules = []
    for compiled in ruleset.compiled:
        trigger = compiled.trigger
        flags = 0 if trigger.case_sensitive else re.IGNORECASE
        rules.append(
            (
                trigger.pk,
                trigger.match_mode == "all",
                [re.compile(p, flags) for p in compiled.patterns],
            )
        )
    return rules


def _baseline_match(
    rules: list[tuple[int, bool, list[re.Pattern[str]]]], text: str
) -> list[int]:
    fired = []
    for pk, every, regexes in rules:
        if every:
            if all(r.search(text) for r in regexes):
                fired.append(pk)
        elif any(r.search(text) for r in regexes):
            fired.append(pk)
    return fired


def matching(config: dict[str, Any]) -> dict[str, Any]:
    from django.db import connection

    from automations import engine
    from automations.models import Trigger

    messages = corpus(config["messages"], seed=config["seed"])
    definitions = generated_triggers(max(config["counts"]), seed=config["seed"])
    for definition in definitions:
        for pattern in definition["patterns"]:
            problem = engine.check_pattern(pattern)
            assert problem is None, (pattern, problem)
    builtins = Trigger.objects.enabled().filter(is_builtin=True).count()
    lengths = [len(m) for m in messages]
    result: dict[str, Any] = {
        "corpus": {
            "messages": len(messages),
            "korean_share": round(
                sum(1 for m in messages if not m.isascii()) / len(messages), 2
            ),
            "chars_min": min(lengths),
            "chars_p50": percentile(lengths, 50),
            "chars_max": max(lengths),
            "examples": messages[:5],
        },
        "builtin_triggers": builtins,
        "counts": {},
    }
    for count in config["counts"]:
        Trigger.objects.filter(is_builtin=False).delete()
        chosen = definitions[: count - builtins]
        Trigger.objects.bulk_create([Trigger(**d) for d in chosen])
        assert Trigger.objects.enabled().count() == count

        engine.forget()
        started = time.perf_counter()
        ruleset = engine.ruleset()
        build_ms = (time.perf_counter() - started) * 1000
        assert len(ruleset.compiled) == count
        # What run_for_message pays per message before matching: the query
        # telling whether the cached ruleset is still current.
        checks = []
        for _ in range(config["freshness_checks"]):
            started = time.perf_counter()
            assert engine.ruleset() is ruleset
            checks.append((time.perf_counter() - started) * 1e6)
        whole = _plain_set(ruleset, gaps=True)
        gapless = _plain_set(ruleset, gaps=False)
        started = time.perf_counter()
        rules = _baseline_rules(ruleset)
        baseline_compile_ms = (time.perf_counter() - started) * 1000

        for text in messages[:200]:  # warm-up, not measured
            ruleset.match(text)
            _baseline_match(rules, text)
            whole.Match(text)
            gapless.Match(text)
        ours: list[int] = []
        base: list[int] = []
        scan: list[int] = []
        scan_gapless: list[int] = []
        fired = disagreements = 0
        examples: list[dict[str, Any]] = []
        procs0 = all_process_cpu()
        busy0 = machine_busy()
        wall0 = time.perf_counter()
        clock = time.perf_counter_ns
        for i, text in enumerate(messages):
            # Alternate which goes first: neither always gets the warm cache.
            if i % 2:
                t0 = clock()
                found = ruleset.match(text)
                t1 = clock()
                expected = _baseline_match(rules, text)
                t2 = clock()
                ours.append(t1 - t0)
                base.append(t2 - t1)
            else:
                t0 = clock()
                expected = _baseline_match(rules, text)
                t1 = clock()
                found = ruleset.match(text)
                t2 = clock()
                base.append(t1 - t0)
                ours.append(t2 - t1)
            # Diagnostic: the one pass over the text, without the re-checks,
            # with and without the gap patterns.
            t0 = clock()
            whole.Match(text)
            t1 = clock()
            gapless.Match(text)
            scan.append(t1 - t0)
            scan_gapless.append(clock() - t1)
            got = [compiled.trigger.pk for compiled, _ in found]
            fired += len(got)
            if got != expected:
                disagreements += 1
                if len(examples) < 5:
                    examples.append(_disagreement(ruleset, text, got, expected))
        wall = time.perf_counter() - wall0
        busy1 = machine_busy()
        others = busiest(procs0, all_process_cpu(), wall)
        long_messages = _long_messages(ruleset, rules, messages, config["long"])
        row = {
            "enabled_triggers": count,
            "patterns": len(ruleset.owners),
            "case_insensitive_triggers": sum(
                1 for c in ruleset.compiled if not c.trigger.case_sensitive
            ),
            "all_mode_triggers": sum(
                1 for c in ruleset.compiled if c.trigger.match_mode == "all"
            ),
            "build_ms": build_ms,
            "baseline_compile_ms": baseline_compile_ms,
            "freshness_check_us": {
                "p50": percentile(checks, 50),
                "p99": percentile(checks, 99),
            },
            "ours": _stats_us(ours),
            "set_scan_only": _stats_us(scan),
            "gap_patterns": len(ruleset.owners) - gapless.size,
            "set_scan_without_gap_patterns": _stats_us(scan_gapless),
            "baseline_re": _stats_us(base),
            "triggers_fired_per_message": fired / len(messages),
            "messages_disagreeing": disagreements,
            "disagreement_examples": examples,
            "wall_s": round(wall, 1),
            "machine_busy_pct": _busy_pct(busy0, busy1),
            "busiest_processes": others,
            "long_messages": long_messages,
        }
        row["speedup_mean"] = row["baseline_re"]["mean_us"] / row["ours"]["mean_us"]
        row["speedup_p50"] = row["baseline_re"]["p50_us"] / row["ours"]["p50_us"]
        row["speedup_p99"] = row["baseline_re"]["p99_us"] / row["ours"]["p99_us"]
        result["counts"][str(count)] = row
    Trigger.objects.filter(is_builtin=False).delete()
    engine.forget()
    connection.close()
    return result


def _long_messages(
    ruleset: Any,
    rules: list[tuple[int, bool, list[re.Pattern[str]]]],
    messages: list[str],
    count: int,
) -> dict[str, Any]:
    """Ordinary text as long as the engine lets it be (the cap), both ways."""
    from django.conf import settings

    cap = settings.AUTOMATIONS_MATCH_CHARS
    texts = []
    for k in range(count):
        joined, i = "", k * 37
        while len(joined) < cap:
            joined += " " + messages[i % len(messages)]
            i += 1
        texts.append(joined[1 : cap + 1])
    ours, base, differ = [], [], 0
    for text in texts:
        t0 = time.perf_counter()
        found = ruleset.match(text)
        t1 = time.perf_counter()
        expected = _baseline_match(rules, text)
        t2 = time.perf_counter()
        ours.append((t1 - t0) * 1000)
        base.append((t2 - t1) * 1000)
        differ += [c.trigger.pk for c, _ in found] != expected
    return {
        "messages": count,
        "chars": cap,
        "ours_ms": {"median": statistics.median(ours), "max": max(ours)},
        "baseline_re_ms": {"median": statistics.median(base), "max": max(base)},
        "messages_disagreeing": differ,
    }


def _disagreement(
    ruleset: Any, text: str, got: list[int], expected: list[int]
) -> dict[str, Any]:
    by_pk = {c.trigger.pk: c for c in ruleset.compiled}
    only_ours = sorted(set(got) - set(expected))
    only_re = sorted(set(expected) - set(got))
    return {
        "text": text,
        "only_re2": [by_pk[pk].patterns for pk in only_ours][:3],
        "only_python_re": [by_pk[pk].patterns for pk in only_re][:3],
    }


def _busy_pct(before: tuple[float, float], after: tuple[float, float]) -> float:
    import os

    ncpu = os.cpu_count() or 1
    return round(100 * ncpu * (after[0] - before[0]) / max(after[1] - before[1], 1), 1)


# --- part 2: hostile input ------------------------------------------------------------

HOSTILE = "(a+)+$"
PYTHON_RE = """
import re, sys, time
text = "a" * int(sys.argv[1]) + "!"
regex = re.compile(sys.argv[2])
started = time.perf_counter()
regex.search(text)
print(time.perf_counter() - started)
"""


def _python_re(chars: int, deadline_s: float) -> dict[str, Any]:
    """``re.search`` of the hostile pattern in a child; killed at the deadline."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PYTHON_RE, str(chars), HOSTILE],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    started = time.perf_counter()
    try:
        out, _ = proc.communicate(timeout=deadline_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        return {
            "a_chars": chars,
            "killed": True,
            "killed_after_s": round(time.perf_counter() - started, 2),
        }
    return {"a_chars": chars, "killed": False, "ms": float(out.strip()) * 1000}


def _median_ms(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "runs": runs}


def hostile(config: dict[str, Any]) -> dict[str, Any]:
    from django.conf import settings

    from automations import engine
    from automations.models import Trigger

    # A lead's trigger as the editor saves it (case-insensitive by default).
    trigger = Trigger(pk=1, patterns=[HOSTILE])
    assert engine.check_pattern(HOSTILE) is None
    ruleset = engine.Ruleset.build([trigger], key=("bench-hostile",))
    regex = ruleset.compiled[0].regexes[0]
    re2_rows = []
    for kib in config["re2_kib"]:
        text = "a" * (kib * 1024 - 1) + "!"
        assert not ruleset.match(text)
        re2_rows.append(
            {
                "kib": kib,
                "chars": len(text),
                # What a worker does with a message: the set, then re-checks.
                "ruleset_match": _median_ms(lambda t=text: ruleset.match(t), 7),
                # What try-it and the backtest do: the trigger's own regex.
                "regex_search": _median_ms(lambda t=text: regex.search(t), 7),
            }
        )
    python_rows = [
        _python_re(n, config["python_deadline_s"]) for n in config["python_chars"]
    ]
    big = config["re2_kib"][-1] * 1024 - 1
    python_big = _python_re(big, config["python_deadline_s"])
    return {
        "pattern": HOSTILE,
        "re2_accepts_it": True,
        "case_sensitive": trigger.case_sensitive,
        "match_chars_cap": settings.AUTOMATIONS_MATCH_CHARS,
        "re2": re2_rows,
        "python_growth": python_rows,
        "python_big": python_big,
        "python_deadline_s": config["python_deadline_s"],
    }


# --- part 3: seeding, then the backtest -----------------------------------------------

PLATFORMS = [("telegram", 30), ("whatsapp", 25), ("webchat", 15), ("slack", 10)]
PLATFORMS += [("discord", 8), ("signal", 5), ("imessage", 4), ("matrix", 3)]


def seed(config: dict[str, Any]) -> dict[str, Any]:
    """``customer_messages`` inbound customer texts, bot replies between them.

    ``bulk_create`` in batches (every field gets its model default), then
    ``VACUUM ANALYZE`` as autovacuum would leave a long-running inbox.
    """
    from datetime import UTC, datetime, timedelta

    from django.db import connection, transaction

    from inbox.models import Conversation, Message

    total = config["customer_messages"]
    per_conversation = 10
    texts = corpus(total, seed=config["seed"] + 1)
    rng = random.Random(config["seed"])
    platforms, weights = zip(*PLATFORMS, strict=True)
    started = time.perf_counter()
    now = datetime.now(UTC)
    conversations = [
        Conversation(
            session_id=f"agent:main:bench:dm:{i:09d}",
            platform=rng.choices(platforms, weights)[0],
            customer_id=str(100_000_000 + i),
            customer_name=f"Customer {i}",
            last_message_at=now,
        )
        for i in range(math.ceil(total / per_conversation))
    ]
    bot = ["Let me look that up for you.", "배송은 보통 2~3일 걸립니다."]
    with transaction.atomic():
        Conversation.objects.bulk_create(conversations, batch_size=5000)
        rows: list[Message] = []
        at = now - timedelta(days=90)
        bot_replies = 0
        for i, text in enumerate(texts):
            conversation = conversations[i // per_conversation]
            at += timedelta(seconds=60)
            rows.append(
                Message(
                    conversation=conversation,
                    gateway_message_id=f"c{i}",
                    direction="inbound",
                    author="customer",
                    sender=conversation.customer_name,
                    text=text,
                    created_at=at,
                )
            )
            if rng.random() < 0.6:
                bot_replies += 1
                rows.append(
                    Message(
                        conversation=conversation,
                        gateway_message_id=f"b{i}",
                        direction="outbound",
                        author="bot",
                        sender="bot",
                        text=rng.choice(bot),
                        delivery_state="sent",
                        created_at=at,
                    )
                )
            if len(rows) >= 5000:
                Message.objects.bulk_create(rows)
                rows = []
        Message.objects.bulk_create(rows)
    loaded = time.perf_counter() - started
    with connection.cursor() as cursor:
        for table in ("inbox_conversation", "inbox_message"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    connection.close()
    return {
        "conversations": len(conversations),
        "customer_messages": total,
        "bot_replies": bot_replies,
        "load_s": round(loaded, 1),
        "total_s": round(time.perf_counter() - started, 1),
    }


def _wait_done(backtest_id: int, poll_s: float, deadline_s: float) -> list[dict]:
    """Poll the row as the editor's progress region does; every poll recorded."""
    from django.db import connection

    from automations.models import Backtest

    polls: list[dict[str, Any]] = []
    started = time.perf_counter()
    while time.perf_counter() - started < deadline_s:
        row = Backtest.objects.filter(pk=backtest_id).values(
            "state", "processed", "total", "matched"
        )[0]
        polls.append({"t": time.perf_counter() - started, **row})
        if row["state"] in (Backtest.State.DONE, Backtest.State.FAILED):
            break
        time.sleep(poll_s)
    connection.close()
    return polls


def backtest(config: dict[str, Any]) -> dict[str, Any]:
    from django.db import connection

    from automations import engine
    from automations.models import Backtest, Trigger

    # Warm-up (not measured): the worker has just booted.
    warm = Backtest.start(draft=config["draft"], n=1000, user=None)
    warm_polls = _wait_done(warm.pk, 0.5, 120)
    if warm_polls[-1]["state"] != Backtest.State.DONE:
        raise RuntimeError(f"warm-up backtest ended {warm_polls[-1]}")

    n = config["n"]
    cpu0 = group_cpu(config["worker_pgid"])
    procs0 = all_process_cpu()
    busy0 = machine_busy()
    wall0 = time.perf_counter()
    job = Backtest.start(draft=config["draft"], n=n, user=None)
    polls = _wait_done(job.pk, config["poll_s"], config["deadline_s"])
    wall = time.perf_counter() - wall0
    procs1 = all_process_cpu()
    worker_cpu = group_cpu(config["worker_pgid"]) - cpu0
    busy1 = machine_busy()
    job.refresh_from_db()
    if job.state != Backtest.State.DONE:
        raise RuntimeError(f"backtest ended {job.state}: {job.error}")
    server_s = (job.finished_at - job.created_at).total_seconds()

    # Baseline: the same messages' text, read in one query, matched in a loop.
    compiled = engine.compile_trigger(
        Trigger(
            patterns=config["draft"]["patterns"],
            case_sensitive=config["draft"]["case_sensitive"],
        )
    )
    regexes = compiled.regexes
    started = time.perf_counter()
    texts = list(job.messages()[:n].values_list("text", flat=True))
    fetch_s = time.perf_counter() - started
    started, cpu_started = time.perf_counter(), time.process_time()
    matched = 0
    for text in texts:
        text = engine.capped(text)
        if any(regex.search(text) for regex in regexes):
            matched += 1
    loop_s = time.perf_counter() - started
    loop_cpu_s = time.process_time() - cpu_started
    connection.close()

    running = [p for p in polls if p["state"] == Backtest.State.RUNNING]
    changes = [
        polls[i]
        for i in range(1, len(polls))
        if (polls[i]["processed"], polls[i]["state"])
        != (polls[i - 1]["processed"], polls[i - 1]["state"])
    ]
    gaps = [b["t"] - a["t"] for a, b in zip(changes, changes[1:], strict=False)]
    return {
        "n": n,
        "draft": config["draft"],
        "total": job.total,
        "processed": job.processed,
        "matched": job.matched,
        "samples": len(job.samples),
        "warmup_s": round(warm_polls[-1]["t"], 2),
        "wall_s": wall,
        "created_to_finished_s": server_s,
        "messages_per_s": job.total / server_s if server_s else float("nan"),
        "first_seen_running_s": running[0]["t"] if running else None,
        "polls": len(polls),
        "poll_s": config["poll_s"],
        "polls_with_progress": len(changes),
        "distinct_percents_seen": sorted(
            {p["processed"] * 100 // p["total"] for p in polls if p["total"]}
        ),
        "progress_spacing_s": {
            "p50": percentile(gaps, 50),
            "max": max(gaps) if gaps else float("nan"),
        },
        "poll_trace": [
            {k: (round(v, 2) if k == "t" else v) for k, v in p.items()} for p in polls
        ],
        "progress_writes_expected": math.ceil(job.total / 1000),
        # CPU time is less at the mercy of other processes than wall time.
        "worker_cpu_s": worker_cpu,
        "worker_cpu_pct": round(100 * worker_cpu / wall, 1),
        "machine_busy_pct": _busy_pct(busy0, busy1),
        "busiest_processes": busiest(procs0, procs1, wall),
        "baseline": {
            "messages": len(texts),
            "matched": matched,
            "fetch_s": fetch_s,
            "loop_s": loop_s,
            "loop_cpu_s": loop_cpu_s,
            "messages_per_s": len(texts) / loop_s if loop_s else float("nan"),
        },
    }


PARTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "matching": matching,
    "hostile": hostile,
    "seed": seed,
    "backtest": backtest,
}

if __name__ == "__main__":
    import django

    django.setup()
    config = json.loads(Path(sys.argv[1]).read_text())
    result = PARTS[config["part"]](config)
    Path(sys.argv[2]).write_text(json.dumps(result, ensure_ascii=False, default=str))
