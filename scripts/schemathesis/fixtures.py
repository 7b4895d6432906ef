"""Real objects for schemathesis to reach, made through the public API of the running stack.

Without them every `{id}` the fuzzer invents is a 404 and every cursor it invents is refused, so the
handlers behind them go untested. This makes, for the admin `st-admin` (the token in ST_TOKEN):
two products, a reservation and two orders on them, a dead letter (a malformed record put on
`order_queue` with `tansu cat`, as a buggy producer would), two DLQ audit entries (dry runs), and at
bank 001 two accounts, two applied deposits and a transfer. It writes the run's schemathesis
configuration (scripts/schemathesis/schemathesis.toml, plus a dictionary per fixture and where the
fuzzer should use it) to the file named by its argument, and prints what it made.

Usage: fixtures.py CONFIG_OUT (env: ST_TOKEN, ST_TANSU, ST_BROKER; the standard ports)
"""

import os
import subprocess
import sys
import time
import uuid

import requests

TOKEN = os.environ["ST_TOKEN"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PRODUCT, ORCHESTRATOR, BANK = "http://127.0.0.1:3333", "http://127.0.0.1:3334", "http://127.0.0.1:3340"
USER = "st-admin"
DEADLINE = 60  # seconds, for anything that completes asynchronously


def call(method, url, body=None, idempotent=False, ok=(200, 201, 202)):
    headers = dict(AUTH)
    if idempotent:
        headers["Idempotency-Key"] = str(uuid.uuid4())
    r = requests.request(method, url, json=body, headers=headers, timeout=10)
    if r.status_code not in ok:
        sys.exit(f"[fixtures] {method} {url} answered {r.status_code}: {r.text[:300]}")
    return r.json()


def until(what, probe):
    """`probe()`'s first truthy answer, polled until DEADLINE."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        value = probe()
        if value:
            return value
        time.sleep(0.2)
    sys.exit(f"[fixtures] gave up waiting for {what}")


def cursor(url):
    """The `next_cursor` of the first one-item page of a list (it has two items or more)."""
    return until(f"a second item in {url}", lambda: call("GET", f"{url}{'&' if '?' in url else '?'}limit=1").get("next_cursor"))


def main():
    run = uuid.uuid4().hex[:8]
    fixture = {}

    # Products and orders. Two products: the duplicate rule holds one order per user and product.
    products = [call("POST", f"{PRODUCT}/products", {"name": f"schemathesis {run} {i}", "category": "fixtures", "price": "9.99", "stock": 1_000_000}) for i in (1, 2)]
    fixture["PRODUCT_ID"] = products[0]["id"]
    reservations = [call("POST", f"{PRODUCT}/reserve", {"product_id": p["id"], "quantity": 1, "user_id": USER}, idempotent=True) for p in products]
    card = {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12, "exp_year": time.gmtime().tm_year + 3, "cvc": "123"}}
    orders = [call("POST", f"{ORCHESTRATOR}/payment", {"reservation_id": r["id"], "payment_method": card}, idempotent=True) for r in reservations]
    fixture["ORDER_ID"] = orders[0]["order_id"]
    # A reservation still to pay (the fuzzer's POST /payment reaches the saga with it).
    fixture["RESERVATION_ID"] = call("POST", f"{PRODUCT}/reserve", {"product_id": products[1]["id"], "quantity": 1, "user_id": USER}, idempotent=True)["id"]
    fixture["ORDERS_CURSOR"] = cursor(f"{ORCHESTRATOR}/orders")

    # A dead letter, and audit entries.
    record = f'{{"key": "schemathesis-{run}", "value": "not an order ({run})"}}\n'
    subprocess.run([os.environ["ST_TANSU"], "cat", "produce", "order_queue", "--broker", os.environ["ST_BROKER"]], input=record, text=True, check=True, timeout=30)
    letters = until("the dead letter", lambda: [d for d in call("GET", f"{ORCHESTRATOR}/admin/dlq?error_class=malformed&per_page=100")["items"] if run in (d.get("original_key") or "")])
    fixture["DEAD_LETTER_ID"] = str(letters[0]["id"])
    for _ in (1, 2):
        call("POST", f"{ORCHESTRATOR}/admin/dlq/replay", {"ids": [letters[0]["id"]], "dry_run": True})
    fixture["AUDIT_CURSOR"] = cursor(f"{ORCHESTRATOR}/admin/dlq/audit")

    # Bank 001: a funded account, a second one to pay, their statement, an operation, a transfer.
    accounts = [call("POST", f"{BANK}/accounts", {"type": "joint", "currency": "USD", "holders": [USER, f"st-{run}"]}) for _ in (1, 2)]
    fixture["ACCOUNT_ID"] = accounts[0]["id"]
    fixture["ACCOUNT_NUMBER"] = accounts[1]["number"]
    operation = None
    for amount in ("100.00", "50.00"):
        operation = call("POST", f"{BANK}/accounts/{accounts[0]['id']}/operations", {"type": "deposit", "amount": amount}, idempotent=True)
    fixture["OPERATION_ID"] = operation["operation_id"]
    until("the deposits", lambda: call("GET", f"{BANK}/operations/{operation['operation_id']}")["status"] == "APPLIED")
    fixture["STATEMENT_CURSOR"] = cursor(f"{BANK}/accounts/{accounts[0]['id']}/statement")
    transfer = call("POST", f"{BANK}/transfers", {"kind": "instant", "from_account": accounts[0]["id"], "amount": "1.00",
                                                  "to": {"bank": "001", "account_number": accounts[1]["number"]}}, idempotent=True)
    fixture["TRANSFER_ID"] = transfer["id"]

    with open(sys.argv[1], "w") as out:
        out.write(config(fixture))
    print(" ".join(f"{k.lower()}={v}" for k, v in fixture.items()))


# Where each fixture goes: (operations matched by path regex, parameter, fixture, as integer?).
# They are dictionaries, not fixed values: schemathesis draws them only for requests meant to be
# valid, and a request meant to break a rule keeps its broken value (a pinned value would mend it
# and then be reported as "schema-violating request accepted").
PINS = [
    (r"^/products/\\{id\\}$", "path.id", "PRODUCT_ID", True),
    (r"^/reservations/\\{id\\}$", "path.id", "RESERVATION_ID", False),
    (r"^/payment$", "body.reservation_id", "RESERVATION_ID", False),
    (r"^/orders/\\{id\\}$", "path.id", "ORDER_ID", False),
    (r"^/orders$", "query.cursor", "ORDERS_CURSOR", False),
    (r"^/admin/dlq/\\{id\\}$", "path.id", "DEAD_LETTER_ID", True),
    (r"^/admin/dlq/audit$", "query.cursor", "AUDIT_CURSOR", False),
    (r"^/accounts/\\{id\\}(/operations|/statement)?$", "path.id", "ACCOUNT_ID", False),
    (r"^/accounts/\\{id\\}/statement$", "query.cursor", "STATEMENT_CURSOR", False),
    (r"^/accounts/lookup$", "query.number", "ACCOUNT_NUMBER", False),
    (r"^/operations/\\{id\\}$", "path.id", "OPERATION_ID", False),
    (r"^/transfers/\\{id\\}$", "path.id", "TRANSFER_ID", False),
    (r"^/transfers$", "body.to.account_number", "ACCOUNT_NUMBER", False),
    (r"^/transfers$", "body.to.bank", "BANK_CODE", False),
]


def config(fixture):
    """schemathesis.toml: the static settings, then a dictionary per fixture and the bindings."""
    fixture = dict(fixture, BANK_CODE="001")
    with open(os.path.join(os.path.dirname(__file__), "schemathesis.toml")) as f:
        text = f.read()
    text += "\n[dictionaries]\n"
    for name, value in fixture.items():
        literal = value if name in {n for _, _, n, integer in PINS if integer} else f'"{value}"'
        text += f"{name.lower()} = {{ values = [{literal}] }}\n"
    by_path = {}
    for regex, parameter, name, _ in PINS:
        by_path.setdefault(regex, []).append((parameter, name))
    for regex, bindings in by_path.items():
        params = ", ".join(f'"{p}" = {{ dictionary = "{n.lower()}" }}' for p, n in bindings)
        text += f'\n[[operations]]\ninclude-path-regex = "{regex}"\nparameters = {{ {params} }}\n'
    return text


if __name__ == "__main__":
    main()
