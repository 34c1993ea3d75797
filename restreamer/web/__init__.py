"""The web layer: the Flask blueprint, the API views, static responses, the
authentication decision turned into HTTP, and the servers (restreamer's own
pywsgi server and its gunicorn worker).  The only code that imports Flask or
werkzeug.
"""
