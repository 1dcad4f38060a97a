# edge-augment: Edge Impulse transformation block (image augmentation).
# BASE_IMAGE is overridable so CI can build with a locally made stand-in (no registry access there).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app

COPY requirements.txt ./
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin augment

ENV PATH=/opt/venv/bin:$PATH

COPY transform.py parameters.json ./
COPY augment ./augment
RUN python3 -m compileall -q transform.py augment

# No USER: the default user is root, as in every EI example block, so the block can create --out-directory
# wherever EI's jobs and `edge-impulse-blocks runner` mount it (a host folder at /data, owned by the host
# user). Running unprivileged works too: `docker run --user 10001` (the `augment` user) or any uid, also with
# --read-only; that uid then needs write access to the out folder.
ENTRYPOINT ["python3", "-u", "transform.py"]
