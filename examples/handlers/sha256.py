#!/usr/bin/env python3
"""sha256: a message handler in Python with no dependencies, to show the protocol is language-neutral.

Returns the SHA-256 digest and byte length of the job's data (a string is hashed as UTF-8, any
other JSON value as its compact JSON text) to the submitter. The daemon passes the socket path in
BESTER_SOCKET. Each frame is a 4-byte little-endian length followed by UTF-8 JSON.
"""

import hashlib
import json
import os
import signal
import socket
import struct
import sys
import threading


def read_exact(conn, count):
    data = bytearray()
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return bytes(data)


def send_frame(conn, message):
    body = json.dumps(message, separators=(",", ":")).encode("utf-8")
    conn.sendall(struct.pack("<I", len(body)) + body)


def handle_job(message):
    payload = message.get("payload")
    job = message.get("job", {})
    raw = payload.encode("utf-8") if isinstance(payload, str) else json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return {
        "payload": {"sha256": hashlib.sha256(raw).hexdigest(), "bytes": len(raw)},
        "director": {"type": "userDelivery", "users": [job.get("from", "")]},
        # Naming the job lets the daemon reject a reply that arrives for an earlier job.
        "job": {"jobID": job.get("jobID")},
    }


def serve_connection(conn):
    with conn:
        while True:
            header = read_exact(conn, 4)
            if header is None:
                return
            (length,) = struct.unpack("<I", header)
            body = read_exact(conn, length)
            if body is None:
                return
            try:
                reply = handle_job(json.loads(body.decode("utf-8")))
            except Exception as error:  # any failure becomes an {error} reply, never a dead connection
                reply = {"error": {"message": str(error)}}
            send_frame(conn, reply)


def exit_with_daemon(daemon_pid):
    """Exit once the daemon that started this handler is gone, so no orphan keeps running."""
    while True:
        threading.Event().wait(1.0)
        if os.getppid() == daemon_pid:
            continue
        try:
            # Started through a wrapper: the daemon is not the parent, so check its pid directly.
            os.kill(daemon_pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def main():
    # The daemon stops its handlers with SIGTERM; exit quietly instead of printing a traceback.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    path = os.environ.get("BESTER_SOCKET") or (sys.argv[1] if len(sys.argv) > 1 else None)
    if not path:
        sys.exit("usage: sha256.py SOCKET_PATH (or set BESTER_SOCKET)")
    if os.path.exists(path):
        os.unlink(path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(64)
    daemon_pid = os.environ.get("BESTER_DAEMON_PID", "")
    if daemon_pid.isdigit():
        threading.Thread(target=exit_with_daemon, args=(int(daemon_pid),), daemon=True).start()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve_connection, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
