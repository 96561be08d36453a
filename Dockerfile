# Postline: one image for every service; the command chooses which one runs.
#
#   docker build -t postline:0.1.0 .
#   docker run --rm postline:0.1.0 --config /etc/postline/postline.toml ingress
#
# Dependencies are installed with requirements.lock as constraints, so the image
# holds exactly the versions CI tested. No HEALTHCHECK: Kubernetes probes and
# compose healthchecks call /healthz and /readyz on the service's metrics_listen.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/postline
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY shared/ shared/
COPY app/ app/
COPY services/ services/
RUN /opt/postline/bin/pip install -c requirements.lock .

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/postline/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric UID/GID so Kubernetes can verify runAsNonRoot and fsGroup can
# give the audit volume to it.
RUN groupadd --system --gid 10001 postline \
 && useradd --system --uid 10001 --gid postline --home-dir /var/lib/postline \
        --no-create-home --shell /usr/sbin/nologin postline \
 && install -d -o postline -g postline -m 0750 /var/lib/postline /var/lib/postline/trails \
 && install -d -m 0755 /etc/postline
COPY --from=build /opt/postline /opt/postline
WORKDIR /var/lib/postline
USER 10001:10001
# Submission ports are unprivileged inside the container (2587, 2465); the
# compose file and the Kubernetes Service map 587/465 onto them.
EXPOSE 2587 2465 9101 9102 9103 9104
ENTRYPOINT ["postline"]
CMD ["--help"]
