"""``atalaia lists|cases|accounts ...`` and ``atalaia explain``: the admin API from the
terminal.

The commands call the running ``atalaia api`` with the key in ``$ATALAIA_API_KEY`` (never a
flag: command lines are visible to every user of the machine), so the CLI gets the same
roles, validation and audit records as any other caller.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from config.auth import key_digest, new_key

API_KEY_ENV = "ATALAIA_API_KEY"
TIMEOUT_S = 60


class AdminCallError(Exception):
    """The API refused the call or could not be reached; one line for the operator."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def call(
    port: int, method: str, path: str, body: bytes | None = None, content_type: str = "json"
) -> Any:
    key = os.environ.get(API_KEY_ENV)
    if not key:
        raise AdminCallError(f"set ${API_KEY_ENV} to an admin API key (atalaia api-key)", 2)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        method=method,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json" if content_type == "json" else content_type,
            "User-Agent": "atalaia-cli",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise AdminCallError(_refusal(error), 1) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise AdminCallError(f"cannot reach atalaia api on port {port} ({reason})", 1) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _refusal(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read())
        detail = body.get("detail", "")
    except (json.JSONDecodeError, AttributeError):
        detail = ""
    return f"the API answered {error.code}: {detail or error.reason}"


def lists_command(port: int, args: Any) -> int:
    quoted = urllib.parse.quote
    if args.lists_command == "add":
        entry = {
            "kind": args.kind,
            "entity_type": args.entity_type,
            "value": args.value,
            "severity": args.severity,
            "source": args.source,
            "reason": args.reason,
        }
        if args.expires_at:
            entry["expires_at"] = args.expires_at
        shown = call(port, "POST", "/api/admin/blacklist", json.dumps(entry).encode())
    elif args.lists_command == "remove":
        path = f"/api/admin/blacklist/{quoted(args.entity_type)}/{quoted(args.value, safe='')}"
        shown = call(port, "DELETE", f"{path}?kind={args.kind}")
    elif args.lists_command == "check":
        items = [{"entity_type": args.entity_type, "value": v} for v in args.values]
        body = json.dumps({"entities": items}).encode()
        shown = call(port, "POST", "/api/admin/blacklist/check", body)
    elif args.lists_command == "import":
        source = Path(args.file)
        if not source.is_file():
            raise AdminCallError(f"no such file: {source}", 2)
        target = f"/api/admin/blacklist/import?format={args.format}&kind={args.kind}"
        shown = call(port, "POST", target, source.read_bytes(), "text/plain")
    else:
        exported = call(port, "GET", f"/api/admin/blacklist/export?format={args.format}")
        sys.stdout.write(exported if isinstance(exported, str) else json.dumps(exported) + "\n")
        return 0
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def cases_command(port: int, args: Any) -> int:
    if args.cases_command == "list":
        query = f"?status={args.status}" if args.status else ""
        shown = call(port, "GET", f"/api/admin/cases{query}")
    elif args.cases_command == "show":
        shown = call(port, "GET", f"/api/admin/cases/{urllib.parse.quote(args.case_id)}")
    else:
        body: dict[str, str] = {"outcome": args.outcome}
        if args.note:
            body["note"] = args.note
        path = f"/api/admin/cases/{urllib.parse.quote(args.case_id)}/close"
        shown = call(port, "POST", path, json.dumps(body).encode())
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def accounts_command(port: int, args: Any) -> int:
    base = "/api/admin/accounts"
    if args.accounts_command == "list":
        shown = call(port, "GET", f"{base}?status={'all' if args.all else 'frozen'}")
    elif args.accounts_command == "show":
        shown = call(port, "GET", f"{base}/{urllib.parse.quote(args.user_id, safe='')}")
    else:
        path = f"{base}/{urllib.parse.quote(args.user_id, safe='')}/{args.accounts_command}"
        shown = call(port, "POST", path, json.dumps({"reason": args.reason}).encode())
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def explain_command(port: int, event_id: str, as_json: bool) -> int:
    from engine.explain import render_text

    path = f"/api/admin/decisions/{urllib.parse.quote(event_id, safe='')}"
    explained = call(port, "GET", path)
    print(
        json.dumps(explained, indent=2, ensure_ascii=False) if as_json else render_text(explained)
    )
    return 0


def api_key_command(name: str, role: str) -> int:
    """Make a key: show it once, and the settings entry that stores only its digest."""
    key = new_key()
    print(f"key (shown once; give it to {name}): {key}")
    print(f"add to ATALAIA_API_KEYS: {name}:{role}:{key_digest(key)}")
    return 0
