"""How every service is served: gunicorn's uvicorn worker, and what gunicorn.conf.py needs."""
