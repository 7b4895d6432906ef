"""Schemathesis hooks for Sagaway's OpenAPI documents.

Some inputs carry check digits that no JSON Schema keyword can state. The documents name them with
a `format` (`card-number`, `account-number`, `cpf`, `cnpj`), and this file teaches the generator
each one, so that a request the document allows is one the service takes. The algorithms mirror
the services' own (`common/src/card.rs`, `bank/src/rules/`): a change there is a change here.
"""

import json
import re
import uuid

import schemathesis
from hypothesis import strategies as st


def luhn_digit(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # every second digit from the right, counting the check digit's place
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def card_number(draw_prefix: str, length: int, rest: str) -> str:
    body = (draw_prefix + rest)[: length - 1]
    return body + luhn_digit(body)


@st.composite
def card_numbers(draw):
    prefix = draw(st.sampled_from(["4", "51", "55", "2221", "34", "37", "6011", "35", "30"]))
    length = draw(st.integers(min_value=max(13, len(prefix) + 1), max_value=19))
    rest = draw(st.text(alphabet="0123456789", min_size=length, max_size=length))
    return card_number(prefix, length, rest)


def mod11(digits, weights):
    r = sum(d * w for d, w in zip(digits, weights)) % 11
    return 0 if r < 2 else 11 - r


@st.composite
def cpfs(draw):
    base = draw(st.lists(st.integers(0, 9), min_size=9, max_size=9).filter(lambda d: len(set(d)) > 1))
    first = mod11(base, range(10, 1, -1))
    second = mod11(base + [first], range(11, 1, -1))
    return "".join(map(str, base + [first, second]))


@st.composite
def cnpjs(draw):
    base = draw(st.lists(st.integers(0, 9), min_size=12, max_size=12).filter(lambda d: len(set(d)) > 1))
    first = mod11(base, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    second = mod11(base + [first], [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])
    return "".join(map(str, base + [first, second]))


@st.composite
def account_numbers(draw):
    """`12345678-9`: 8 digits and a mod-11 check digit (bases whose digit would be 10 are not issued)."""
    base = draw(st.lists(st.integers(0, 9), min_size=8, max_size=8))
    digit = (11 - sum(d * w for d, w in zip(base, range(9, 1, -1))) % 11) % 11
    if digit == 10:
        base[-1] = (base[-1] + 1) % 10
        digit = (11 - sum(d * w for d, w in zip(base, range(9, 1, -1))) % 11) % 11
    if digit == 10:
        base[-2] = (base[-2] + 1) % 10
        digit = (11 - sum(d * w for d, w in zip(base, range(9, 1, -1))) % 11) % 11
    return "".join(map(str, base)) + "-" + str(digit % 10)


schemathesis.openapi.format("card-number", card_numbers())
schemathesis.openapi.format("cpf", cpfs())
schemathesis.openapi.format("cnpj", cnpjs())
schemathesis.openapi.format("account-number", account_numbers())


@schemathesis.hook
def before_call(context, case, **kwargs):
    """A fresh `Idempotency-Key` for every request that sends one, in every phase (the coverage
    phase reuses a schema example). Reusing a key with another body is refused (422
    `idempotency_key_reused`) by design: state the generator cannot see, not a schema mismatch, and
    it has its own tests (`e2e`, `bank`, `product`). Only a value the document allows is replaced."""
    headers = case.headers
    if not headers:
        return
    for name in list(headers):
        value = headers[name]
        if name.lower() == "idempotency-key" and isinstance(value, str) and re.fullmatch(r"[!-~]{1,255}", value):
            headers[name] = str(uuid.uuid4())
            # A new valid key leaves the case what it was (valid or not). Without this, schemathesis
            # 4.32 re-checks the edited headers alone, finds no Authorization among them (the CLI adds
            # it when sending) and takes the case for one that lacks it: a false ST203.
            if hasattr(case, "_sync_validated_hashes"):
                case._sync_validated_hashes()


@schemathesis.hook
def filter_body(context, body):
    """`POST /transfers`: each paying account once. A many-to-one transfer that lists an account
    twice is refused (422, `sources`) — a rule JSON Schema cannot state (`uniqueItems` compares whole
    items, not their `bank` and `account_id`), so generated bodies that break it are left out."""
    operation = context.operation
    if operation is None or operation.path != "/transfers" or operation.method.upper() != "POST":
        return True
    sources = body.get("sources") if isinstance(body, dict) else None
    if not isinstance(sources, list):
        return True
    # As JSON text: a body meant to break the schema may hold lists or objects in those fields.
    keys = [json.dumps([s.get("bank"), s.get("account_id")], sort_keys=True, default=str) for s in sources if isinstance(s, dict)]
    return len(keys) == len(set(keys))
