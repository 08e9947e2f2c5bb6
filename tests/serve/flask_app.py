"""A Flask app for tests/test_gunicorn.py (the worker runs it unchanged)."""
import os

from flask import Flask, jsonify, request

from wsgi_app import _ask_upstream

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from Flask"


@app.route("/json", methods=["POST"])
def echo_json():
    data = request.get_json()
    return jsonify(got=data, pid=os.getpid())


@app.route("/upstream")
def upstream():
    d = float(request.args.get("d", "0.01"))
    return _ask_upstream(d).decode()
