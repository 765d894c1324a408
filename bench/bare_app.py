"""The baseline for the webhook benchmark: gunicorn + Flask answering 200, doing nothing else."""

from flask import Flask

app = Flask("bare")


@app.post("/webhooks/woocommerce")
def woocommerce():
    return "stored\n", 200
