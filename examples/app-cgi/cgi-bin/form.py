#!/usr/bin/python3
"""A CGI script in Python: GET shows a form, POST answers with what was sent.

It reads the form from standard input, CONTENT_LENGTH bytes of it, as RFC
3875 says, with the standard library only (the cgi module is gone from
Python 3.13).
"""
import html
import os
import sys
from urllib.parse import parse_qs

method = os.environ.get("REQUEST_METHOD", "GET")
fields = {}
if method == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(length).decode("utf-8", "replace")
    fields = {k: v[0] for k, v in parse_qs(body).items()}

out = ["<!doctype html><title>form.py</title>", "<h1>A form, in Python</h1>"]
if method == "POST":
    name = fields.get("name", "").strip() or "stranger"
    out.append(f'<p id="greeting">Hello, {html.escape(name)}!</p>')
    out.append(f"<p>{len(fields)} fields, process {os.getpid()}.</p>")
out.append('<form method="post"><input name="name"> <button>Send</button></form>')
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n" + "\n".join(out) + "\n")
