"""Cut-off recordings: recognise them, and read the part that was written (``data.bag_recover``).

A recorder that is killed, loses power or fills its disk leaves a bag without its end: an MCAP file
without its summary and footer (rosbags: "File end magic is invalid"), a rosbag2 folder without
``metadata.yaml`` (written when ``ros2 bag record`` stops cleanly), or a sqlite3 file cut short.
:func:`cut_off_message` says so in a user's words; :class:`RecoveredReader` reads every complete
message up to the cut, straight from the storage file (MCAP records and chunks, or the sqlite3
``messages`` table), with the small part of the ``rosbags`` reader interface that
:func:`.rosbag.extract_bag` and the LiDAR evaluation use.
"""
from __future__ import annotations

import sqlite3
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

MCAP_MAGIC = b"\x89MCAP0\r\n"
STORAGE_SUFFIXES = (".mcap", ".db3")
# What rosbags and sqlite say about a file that ends early.
_CUT_SIGNS = ("end magic", "malformed", "disk i/o", "truncated", "unexpected end", "not enough data", "metadata.yaml",
              "short read", "could not read", "file is not a database")


def storage_files(bag: Path) -> list[Path]:
    """The .mcap / .db3 files of a bag (the file itself, or those inside a rosbag2 folder), sorted."""
    if bag.is_file():
        return [bag] if bag.suffix in STORAGE_SUFFIXES else []
    return sorted(p for p in bag.iterdir() if p.suffix in STORAGE_SUFFIXES and p.is_file()) if bag.is_dir() else []


def looks_cut_off(bag: Path, error: Optional[BaseException] = None) -> bool:
    """A rosbag2 folder with storage files but no metadata.yaml, or a read error of a file that ends early."""
    if bag.is_dir() and storage_files(bag) and not (bag / "metadata.yaml").is_file():
        return True
    text = f"{type(error).__name__}: {error}".lower() if error is not None else ""
    return any(sign in text for sign in _CUT_SIGNS)


def cut_off_message(bag: Path, detail: str, frames_read: int = 0) -> str:
    """What a user needs to know about a cut-off bag: what it is, that nothing was used, how to recover it."""
    files = storage_files(bag)
    kinds = {p.suffix for p in files}
    repair = []
    if ".mcap" in kinds:
        repair.append("`mcap recover IN.mcap -o FIXED.mcap` (the mcap CLI)")
    if ".db3" in kinds:
        repair.append("`sqlite3 IN.db3 .recover | sqlite3 FIXED.db3`")
    if bag.is_dir() and not (bag / "metadata.yaml").is_file():
        repair.append(f"`ros2 bag reindex {bag}` (rewrites the missing metadata.yaml)")
    read = f"{frames_read} frames had been read before the cut; " if frames_read else ""
    return (f"cut-off recording: {bag} ends early, as when the recorder is stopped before it finishes writing "
            f"({detail}). {read}No frames from it were used. To train on the part that was written, set data.bag_recover=true "
            f"(reads every complete message up to the cut){'; or repair the bag with ' + ' or '.join(repair) if repair else ''}.")


# ------------------------------------------------------------------------------------ reader
@dataclass
class TopicInfo:
    msgtype: str
    msgcount: int


@dataclass(frozen=True)
class RecoveredConnection:
    id: int
    topic: str
    msgtype: str


class RecoveredReader:
    """Every complete message of a bag's storage files, up to where they were cut off.

    Args:
        bag: a rosbag2 folder (with or without metadata.yaml) or a single .mcap / .db3 file.
    Attributes:
        topics: {topic: TopicInfo(msgtype, msgcount)} of what could be read.
        connections: one RecoveredConnection per topic.
        note: one line saying how much was read and where the recording ends.
    """

    def __init__(self, bag):
        from rosbags.typesys import Stores, get_typestore

        self.bag = Path(bag)
        self.files = storage_files(self.bag)
        if not self.files:
            from .errors import MissingData

            raise MissingData(f"{self.bag}: no .mcap or .db3 file to recover messages from")
        self.typestore = get_typestore(Stores.ROS2_JAZZY)
        self._schemas: dict[str, str] = {}  # msgtype -> ros2msg definition (MCAP schemas)
        self.connections: list[RecoveredConnection] = []
        self.cut: list[str] = []
        counts: dict[int, int] = {}
        for conn, _, _ in self._scan(index_only=True):
            counts[conn.id] = counts.get(conn.id, 0) + 1
        self.topics = {c.topic: TopicInfo(c.msgtype, counts.get(c.id, 0)) for c in self.connections}
        total = sum(counts.values())
        self.note = (f"read the part of the cut-off recording that was written: {total} complete messages"
                     f" ({'; '.join(self.cut) if self.cut else 'no cut found'}); the rest is lost")

    # The reader protocol of rosbags' AnyReader that extract_bag uses.
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def messages(self, connections=()) -> Iterator[tuple[RecoveredConnection, int, bytes]]:
        wanted = {c.topic for c in connections} if connections else None
        for conn, t_ns, raw in self._scan(index_only=False):
            if wanted is None or conn.topic in wanted:
                yield conn, t_ns, raw

    def deserialize(self, raw: bytes, msgtype: str):
        if msgtype not in self.typestore.types and msgtype in self._schemas:
            from rosbags.typesys import get_types_from_msg

            self.typestore.register(get_types_from_msg(self._schemas[msgtype], msgtype))
        return self.typestore.deserialize_cdr(raw, msgtype)

    # Storage formats.
    def _connection(self, key, topic: str, msgtype: str) -> RecoveredConnection:
        for c in self.connections:
            if c.topic == topic:
                return c
        conn = RecoveredConnection(len(self.connections), topic, msgtype)
        self.connections.append(conn)
        return conn

    def _scan(self, index_only: bool):
        record_cut = index_only  # the cut is noted once, on the first (indexing) pass
        for path in self.files:
            scan = _scan_mcap if path.suffix == ".mcap" else _scan_sqlite
            for item in scan(path, self):
                if isinstance(item, str):
                    if record_cut:
                        self.cut.append(f"{path.name}: {item}")
                    continue
                yield item


def _scan_mcap(path: Path, reader: RecoveredReader):
    data = memoryview(path.read_bytes())
    if bytes(data[:8]) != MCAP_MAGIC:
        yield "not an MCAP file (no start magic)"
        return
    channels: dict[int, RecoveredConnection] = {}
    schemas: dict[int, str] = {}

    def string(buf, pos):
        (n,) = struct.unpack_from("<I", buf, pos)
        return bytes(buf[pos + 4 : pos + 4 + n]).decode(), pos + 4 + n

    def records(buf, pos, end, top):
        while pos < end:
            if pos + 9 > end:
                if top:
                    yield f"cut at byte {pos} of {end} (inside a record header)"
                return
            op = buf[pos]
            (length,) = struct.unpack_from("<Q", buf, pos + 1)
            body_start, body_end = pos + 9, pos + 9 + length
            if body_end > end:
                if top:
                    yield f"cut at byte {pos} of {end} (a record of {length} bytes is incomplete)"
                return
            body = buf[body_start:body_end]
            pos = body_end
            if op == 0x03:  # Schema
                (sid,) = struct.unpack_from("<H", body, 0)
                name, p = string(body, 2)
                _, p = string(body, p)
                (n,) = struct.unpack_from("<I", body, p)
                schemas[sid] = name
                reader._schemas[name] = bytes(body[p + 4 : p + 4 + n]).decode(errors="replace")
            elif op == 0x04:  # Channel
                cid, sid = struct.unpack_from("<HH", body, 0)
                topic, _ = string(body, 4)
                channels[cid] = reader._connection(cid, topic, schemas.get(sid, ""))
            elif op == 0x05:  # Message
                cid, _, log_time, _ = struct.unpack_from("<HIQQ", body, 0)
                if cid in channels:
                    yield channels[cid], int(log_time), bytes(body[22:])
            elif op == 0x06:  # Chunk: its records, decompressed
                _, _, size, _ = struct.unpack_from("<QQQI", body, 0)
                compression, p = string(body, 28)
                (n,) = struct.unpack_from("<Q", body, p)
                payload = bytes(body[p + 8 : p + 8 + n])
                if compression == "zstd":
                    try:
                        from compression import zstd
                    except ImportError:
                        from backports import zstd
                    payload = zstd.decompress(payload)
                elif compression == "lz4":
                    from lz4.frame import decompress

                    payload = decompress(payload)
                yield from records(memoryview(payload), 0, len(payload), False)
            elif op in (0x0F, 0x02):  # DataEnd / Footer: a complete file
                return

    yield from records(data, 8, len(data), True)


def _scan_sqlite(path: Path, reader: RecoveredReader):
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        yield f"sqlite cannot open it ({exc})"
        return
    try:
        try:
            topics = {tid: reader._connection(tid, name, mtype) for tid, name, mtype in con.execute("SELECT id, name, type FROM topics")}
        except sqlite3.DatabaseError as exc:
            yield f"the topics table cannot be read ({exc})"
            return
        try:
            for tid, stamp, data in con.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY id"):
                if tid in topics:
                    yield topics[tid], int(stamp), bytes(data)
        except sqlite3.DatabaseError as exc:
            yield f"the messages table ends early ({exc})"
    finally:
        con.close()
