"""The bus's AsyncAPI document as one readable HTML page, rendered here from the document itself:
no script, no stylesheet or font from a CDN (many installs have no internet access)."""

from html import escape
from urllib.parse import unquote

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:70rem;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}h3{margin:1.6rem 0 .3rem}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}th,td{border:1px solid #ddd;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f4f4f4}code{font:13px ui-monospace,monospace;background:#f4f4f4;
padding:0 .2rem}.send{color:#0a5}.receive{color:#05a}.muted{color:#666}pre{white-space:pre-wrap}
"""


def render(doc: dict) -> str:
    """The whole page: the subjects (who sends, who receives, which payload), then each payload's fields."""
    info = doc.get("info", {})
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(info.get('title', ''))}"
        f" — AsyncAPI</title><style>{STYLE}</style></head><body>",
        f"<h1>{escape(info.get('title', ''))}</h1>",
        f"<p class='muted'>AsyncAPI {escape(doc.get('asyncapi', ''))} · version {escape(str(info.get('version', '')))}"
        f" · <a href='asyncapi.json'>asyncapi.json</a></p>",
        f"<pre>{escape(info.get('description') or '')}</pre>",
        _servers(doc),
        _subjects(doc),
        "<h2>Payloads</h2>",
    ]
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        parts.append(_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)


def _servers(doc: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(n)}</td><td><code>{escape(s.get('protocol', ''))}://{escape(s.get('host', ''))}"
        f"</code></td></tr>"
        for n, s in doc.get("servers", {}).items()
    )
    return f"<h2>Servers</h2><table><tr><th>name</th><th>address</th></tr>{rows}</table>"


def _subjects(doc: dict) -> str:
    """One row per subject: the services that send it, those that receive it, its payload."""
    channels = doc.get("channels", {})
    messages = doc.get("components", {}).get("messages", {})
    by_subject: dict[str, dict] = {}
    for op_name, op in doc.get("operations", {}).items():
        channel_key = unquote(op["channel"]["$ref"].rsplit("/", 1)[-1])
        channel = channels.get(channel_key, {})
        row = by_subject.setdefault(
            channel.get("address", channel_key), {"send": [], "receive": [], "payloads": set(), "notes": []}
        )
        row[op["action"]].append(op_name.split(":", 1)[0])
        if channel.get("description"):
            row["notes"].append(f"{op_name.split(':', 1)[0]}: {channel['description']}")
        for ref in channel.get("messages", {}).values():
            payload = messages.get(unquote(ref["$ref"].rsplit("/", 1)[-1]), {}).get("payload", {})
            row["payloads"].add(_ref_name(payload))
    rows = []
    for subject, row in sorted(by_subject.items()):
        payloads = ", ".join(_link(p) for p in sorted(p for p in row["payloads"] if p))
        notes = "<br>".join(escape(n) for n in row["notes"])
        rows.append(
            f"<tr><td><code>{escape(subject)}</code></td>"
            f"<td class='send'>{escape(', '.join(sorted(set(row['send']))))}</td>"
            f"<td class='receive'>{escape(', '.join(sorted(set(row['receive']))))}</td>"
            f"<td>{payloads}</td><td class='muted'>{notes}</td></tr>"
        )
    return (
        "<h2>Subjects</h2><table><tr><th>subject</th><th>sent by</th><th>received by</th><th>payload</th>"
        f"<th>what it means</th></tr>{''.join(rows)}</table>"
    )


def _ref_name(schema: dict) -> str:
    ref = schema.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref else ""


def _link(name: str) -> str:
    return f"<a href='#{escape(name)}'>{escape(name)}</a>"


def _type(schema: dict) -> str:
    """A short HTML rendering of a property's type."""
    if "$ref" in schema:
        return _link(_ref_name(schema))
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return " | ".join(_type(s) for s in schema[key])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type(schema['additionalProperties'])}"
    if "enum" in schema or "const" in schema:
        values = schema.get("enum", [schema.get("const")])
        return " | ".join(f"<code>{escape(repr(v))}</code>" for v in values)
    return escape(f"{kind} ({schema['format']})" if "format" in schema else str(kind))


def _schema(name: str, schema: dict) -> str:
    required = set(schema.get("required", []))
    head = f"<h3 id='{escape(name)}'>{escape(name)}</h3>"
    if schema.get("description"):
        head += f"<p>{escape(schema['description'])}</p>"
    props = schema.get("properties", {})
    if not props:
        return head + f"<p class='muted'>{_type(schema)}</p>"
    rows = "".join(
        f"<tr><td><code>{escape(field)}</code></td><td>{_type(prop)}</td><td>{_required(field in required, prop)}"
        f"</td><td>{escape(prop.get('description', ''))}</td></tr>"
        for field, prop in props.items()
    )
    return head + f"<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>{rows}</table>"


def _required(required: bool, prop: dict) -> str:
    if required:
        return "yes"
    return "no" + (f" (default <code>{escape(repr(prop['default']))}</code>)" if "default" in prop else "")
