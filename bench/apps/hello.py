"""Hello world in WSGI: the app of bench/apps/run.sh, under gunicorn."""


def app(environ, start_response):
    body = b"hello\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
