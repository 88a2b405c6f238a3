# An app server that stops the way many do: on SIGTERM it stops accepting,
# then exits once every connection it has is closed, however idle. It
# answers HTTP/1.1 with keep-alive on the unix socket phased gives it.
import http.server
import os
import signal
import socketserver
import sys
import threading

open_conns = 0
cond = threading.Condition()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"pid %d\n" % os.getpid()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def process_request_thread(self, request, client_address):
        global open_conns
        with cond:
            open_conns += 1
        try:
            super().process_request_thread(request, client_address)
        finally:
            with cond:
                open_conns -= 1
                cond.notify_all()


stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
server = Server(os.environ["PHASED_APP_SOCKET"], Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
print("patient app %d: listening" % os.getpid(), flush=True)
stop.wait()
server.shutdown()
server.server_close()
with cond:
    print("patient app %d: SIGTERM, waiting for %d connections" % (os.getpid(), open_conns), flush=True)
    cond.wait_for(lambda: open_conns == 0)
print("patient app %d: every connection closed" % os.getpid(), flush=True)
sys.exit(0)
