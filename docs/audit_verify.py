"""Checks an Alexandria audit export without Alexandria (docs/AUDIT.md).
Usage: python3 audit_verify.py EXPORT.jsonl [PUBLIC_KEY_HEX]     (needs: pip install cryptography)"""
import hashlib, json, sys
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

def num(x):  # a float as serde_json writes it: shortest round-trip digits, ryu's layout
    if x == 0: return "-0.0" if str(x)[0] == "-" else "0.0"
    m, _, e = repr(abs(x)).partition("e"); i, _, f = m.partition(".")
    d = (i + f).lstrip("0"); k = len(i) + int(e or 0) - (len(i + f) - len(d)); d = d.rstrip("0"); n = len(d)
    s = (d + "0" * (k - n) + ".0" if n <= k <= 16 else d[:k] + "." + d[k:] if 0 < k <= 16
         else "0." + "0" * -k + d if -5 < k <= 0 else d[0] + ("." + d[1:] if n > 1 else "") + "e%+d" % (k - 1))
    return ("-" if x < 0 else "") + s

def canon(v):  # sorted keys, no whitespace, UTF-8, numbers as serde_json writes them
    if isinstance(v, dict): return "{" + ",".join(canon(k) + ":" + canon(v[k]) for k in sorted(v)) + "}"
    if isinstance(v, list): return "[" + ",".join(map(canon, v)) + "]"
    return num(v) if isinstance(v, float) else json.dumps(v, ensure_ascii=False)

key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(sys.argv[2])) if len(sys.argv) > 2 else None
prev, seq, unsealed = bytes(32), 0, None
for text in open(sys.argv[1], encoding="utf-8"):
    line = json.loads(text)
    if "checkpoint" in line:
        c = line["checkpoint"]; signed = {k: c[k] for k in ("chain", "hash", "position", "seq", "signed_at")}
        try: key and key.verify(bytes.fromhex(c["signature"]), b"alexandria-audit-checkpoint-v1\n" + canon(signed).encode())
        except Exception: sys.exit(f"FAILED at position {c['position']}: bad checkpoint signature")
        if key and (c["seq"], c["hash"]) != (seq, prev.hex()): sys.exit(f"FAILED at position {c['position']}: checkpoint mismatch")
        continue
    at = line.get("position", line.get("id"))
    if "hash" not in line: unsealed = unsealed or at; continue  # not sealed yet: only at the end
    if unsealed: sys.exit(f"FAILED at position {unsealed}: inserted")
    if line["prev_hash"] != prev.hex(): sys.exit(f"FAILED at position {at}: not linked to the line before it")
    content = {k: v for k, v in line.items() if k not in ("hash", "prev_hash", "unreadable")}
    prev, seq = hashlib.sha256(prev + canon(content).encode()).digest(), seq + 1
    if line["hash"] != prev.hex(): sys.exit(f"FAILED at position {at}: edited")
print(f"OK: {seq} sealed, head {prev.hex()}")
