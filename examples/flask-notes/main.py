"""A WSGI (Flask) app: notes kept in memory for the instance's life."""

import os

from flask import Flask, jsonify, request

app = Flask(__name__)
notes: list[str] = []


@app.get("/")
def list_notes():
    return jsonify(notes=notes, pid=os.getpid())


@app.post("/")
def add_note():
    notes.append(request.get_data(as_text=True))
    return jsonify(notes=notes, pid=os.getpid()), 201
