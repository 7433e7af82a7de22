"""The SIA DC-09 peer of tenwatch's tests: an alarm panel built from pysiaalarm's own parts.

pysiaalarm is a DC-09 receiver library we did not write. Its CRC (`SIAEvent._crc_calc`), its
AES-CBC (`SIAEvent.encrypt_content` / `decrypt_content`, with its `SIAAccount`) build the
messages this peer sends, and the same parts check the gateway's answers. Its own receiver
logic (`BaseSIAServer.parse_and_check_event`) also judges every message sent, so a test can
compare the gateway's answer with the one pysiaalarm would give.

Protocol with the test: one JSON command per line on stdin, one JSON result per line on stdout.
The peer exits when stdin closes. Commands:

  {"op": "send", "host": H, "port": P, "transport": "tcp"|"udp", "message": M,
   "oracle_accounts": [{"account": A, "key": K|null}]}
      M: {"account": A, "key": K|null, "seq": N, "token": "ADM-CID"|"NULL"|…,
          "event": "1120 01 015", "encrypt": bool, "ts_offset": seconds|null,
          "corrupt_crc": bool} or {"raw": "text sent as is"}
  {"op": "session", "host": H, "port": P, "messages": [M, …]}
      the messages one after another on one TCP connection, each answer read before the
      next is sent, as a panel that keeps its connection does: the answers, read as for send.
  {"op": "flood", "host": H, "port": P, "lines": N, "line": "text"}
      N lines on one TCP connection; counts the answers and whether the receiver closed it.
  {"op": "oversize", "host": H, "port": P, "bytes": N}
      N bytes with no <CR> on one TCP connection: the answer, and whether it was closed.

Keys are pysiaalarm's: the key's characters are its bytes ("AAAAAAAAAAAAAAAA" is 0x41 x 16);
tenwatch registers the same key as 32 hex digits.
"""

import json
import logging
import socket
import sys
from datetime import datetime, timedelta, timezone

from pysiaalarm.account import SIAAccount
from pysiaalarm.base_server import BaseSIAServer
from pysiaalarm.event import SIAEvent
from pysiaalarm.utils import Counter

TIMEOUT = 5.0

# pysiaalarm warns on every message it refuses; the refusals are what the tests send.
logging.disable(logging.WARNING)


def crc(text):
    return SIAEvent._crc_calc(text)


def crypter_event(account, key):
    """A bare SIAEvent holding only an account: pysiaalarm's encrypt/decrypt need no more."""
    ev = object.__new__(SIAEvent)
    ev.sia_account = SIAAccount(account, key)
    return ev


def timestamp(offset):
    at = datetime.now(timezone.utc) + timedelta(seconds=offset)
    return at.strftime("_%H:%M:%S,%m-%d-%Y")


def build(m):
    """The line (without <LF> and <CR>) and the body its CRC and length cover."""
    if "raw" in m:
        return m["raw"]
    account, seq, token = m["account"], "%04d" % m["seq"], m.get("token", "ADM-CID")
    event = m.get("event", "")
    data = "#%s|%s]" % (account, event) if token != "NULL" else "]"
    ts = timestamp(m["ts_offset"]) if m.get("ts_offset") is not None else ""
    route = '%sR0L0#%s[' % (seq, account)
    if m.get("encrypt"):
        sealed = crypter_event(account, m["key"]).encrypt_content("|" + data + ts)
        body = '"*%s"%s%s' % (token, route, sealed)
    else:
        body = '"%s"%s%s%s' % (token, route, data, ts)
    check = crc(body)
    if m.get("corrupt_crc"):
        check = "%04X" % (int(check, 16) ^ 0x0101)
    return "%s%04X%s" % (check, len(body), body)


def oracle(line, accounts):
    """What pysiaalarm's own receiver answers to this line: ACK, NAK, DUH or None."""
    accs = {
        a["account"].upper(): SIAAccount(a["account"], a.get("key"), allowed_timeband=(40, 20))
        for a in accounts
    }

    class Judge(BaseSIAServer):
        pass

    judge = Judge(accs, Counter())
    try:
        event = judge.parse_and_check_event(line.encode("ascii"))
    except Exception as exc:  # pysiaalarm raising is an answer too: none
        return "raised: %s" % exc
    if event is None:
        return None
    response = event.response
    return response.value if response is not None else None


def read_answer(m, raw):
    """The gateway's answer, checked with pysiaalarm's CRC and AES."""
    if raw is None:
        return {"answer": None}
    text = raw.decode("ascii", "replace")
    out = {"answer": text}
    body_full = text.strip("\n\r")
    out["framed"] = text.startswith("\n") and text.endswith("\r")
    check, length, body = body_full[:4], body_full[4:8], body_full[8:]
    out["crc_ok"] = crc(body) == check
    out["length_ok"] = length.upper() == "%04X" % len(body)
    if body.startswith('"'):
        end = body.index('"', 1)
        out["token"] = body[1:end]
        rest = body[end + 1:]
        out["seq"] = rest[:4]
        out["route"] = rest[: rest.index("[")] if "[" in rest else rest
        tail = rest[rest.index("[") + 1:] if "[" in rest else ""
        out["tail"] = tail
        if out["token"] == "*ACK" and m.get("key"):
            ev = crypter_event(m["account"], m["key"])
            ev.encrypted_content = tail
            ev.decrypt_content()
            out["decrypted"] = ev.content
            stamp = ev.content.split("]_", 1)[-1]
            out["ts_ok"] = _parses(stamp)
        if out["token"] == "NAK":
            out["ts_ok"] = _parses(tail.split("]_", 1)[-1])
    return out


def _parses(stamp):
    try:
        datetime.strptime(stamp, "%H:%M:%S,%m-%d-%Y")
        return True
    except ValueError:
        return False


def recv_until_cr(sock):
    data = b""
    while not data.endswith(b"\r"):
        chunk = sock.recv(4096)
        if not chunk:
            return data or None
        data += chunk
    return data


def send(cmd):
    m = cmd["message"]
    line = build(m)
    wire = ("\n" + line + "\r").encode("ascii")
    addr = (cmd["host"], cmd["port"])
    raw = None
    if cmd.get("transport", "tcp") == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(TIMEOUT)
            s.sendto(wire, addr)
            try:
                raw, _ = s.recvfrom(4096)
            except socket.timeout:
                raw = None
    else:
        with socket.create_connection(addr, timeout=TIMEOUT) as s:
            s.sendall(wire)
            try:
                raw = recv_until_cr(s)
            except socket.timeout:
                raw = None
    out = read_answer(m, raw)
    out["sent"] = line
    out["pysiaalarm"] = oracle(line, cmd.get("oracle_accounts", []))
    return out


def session(cmd):
    results = []
    with socket.create_connection((cmd["host"], cmd["port"]), timeout=TIMEOUT) as s:
        for m in cmd["messages"]:
            s.sendall(("\n" + build(m) + "\r").encode("ascii"))
            try:
                raw = recv_until_cr(s)
            except socket.timeout:
                raw = None
            results.append(read_answer(m, raw))
    return {"answers": results}


def flood(cmd):
    answers, closed = 0, False
    with socket.create_connection((cmd["host"], cmd["port"]), timeout=TIMEOUT) as s:
        try:
            for _ in range(cmd["lines"]):
                s.sendall(("\n" + cmd["line"] + "\r").encode("ascii"))
        except OSError:
            closed = True
        buf = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    closed = True
                    break
                buf += chunk
        except socket.timeout:
            pass
        except OSError:  # reset: closed too
            closed = True
        answers = buf.count(b"\r")
    return {"answers": answers, "closed": closed}


def oversize(cmd):
    with socket.create_connection((cmd["host"], cmd["port"]), timeout=TIMEOUT) as s:
        try:
            s.sendall(b"\n" + b"A" * cmd["bytes"])
        except OSError:
            pass
        raw = recv_until_cr(s)
        closed = False
        try:
            closed = s.recv(1) == b""
        except OSError:
            closed = True
    return {"answer": raw.decode("ascii", "replace") if raw else None, "closed": closed}


def main():
    ops = {"send": send, "session": session, "flood": flood, "oversize": oversize}
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        try:
            result = ops[cmd["op"]](cmd)
        except Exception as exc:  # reported to the test, which fails with it
            result = {"error": "%s: %s" % (type(exc).__name__, exc)}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
