"""peerwire: builds peer-port batches (POST /raft/message) the way an
attacker who read src/transport/codec.c would: well-formed frames with the
right cluster id and checksum, carrying whatever fields the test chooses.
Must never be used to talk to a node in a passing path: it forges."""
import struct

WIRE_VERSION = 2
APPEND, HEARTBEAT, PROP = 1, 7, 10

_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def entry(term, index, data, etype=0):
    """An entry with its own checksum, as a forger who read codec.c makes it."""
    return struct.pack("<QQBI", term, index, etype, len(data)) + data + struct.pack("<I", crc32c(data))


def message(mtype, frm, to, term, log_term=0, index=0, commit=0, entries=()):
    head = struct.pack("<BBB", mtype, 0, 0)
    words = struct.pack("<10Q", frm, to, term, log_term, index, commit, 0, 0, 0, 0)
    conf = struct.pack("<I", 0) + struct.pack("<I", 0)
    ents = struct.pack("<I", len(entries)) + b"".join(entries)
    return head + words + conf + ents


def batch(cluster_id, msgs):
    body = b"RKVM" + struct.pack("<BQI", WIRE_VERSION, cluster_id, len(msgs)) + b"".join(msgs)
    return body + struct.pack("<I", crc32c(body))


def cluster_id(node):
    r = node.peer_request("GET", "/raft/info")
    return int(r.json()["cluster_id"])


def send(node, msgs):
    body = batch(cluster_id(node), msgs)
    return node.peer_request("POST", "/raft/message", body,
                             headers={"Content-Type": "application/octet-stream"})
