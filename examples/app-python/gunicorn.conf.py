# gunicorn's settings for running under phased: the command line in
# phased.yaml says where to bind and how many threads; this file opens each
# worker's database pool after the fork and closes it at the worker's exit.
worker_class = "gthread"
workers = 1              # one gunicorn worker per phased child
graceful_timeout = 25    # below phased's app.stop_timeout (30s)
accesslog = None         # phased writes the access log
errorlog = "-"           # gunicorn's own log goes to phased's error log


def post_fork(server, worker):
    import app  # in the worker: the master never opens a connection
    app.open_pool()


def worker_exit(server, worker):
    import app
    app.close_pool()
