"""An app server that takes BOOT_SECONDS to boot, as a large Rails or
Django app does, then answers every request on $PHASED_APP_SOCKET with its
boot time."""
import os
import socket
import time

boot = float(os.environ.get("BOOT_SECONDS", "11"))
time.sleep(boot)
srv = socket.socket(socket.AF_UNIX)
srv.bind(os.environ["PHASED_APP_SOCKET"])
srv.listen(16)
body = f"booted in {boot:g} s\n".encode()
while True:
    conn, _ = srv.accept()
    with conn:
        try:
            if conn.recv(65536):  # phased's readiness probe sends nothing
                conn.sendall(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            pass
