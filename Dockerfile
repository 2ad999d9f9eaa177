# One image for every service: the upstreams and both gateways differ only by command and env.
#
# PYTHON_IMAGE defaults to the official slim image. Where no registry answers,
# scripts/base-image.sh builds a Debian bookworm base offline and `make up` passes it here.
ARG PYTHON_IMAGE=python:3.12-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

# A venv works the same on both bases: Debian's own python3 refuses a system-wide pip install.
# The service user has a fixed id, above any system account's, so that a runtime (the k8s
# manifests' runAsUser and runAsGroup) can name it by number.
# /certs belongs to the service user: a volume mounted there (UPSTREAM_TLS's) starts so.
RUN python3 -m venv /opt/venv \
    && groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /app app \
    && install -d -o app -g app /certs

WORKDIR /app

# Dependencies first, in their own layer: editing code does not reinstall them. The lock
# pins every transitive dependency with its hashes, and pip checks each one. pip installs
# the lock as it is (--no-deps), resolving nothing, and pip check proves the pins agree.
COPY requirements.txt ./
RUN pip install --no-deps --require-hashes -r requirements.txt && pip check

# The code stays owned by root, so the service user can read it but not change it. What the
# context holds is pyproject's runtime packages and gunicorn.conf.py: .dockerignore sends
# nothing else.
COPY . ./

USER 10001:10001
EXPOSE 8000
# serving/serve.py starts the server SERVER names (gunicorn by default) for this app.
CMD ["python", "-m", "serving.serve", "upstream.main:create_app"]
