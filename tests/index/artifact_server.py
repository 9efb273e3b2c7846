#!/usr/bin/env python3
"""Static HTTP server for feu's pull tests: serves a publisher root with Range
support (stdlib only) and logs every request, with two fault modes:

  --drop-first      the first request of each file sends half its bytes, then
                    the connection is cut (later requests, ranged or not, work)
  --corrupt PATH    PATH (relative to the root) is served with one byte flipped

The port (free, chosen by the OS) is written to --port-file once listening.
"""
import argparse
import http.server
import os
import re
import threading
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--drop-first", action="store_true")
    parser.add_argument("--corrupt", action="append", default=[])
    args = parser.parse_args()
    root = os.path.realpath(args.root)
    served = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *unused):
            pass

        def do_GET(self):
            rel = urllib.parse.unquote(urllib.parse.urlparse(self.path).path).lstrip("/")
            path = os.path.realpath(os.path.join(root, rel))
            range_header = self.headers.get("Range", "")
            with lock, open(args.log, "a") as log:
                log.write("GET /%s range=%s\n" % (rel, range_header or "-"))
            if not path.startswith(root + os.sep) or not os.path.isfile(path):
                self.send_error(404)
                return
            with open(path, "rb") as f:
                data = bytearray(f.read())
            if rel in args.corrupt and data:
                data[len(data) // 2] ^= 0x01
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", range_header)
            if match:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % len(data))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", "bytes %d-%d/%d" % (start, len(data) - 1, len(data)))
            else:
                self.send_response(200)
            body = bytes(data[start:])
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with lock:
                first = rel not in served
                served.add(rel)
            if args.drop_first and first and len(body) > 1 and not rel.endswith(".json"):
                self.wfile.write(body[: len(body) // 2])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    temp = args.port_file + ".tmp"
    with open(temp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(temp, args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
